"""`slicerleap reconstruct`: undersampled k-space (fastMRI HDF5, or .npy + .json) to a magnitude volume. Its method
options come from the declarations in slicerleap/reconstruction/methods.py."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import SlicerLeapError

from ..reconstruction.methods import RECONSTRUCTION
from .common import batch_options, job_options, refuse_batch_options_for_one_file, report_batch, run_task


def cmd_reconstruct(args) -> int:
    from ..batch import named_after, reconstruction_params

    params = reconstruction_params(args.method, args.spacing, RECONSTRUCTION.cli_values(args))  # refused before staging
    if Path(args.kspace).is_dir():
        from ..batch import kspace_items, run_batch

        return report_batch(run_batch(kspace_items(args.kspace, args.output, params, args.model), args.workers, args.cluster, args.device))
    refuse_batch_options_for_one_file(args)
    return run_task("reconstruct", {"kspace": args.kspace}, named_after(args.kspace, params), args.model, args.device, args.keep_files, {"volume": args.output})


def cmd_train_recon(args) -> int:
    from ..io.output_files import case_name
    from ..io.kspace_files import kspace_files
    from .common import train_and_register

    folder = Path(args.data)
    files = kspace_files(folder)
    if not files:
        raise SlicerLeapError(f"'{folder}' holds no k-space files (.h5, .npy).", "Give a folder of fully sampled k-space files.")
    params = {"model_id": args.id, "modality": "MR", "seed": args.seed, "iterations": args.iterations, "cascades": args.cascades,
              "accelerations": args.accelerations, "mask": args.mask, "validation_files": args.validation_files,
              "learning_rate": args.learning_rate}
    print(f"{len(files)} file(s): {', '.join(case_name(f) for f in files[:5])}{' ...' if len(files) > 5 else ''}", file=sys.stderr)
    return train_and_register("train-recon", {"kspace": [str(f) for f in files]}, params, args)


def add_train_command(train_sub) -> None:
    from .common import process_options, trained_model_options

    t = train_sub.add_parser("recon", help="E2E-VarNet for --method varnet, on fully sampled k-space files")
    t.add_argument("--data", required=True, help="folder of fully sampled k-space files (.h5 fastMRI layout, or .npy + .json)")
    trained_model_options(t, "my-varnet@1.0.0")
    t.add_argument("--iterations", type=int, default=300, help="training steps (one slice each, undersampled afresh)")
    t.add_argument("--cascades", type=int, default=4, help="unrolled cascades (the paper: 12)")
    t.add_argument("--accelerations", type=float, nargs="+", default=[4.0, 8.0], help="accelerations drawn during training")
    t.add_argument("--mask", choices=["random", "equispaced"], default="random", help="training masks")
    t.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate")
    t.add_argument("--validation-files", type=int, default=None, help="files held out for validation (default 1 with 2 or more)")
    process_options(t)
    job_options(t)
    t.set_defaults(func=cmd_train_recon)


def add_commands(sub) -> None:
    p = sub.add_parser("reconstruct", help="MRI reconstruction from undersampled Cartesian k-space (zero-filled, SENSE, CS)")
    p.add_argument("--kspace", required=True, help="fastMRI-layout .h5 (kspace: slices x coils x height x width), or .npy with "
                   "a .json beside it ({\"spacing_mm\": [x, y, z]}); or a folder of them")
    p.add_argument("--output", required=True, help="the magnitude volume (.nrrd, .nii.gz, .mha), or a folder")
    RECONSTRUCTION.add_method_option(p, default="sense")
    RECONSTRUCTION.add_cli_options(p)
    p.add_argument("--model", default=None, help="--method varnet: a reconstruction model id (default: the catalog's default)")
    p.add_argument("--spacing", type=float, nargs=3, default=None,
                   help="mm (x y z) when the file gives none (default: the file's header, else 1 mm, said in the output)")
    job_options(p)
    batch_options(p)
    p.set_defaults(func=cmd_reconstruct)
