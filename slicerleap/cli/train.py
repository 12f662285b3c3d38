"""`slicerleap train sks|registration|segmentation|interactive`: train a model on your own cases and register it in the catalog. The
`train` command's other subcommands come from their method's group (teacher_student.py, text_prompt.py). The
training options come from the declarations in slicerleap/segmentation/training_methods.py."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import SlicerLeapError
from ..segmentation.training_methods import SKS_TRAINING, resolve_training
from .common import job_options, process_options, processes_of, train_and_register, trained_model_options, volume_files


def cmd_train(args) -> int:
    """Cases with a labelmap of the same name in --labels train with pixel labels; the others need an
    entry in --slice-labels ({"case": {"lesion_slices": [[k1, k2], ...]}} or {"case": {"flags": [...]}})."""
    method = SKS_TRAINING.method(args.model_type).name
    settings = resolve_training(SKS_TRAINING, method, SKS_TRAINING.cli_values(args))  # bad values refused before staging
    validation = settings.pop("validation_cases")
    images, labels = volume_files(Path(args.images)), volume_files(Path(args.labels)) if args.labels else {}
    slice_table = json.loads(Path(args.slice_labels).read_text(encoding="utf-8")) if args.slice_labels else {}
    unknown = [n for n in labels if n not in images]
    if unknown:
        raise SlicerLeapError(f"Labelmaps without an image of the same name: {', '.join(unknown[:5])}.", "Name each labelmap like its image.")
    pixel = [n for n in images if n in labels]
    val, pixel = pixel[:validation], pixel[validation:]
    weak = [n for n in images if n not in labels and n in slice_table]
    missing = [n for n in images if n not in labels and n not in slice_table]
    if missing and not args.skip_unlabelled:
        raise SlicerLeapError(f"{len(missing)} image(s) have neither a labelmap nor slice labels: {', '.join(missing[:5])}.",
                              "Add them to the --slice-labels file, or pass --skip-unlabelled.")
    params = {"config": {"model": method, **settings}, "slice_labels": [slice_table[n] for n in weak], "model_id": args.id, "modality": args.modality,
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


def paired_cases(args) -> dict:
    """{"images", "labels"}: the --images that have a labelmap of the same name in --labels (refused when none has)."""
    images, labels = volume_files(Path(args.images)), volume_files(Path(args.labels))
    names = [n for n in images if n in labels]
    if not names:
        raise SlicerLeapError("No image in --images has a labelmap of the same name in --labels.", "Name each labelmap like its image.")
    return {"images": [images[n] for n in names], "labels": [labels[n] for n in names]}


def add_labelled_folders(parser, default_id: str, what_a_label_is: str) -> None:
    """--images and --labels (folders of files named alike) and the trained model's options."""
    parser.add_argument("--images", required=True, help="folder of volumes (one case per file)")
    parser.add_argument("--labels", required=True, help=f"folder of labelmaps named like their images; {what_a_label_is}")
    trained_model_options(parser, default_id)


def cmd_train_segmentation(args) -> int:
    """A 3D U-Net on image/labelmap pairs named alike; each label value found becomes a class."""
    import numpy as np

    from ..io import read_volume
    from ..segmentation.label_specs import numbered_label_specs

    from ..distributed import check_batch_divides

    processes = processes_of(args)
    if processes:
        check_batch_divides(args.batch_size, processes["nproc_per_node"] * processes["nnodes"])
    inputs = paired_cases(args)
    values = sorted({int(v) for path in inputs["labels"] for v in np.unique(read_volume(path).array) if v > 0})
    params = {"labels": numbered_label_specs(values), "model_id": args.id, "modality": args.modality,
              "seed": args.seed, "epochs": args.epochs, "iterations_per_epoch": args.iterations_per_epoch,
              "batch_size": args.batch_size, "patch": args.patch, "channels": args.channels, "spacing_mm": args.spacing,
              "validation_cases": args.validation_cases}
    print(f"{len(inputs['images'])} case(s), label values {values}", file=sys.stderr)
    return train_and_register("train-segmentation", inputs, params, args)


def cmd_train_interactive(args) -> int:
    """The click network on image/labelmap pairs named alike: each label value, and their union, is a structure."""
    inputs = paired_cases(args)
    if args.iterations < 1 or args.batch_size < 1:
        raise SlicerLeapError(f"--iterations {args.iterations} and --batch-size {args.batch_size}.", "Give positive numbers.")
    params = {"model_id": args.id, "modality": args.modality,
              "config": {"iterations": args.iterations, "batch_size": args.batch_size, "seed": args.seed}}
    print(f"{len(inputs['images'])} case(s)", file=sys.stderr)
    return train_and_register("train-interactive", inputs, params, args)


