"""`slicerleap reconstruct`: undersampled k-space (fastMRI HDF5, or .npy + .json) to a magnitude volume. Its method
options come from the declarations in slicerleap/reconstruction/methods.py."""
from __future__ import annotations

from pathlib import Path

from ..reconstruction.methods import RECONSTRUCTION
from .common import batch_options, job_options, refuse_batch_options_for_one_file, report_batch, run_task


def cmd_reconstruct(args) -> int:
    from ..batch import reconstruction_params

    params = reconstruction_params(args.method, args.spacing, RECONSTRUCTION.cli_values(args))  # refused before staging
    if Path(args.kspace).is_dir():
        from ..batch import kspace_items, run_batch

        return report_batch(run_batch(kspace_items(args.kspace, args.output, params), args.workers, args.cluster, args.device))
    refuse_batch_options_for_one_file(args)
    params["output_name"] = f"{Path(args.kspace).stem} ({params['method']})"
    return run_task("reconstruct", {"kspace": args.kspace}, params, None, args.device, args.keep_files, {"volume": args.output})


def add_commands(sub) -> None:
    p = sub.add_parser("reconstruct", help="MRI reconstruction from undersampled Cartesian k-space (zero-filled, SENSE, CS)")
    p.add_argument("--kspace", required=True, help="fastMRI-layout .h5 (kspace: slices x coils x height x width), or .npy with "
                   "a .json beside it ({\"spacing_mm\": [x, y, z]}); or a folder of them")
    p.add_argument("--output", required=True, help="the magnitude volume (.nrrd, .nii.gz, .mha), or a folder")
    RECONSTRUCTION.add_method_option(p, default="sense")
    RECONSTRUCTION.add_cli_options(p)
    p.add_argument("--spacing", type=float, nargs=3, default=None,
                   help="mm (x y z) when the file gives none (default: the file's header, else 1 mm, said in the output)")
    job_options(p)
    batch_options(p)
    p.set_defaults(func=cmd_reconstruct)
