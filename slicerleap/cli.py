"""`slicerleap` command line: the same engine and worker as the Slicer modules."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli_common import run_task, train_and_register, volume_files
from .errors import SlicerLeapError
from .mixed_precision import PRECISION_HELP, PRECISIONS
from .registration.methods import REGISTRATION


def cmd_info(args) -> int:
    import platform

    import torch

    from . import __version__
    from .device import describe_device, select_device
    from .models import get_catalog

    print(f"SlicerLeap {__version__} on Python {platform.python_version()} ({platform.platform()})")
    versions = {"torch": torch.__version__}
    for name in ("monai", "SimpleITK", "numpy", "vtk"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", None) or module.Version_VersionString()
        except Exception:  # noqa: BLE001 - optional packages
            versions[name] = "not installed"
    from importlib.metadata import PackageNotFoundError, version

    try:
        versions["slicer-core"] = version("slicer-core")
    except PackageNotFoundError:
        versions["slicer-core"] = "not installed (scene features unavailable)"
    for k, v in versions.items():
        print(f"  {k:12s} {v}")
    print(f"device: {describe_device(select_device('auto'))}")
    print("models:")
    for card in get_catalog().cards():
        print(f"  {card['id']:32s} {card['task']:14s} {card['modality']:4s} {card.get('title', '')}")
    return 0


def cmd_models(args) -> int:
    from .models import get_catalog

    catalog = get_catalog()
    if args.models_command == "import":
        from .models.catalog import read_card_file

        registered = catalog.register(args.weights, read_card_file(args.card))
        print(f"registered {registered['id']} (sha256 {registered['sha256'][:12]}…) in {catalog.user_folder}")
        return 0
    if args.models_command == "default":
        card = catalog.set_default(args.id)
        print(f"default {card['task']} model: {card['id']} (in {catalog.defaults_file})")
        return 0
    for card in catalog.cards():
        print(json.dumps({k: v for k, v in card.items() if k in ("id", "task", "modality", "title", "training_data")}))
    return 0


def cmd_segment(args) -> int:
    source, target = Path(args.input), Path(args.output)
    from .io import SUPPORTED_SUFFIXES

    if source.is_dir() and not any(source.glob("*.dcm")) and any(p.name.endswith(SUPPORTED_SUFFIXES) for p in source.iterdir()):
        from .io.output_files import check_output_path
        from .jobs.batch import batch_exit_code, run_serial_batch, summary_table

        check_output_path(target, [source], "folder")  # folder in, folder out: never the same folder
        files = sorted(p for p in source.iterdir() if p.name.endswith(SUPPORTED_SUFFIXES))
        records = run_serial_batch([(path.name, lambda path=path: run_task(
            "segment", {"image": path}, {"backend": args.backend}, args.model, args.device, args.keep_files,
            {"segmentation": target / path.name})) for path in files])
        print(summary_table(records))
        return batch_exit_code(records)
    return run_task("segment", {"image": source}, {"probability": bool(args.probability), "backend": args.backend}, args.model,
                args.device, args.keep_files,
                {"segmentation": target, "probability": args.probability})


def cmd_train(args) -> int:
    """Cases with a labelmap of the same name in --labels train with pixel labels; the others need an
    entry in --slice-labels ({"case": {"lesion_slices": [[k1, k2], ...]}} or {"case": {"flags": [...]}})."""
    images, labels = volume_files(Path(args.images)), volume_files(Path(args.labels)) if args.labels else {}
    slice_table = json.loads(Path(args.slice_labels).read_text(encoding="utf-8")) if args.slice_labels else {}
    unknown = [n for n in labels if n not in images]
    if unknown:
        raise SlicerLeapError(f"Labelmaps without an image of the same name: {', '.join(unknown[:5])}.", "Name each labelmap like its image.")
    pixel = [n for n in images if n in labels]
    val = pixel[: args.validation_cases]
    pixel = pixel[args.validation_cases:]
    weak = [n for n in images if n not in labels and n in slice_table]
    missing = [n for n in images if n not in labels and n not in slice_table]
    if missing and not args.skip_unlabelled:
        raise SlicerLeapError(f"{len(missing)} image(s) have neither a labelmap nor slice labels: {', '.join(missing[:5])}.",
                              "Add them to the --slice-labels file, or pass --skip-unlabelled.")
    config = {"model": args.model_type, "iterations": args.iterations, "coarse_iterations": args.coarse_iterations, "seed": args.seed,
              "precision": args.precision}
    params = {"config": config, "slice_labels": [slice_table[n] for n in weak], "model_id": args.id, "modality": args.modality,
              "in_plane_spacing_mm": args.spacing, "label_value": args.label_value}
    inputs = {"pixel_images": [images[n] for n in pixel], "pixel_labels": [labels[n] for n in pixel],
              "slice_images": [images[n] for n in weak], "val_images": [images[n] for n in val], "val_labels": [labels[n] for n in val]}
    print(f"{len(pixel)} case(s) with pixel labels, {len(weak)} with slice labels, {len(val)} for validation", file=sys.stderr)
    return train_and_register("train-sks", inputs, params, args)


def cmd_train_registration(args) -> int:
    """Every image of --images trains; a labelmap of the same name in --labels (optional, all or none) adds Dice."""
    images = volume_files(Path(args.images))
    labels = volume_files(Path(args.labels)) if args.labels else {}
    if labels and set(labels) != set(images):
        raise SlicerLeapError("--labels must hold one labelmap per image, named like it.",
                              f"Missing: {', '.join(sorted(set(images) - set(labels))[:5]) or '-'}; extra: "
                              f"{', '.join(sorted(set(labels) - set(images))[:5]) or '-'}.")
    inputs = {"images": [images[n] for n in images]}
    if labels:
        inputs["labels"] = [labels[n] for n in images]
    params = {"architecture": args.arch, "regulariser": args.regulariser, "similarity": args.similarity,
              "iterations": args.iterations, "model_id": args.id,
              "start_from": args.start_from, "modality": args.modality, "seed": args.seed}
    return train_and_register("train-registration", inputs, params, args)


def cmd_register(args) -> int:
    if args.labels_out and not args.moving_labels:
        raise SlicerLeapError("--labels-out needs --moving-labels (a labelmap of the moving image to propagate).",
                              "Add --moving-labels, or drop --labels-out.")
    method = args.method or ("optimisation" if args.model is None and not _has_registration_model() else "network")
    params = {"method": method, **{p.name: getattr(args, p.name) for p in REGISTRATION.parameters()}}
    params.update(REGISTRATION.resolve(method, params))  # bad values refused before the images are staged
    inputs = {"fixed": args.fixed, "moving": args.moving}
    if args.moving_labels:
        inputs["moving_labels"] = args.moving_labels
    return run_task("register", inputs, params, args.model if method == "network" else None, args.device, args.keep_files,
                {"transform": args.out_transform, "warped": args.warped, "jacobian": args.jacobian, "labels": args.labels_out})


def _has_registration_model() -> bool:
    from .models import get_catalog

    return any(c["task"] == "registration" for c in get_catalog().cards())


def cmd_superres(args) -> int:
    if args.input2 and args.method != "dmdip":
        raise SlicerLeapError("--input2 (a second contrast) is used by --method dmdip only.", "Add --method dmdip, or drop --input2.")
    if args.output2 and not args.input2:
        raise SlicerLeapError("--output2 needs --input2 (the second contrast to restore).", "Add --input2, or drop --output2.")
    params = {"method": args.method, "spacing": args.spacing, "iterations": args.iterations, "time_budget_s": args.time_budget,
              "thickness_mm": args.thickness, "difference_from_cubic": bool(args.difference)}
    if args.method in ("dmdip", "tv"):
        params["degradation"] = args.degradation
    if args.method == "dmdip" and args.tv_weight is not None:
        params["tv_weight"] = args.tv_weight
    inputs = {"image": args.input, **({"image2": args.input2} if args.input2 else {})}
    return run_task("superres", inputs, params, None, args.device, args.keep_files,
                {"volume": args.output, "difference": args.difference, "volume2": args.output2})


def cmd_demo(args) -> int:
    from .demo import run_demo

    report = run_demo(Path(args.out), quick=args.quick, device=args.device)
    print(f"Demo finished. Scene: {report['scene']}\nReport: {report['report']}\nPreviews: {report['previews']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slicerleap", description="Label-efficient deep learning for 3D Slicer, from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:1, mps")
        p.add_argument("--keep-files", action="store_true", help="keep the job folder (inputs, outputs, worker.log)")

    sub.add_parser("info", help="versions, device and installed models").set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="run every module's pipeline on bundled real anatomy; writes scene.mrb, PNG previews and report.html")
    p.add_argument("--out", default="slicerleap-demo", help="output folder (default: ./slicerleap-demo)")
    p.add_argument("--quick", action="store_true", help="fewer iterations (used by the tests)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("models", help="list or import models, or choose your default")
    msub = p.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="list installed models (JSON lines)")
    imp = msub.add_parser("import", help="register a user model offline: WEIGHTS.safetensors CARD.json")
    imp.add_argument("weights")
    imp.add_argument("card")
    msub.add_parser("default", help="make a model the default of its task (your choice, kept in models/defaults.json)").add_argument("id")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("segment", help="segment a volume (or a folder of volumes) with a catalog model")
    p.add_argument("--input", required=True, help="volume file, DICOM folder, or folder of volume files")
    p.add_argument("--output", required=True, help="labelmap file (geometry identical to the input), or folder")
    p.add_argument("--model", default=None, help="model id (default: the bundled default segmentation model)")
    p.add_argument("--probability", default=None, help="also write the foreground probability volume here")
    p.add_argument("--backend", choices=["auto", "torch", "openvino"], default="auto",
                   help="what runs the network: auto = OpenVINO on a CPU when installed and the volume is large enough "
                        "(same results, 2-3x faster for SKS), else PyTorch")
    common(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("train", help="train a segmentation model from your own cases")
    tsub = p.add_subparsers(dest="train_command", required=True)
    t = tsub.add_parser("sks", help="SKS (or the U-Net baseline): few pixel labels + slice-level labels, 2.5D")
    t.add_argument("--images", required=True, help="folder of volumes (one case per file)")
    t.add_argument("--labels", default=None, help="folder of lesion labelmaps named like their images (pixel-labelled cases)")
    t.add_argument("--slice-labels", default=None, help='JSON: {"case": {"lesion_slices": [[k1, k2], ...]}} for cases without a labelmap')
    t.add_argument("--out", required=True, help="folder for model.safetensors + card.json (also registered in the catalog)")
    t.add_argument("--id", default="my-sks@1.0.0", help="model id name@x.y.z")
    t.add_argument("--model-type", default="sks", choices=["sks", "unet"])
    t.add_argument("--iterations", type=int, default=400, help="stage 2 (pixel labels) iterations")
    t.add_argument("--coarse-iterations", type=int, default=300, help="stage 1 (slice labels) iterations")
    t.add_argument("--validation-cases", type=int, default=0, help="pixel-labelled cases held out to pick the best weights")
    t.add_argument("--spacing", type=float, default=None, help="in-plane working pixel size in mm (default: median of the images)")
    t.add_argument("--label-value", type=int, default=None, help="lesion value in the labelmaps (default: any non-zero)")
    t.add_argument("--modality", default="any", choices=["CT", "MR", "PET", "US", "any"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--skip-unlabelled", action="store_true", help="ignore images with neither labelmap nor slice labels")
    t.add_argument("--precision", default="fp32", choices=PRECISIONS, help=PRECISION_HELP)
    common(t)
    t.set_defaults(func=cmd_train)
    t = tsub.add_parser("registration", help="a deformable registration network (TM-DCA or VoxelMorph) on your images")
    t.add_argument("--images", required=True, help="folder of volumes, ideally several subjects (one per file)")
    t.add_argument("--labels", default=None, help="folder of labelmaps named like the images (optional: Dice joins the loss)")
    t.add_argument("--out", required=True, help="folder for model.safetensors + card.json (also registered in the catalog)")
    t.add_argument("--id", default="my-registration@1.0.0", help="model id name@x.y.z")
    t.add_argument("--arch", default="tm-dca", choices=["tm-dca", "voxelmorph"])
    t.add_argument("--regulariser", default="diffusion", help="diffusion | bending | implicit-diffusion | implicit-elastic | implicit-curvature")
    t.add_argument("--similarity", default="lncc", choices=["lncc", "mse", "mi"], help="mi: images of different contrasts")
    t.add_argument("--start-from", default=None, help="a catalog registration model to fine-tune (e.g. brain-tm-dca@1.0.0)")
    t.add_argument("--iterations", type=int, default=300)
    t.add_argument("--modality", default="any", choices=["CT", "MR", "PET", "US", "any"])
    t.add_argument("--seed", type=int, default=0)
    common(t)
    t.set_defaults(func=cmd_train_registration)

    from .teacher_student_cli import add_parsers as add_teacher_student_parsers

    add_teacher_student_parsers(sub, tsub, common)

    from .text_prompt_cli import add_parsers as add_text_prompt_parsers

    add_text_prompt_parsers(sub, tsub, common)

    p = sub.add_parser("register", help="deformable registration of a moving volume to a fixed one")
    p.add_argument("--fixed", required=True)
    p.add_argument("--moving", required=True)
    p.add_argument("--out-transform", required=True, help=".h5 (ITK transform, loads in Slicer) or a vector volume .nrrd")
    p.add_argument("--warped", default=None, help="write the warped moving volume here")
    p.add_argument("--jacobian", default=None, help="write the Jacobian determinant volume here")
    p.add_argument("--method", choices=REGISTRATION.names, default=None,
                   help="; ".join(f"{m.name}: {m.help}" for m in REGISTRATION.methods) + " (default: network when a model is installed)")
    p.add_argument("--model", default=None, help="registration model id (default: the catalog's default registration model)")
    p.add_argument("--moving-labels", default=None, help="labelmap of the moving image to propagate onto the fixed image")
    p.add_argument("--labels-out", default=None, help="write the propagated labelmap here")
    REGISTRATION.add_cli_options(p)
    common(p)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("superres", help="restore thick-slice volumes at a finer spacing (SR4ZCT, dmDIP or interpolation)")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--method", default="sr4zct", choices=["sr4zct", "dmdip", "tv", "cubic", "bspline", "linear", "sinc"],
                   help="sr4zct: self-supervised per-scan network (default); dmdip: (dual-modal) deep image prior; "
                        "tv: total-variation reconstruction consistent with the slices (classical, seconds); "
                        "cubic/bspline, linear, sinc: interpolation")
    p.add_argument("--input2", default=None, help="dmdip: a second contrast of the same subject on the same grid (e.g. T2w)")
    p.add_argument("--output2", default=None, help="dmdip: where to write the restored second contrast")
    p.add_argument("--spacing", type=float, nargs="+", default=None,
                   help="mm: one value (isotropic) or three (default: isotropic at the in-plane pixel size)")
    p.add_argument("--iterations", type=int, default=400, help="SR4ZCT training iterations / dmDIP iterations per slab (budget)")
    p.add_argument("--time-budget", type=float, default=None, help="stop the optimisation after this many seconds")
    p.add_argument("--thickness", type=float, default=None, help="slice thickness in mm if it differs from the spacing (overlap)")
    p.add_argument("--degradation", default="slice-profile", choices=["slice-profile", "kspace"],
                   help="dmdip, tv: how the thick slices were made: box slice profile (2D multi-slice, default) or "
                        "central k-space (3D acquisition, the dmDIP paper's model)")
    p.add_argument("--tv-weight", type=float, default=None,
                   help="dmdip: weight of the total-variation term (default 0.5; 0: the paper's objective)")
    p.add_argument("--difference", default=None, help="also write (method - cubic interpolation) here")
    common(p)
    p.set_defaults(func=cmd_superres)

    from .federated.cli import add_parser as add_fed_parser

    add_fed_parser(sub)
    return parser


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP (a closed terminal, a scheduler's stop) end the CLI as Ctrl+C does, through every
    `finally`: the worker is cancelled and the job folder, which holds a copy of the scan, removed."""
    import signal

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # an ASCII-locale terminal must not crash on a dash in a message
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    if isinstance(getattr(args, "spacing", None), list) and len(args.spacing) == 1:  # superres: one value for all axes
        args.spacing = args.spacing * 3
    _stop_on_signals()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted; the job was stopped and its temporary files removed.", file=sys.stderr)
        return 130
    except SlicerLeapError as exc:
        print(f"error: {exc.user_message}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - JobFailed and friends carry user-facing text
        from .jobs import JobFailed

        if isinstance(exc, JobFailed):
            print(f"error: {exc.message}", file=sys.stderr)
            return 3 if exc.status == "cancelled" else 2 if exc.status in ("bad-input", "model-error") else 1
        raise


if __name__ == "__main__":
    sys.exit(main())