def add_commands(sub):
    """The `train` command with `sks` and `registration`; returns its subparsers for the other groups' methods."""
    p = sub.add_parser("train", help="train a segmentation model from your own cases")
    tsub = p.add_subparsers(dest="train_command", required=True)
    t = tsub.add_parser("sks", help="SKS (or the U-Net baseline): few pixel labels + slice-level labels, 2.5D")
    t.add_argument("--images", required=True, help="folder of volumes (one case per file)")
    t.add_argument("--labels", default=None, help="folder of lesion labelmaps named like their images (pixel-labelled cases)")
    t.add_argument("--slice-labels", default=None, help='JSON: {"case": {"lesion_slices": [[k1, k2], ...]}} for cases without a labelmap')
    trained_model_options(t, "my-sks@1.0.0")
    SKS_TRAINING.add_method_option(t, "--model-type", default="sks")
    SKS_TRAINING.add_cli_options(t, skip=("seed",))  # --seed: trained_model_options
    t.add_argument("--spacing", type=float, default=None, help="in-plane working pixel size in mm (default: median of the images)")
    t.add_argument("--label-value", type=int, default=None, help="lesion value in the labelmaps (default: any non-zero)")
    t.add_argument("--skip-unlabelled", action="store_true", help="ignore images with neither labelmap nor slice labels")
    process_options(t)
    job_options(t)
    t.set_defaults(func=cmd_train)
    t = tsub.add_parser("registration", help="a deformable registration network (TM-DCA or VoxelMorph) on your images")
    t.add_argument("--images", required=True, help="folder of volumes, ideally several subjects (one per file)")
    t.add_argument("--labels", default=None, help="folder of labelmaps named like the images (optional: Dice joins the loss)")
    trained_model_options(t, "my-registration@1.0.0")
    t.add_argument("--arch", default="tm-dca", choices=["tm-dca", "voxelmorph"], help="the network: TM-DCA (deformable cross-attention) or VoxelMorph")
    t.add_argument("--regulariser", default="diffusion", help="diffusion | bending | implicit-diffusion | implicit-elastic | implicit-curvature")
    t.add_argument("--similarity", default="lncc", choices=["lncc", "mse", "mi"], help="mi: images of different contrasts")
    t.add_argument("--start-from", default=None, help="a catalog registration model to fine-tune (e.g. brain-tm-dca@1.0.0)")
    t.add_argument("--iterations", type=int, default=300, help="training iterations (pairs drawn from your images)")
    process_options(t)  # N processes: each iteration trains on N pairs, one per process
    job_options(t)
    t.set_defaults(func=cmd_train_registration)
    t = tsub.add_parser("segmentation", help="a 3D U-Net (MONAI) on fully labelled volumes; several processes with --nproc-per-node")
    add_labelled_folders(t, "my-unet@1.0.0", "each non-zero value is a class")
    t.add_argument("--epochs", type=int, default=10, help="training epochs (validation Dice after each; the best weights kept)")
    t.add_argument("--iterations-per-epoch", type=int, default=10, help="gradient steps per epoch, each on --batch-size random patches")
    t.add_argument("--batch-size", type=int, default=2, help="patches per step, over all processes together")
    t.add_argument("--patch", type=int, nargs=3, default=[64, 64, 64], help="patch size in voxels at --spacing")
    t.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32, 64], help="U-Net channels per level")
    t.add_argument("--spacing", type=float, nargs=3, default=[2.0, 2.0, 2.0], help="training spacing in mm")
    t.add_argument("--validation-cases", type=int, default=None, help="cases held out for validation (default 1 when there are 3 or more)")
    process_options(t)
    job_options(t)
    t.set_defaults(func=cmd_train_segmentation)
    t = tsub.add_parser("interactive", help="the click network (interactive segmentation) on your labelled volumes")
    add_labelled_folders(t, "my-clicks@1.0.0", "each non-zero value is a structure")
    t.add_argument("--iterations", type=int, default=1500, help="training iterations (each: --batch-size simulated click sessions)")
    t.add_argument("--batch-size", type=int, default=4, help="simulated click sessions per iteration")
    job_options(t)
    t.set_defaults(func=cmd_train_interactive)
    return tsub
