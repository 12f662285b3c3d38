"""Command line of text-prompted segmentation (MPTPN): `train mptpn` and `segment-text`.

Prompts name what the axial view shows ("one small round lesion in the upper left": upper = anterior, left =
the screen's left = the patient's right, as Slicer's Red view draws it). A prompt applies to a slab of axial
slices given by patient S positions in mm (`--slab S1 S2`, or `--slice S` for one), or to every slice.
Batch: `--input DIR --prompts TABLE.csv` with columns case,prompt[,s1,s2], one row per case.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from ..errors import SlicerLeapError
from ..segmentation.training_methods import MPTPN_TRAINING, resolve_training
from .common import job_options, process_options, run_task, train_and_register, trained_model_options, volume_files


def cmd_train_mptpn(args) -> int:
    method = MPTPN_TRAINING.method(args.model_type).name
    settings = resolve_training(MPTPN_TRAINING, method, MPTPN_TRAINING.cli_values(args))  # bad values refused before staging
    images, labels = volume_files(Path(args.images)), volume_files(Path(args.labels))
    names = [n for n in images if n in labels]
    if not names:
        raise SlicerLeapError(f"No image of {args.images} has a labelmap of the same name in {args.labels}.", "Name each labelmap like its image.")
    table = json.loads(Path(args.prompts).read_text(encoding="utf-8")) if args.prompts else {}
    config = {"model": method, **settings, "img_size": args.size}
    params = {"config": config, "prompts": [table.get(n) for n in names], "model_id": args.id, "modality": args.modality,
              "label_value": args.label_value, "target": args.target, "in_plane_spacing_mm": args.spacing}
    print(f"{len(names)} case(s) with masks, {sum(n in table for n in names)} with prompts of their own", file=sys.stderr)
    return train_and_register("train-mptpn", {"images": [images[n] for n in names], "labels": [labels[n] for n in names]}, params, args)


def _slab(args):
    if args.slice is not None:
        return [args.slice, args.slice]
    return list(args.slab) if args.slab else None


def _prompt_table(path: Path) -> dict[str, dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"case", "prompt"} <= set(rows[0]):
        raise SlicerLeapError(f"'{path}' needs a header with the columns case,prompt (optionally s1,s2).",
                              "Write one row per case: case,prompt,s1,s2 (s1/s2: slab in mm, empty for every slice).")
    return {r["case"]: {"prompt": r["prompt"], "slab_mm": [float(r["s1"]), float(r["s2"])] if r.get("s1") and r.get("s2") else None}
            for r in rows}


def cmd_segment_text(args) -> int:
    source, target = Path(args.input), Path(args.output)
    if source.is_dir():
        if not args.prompts:
            raise SlicerLeapError("A folder of volumes needs --prompts TABLE.csv (one prompt per case).", "Write case,prompt[,s1,s2] rows.")
        images, table = volume_files(source), _prompt_table(Path(args.prompts))
        missing = [n for n in table if n not in images]
        if missing:
            raise SlicerLeapError(f"Prompt table rows without a volume in {source}: {', '.join(missing[:5])}.", "Name rows like the volume files.")
        from ..io.output_files import check_output_path

        check_output_path(target, [source], "folder")  # never the input folder
        for name, row in table.items():
            run_task("segment-text", {"image": images[name]}, {**row, "output_name": f"{name}: {row['prompt']}", "force": args.force}, args.model,
                     args.device, args.keep_files, {"segmentation": target / f"{name}.nrrd"})
        return 0
    if not args.prompt:
        raise SlicerLeapError("segment-text needs --prompt 'what to segment'.", "e.g. --prompt 'one small round lesion in the upper left'")
    return run_task("segment-text", {"image": source}, {"prompt": args.prompt, "slab_mm": _slab(args), "probability": bool(args.probability),
                                                          "force": args.force},
                    args.model, args.device, args.keep_files, {"segmentation": target, "probability": args.probability})


def add_commands(sub, train_sub) -> None:
    """`train mptpn` (under `train`) and `segment-text`."""
    t = train_sub.add_parser("mptpn", help="MPTPN (or an image-only U-Net): text-prompted 2D segmentation from cases with masks")
    t.add_argument("--images", required=True, help="folder of volumes")
    t.add_argument("--labels", required=True, help="folder of labelmaps named like their images")
    t.add_argument("--prompts", default=None, help='JSON {"case": [{"s_mm": S, "prompt": "..."}]}: your own prompts (default: from the masks)')
    trained_model_options(t, "my-mptpn@1.0.0")
    MPTPN_TRAINING.add_method_option(t, "--model-type", default="mptpn")
    MPTPN_TRAINING.add_cli_options(t, skip=("seed",))  # --seed: trained_model_options
    process_options(t)
    t.add_argument("--size", type=int, default=128, help="side of the square model input (pixels)")
    t.add_argument("--target", default="lesion", help="the word prompts use for the object")
    t.add_argument("--label-value", type=int, default=None, help="target value in the labelmaps (default: any non-zero)")
    t.add_argument("--spacing", type=float, default=None, help="in-plane working pixel size in mm (default: median of the images)")
    job_options(t)
    t.set_defaults(func=cmd_train_mptpn)

    p = sub.add_parser("segment-text", help="segment what a text prompt describes with a text-prompted (MPTPN) model")
    p.add_argument("--input", required=True, help="volume file, or folder of volumes (with --prompts)")
    p.add_argument("--output", required=True, help="labelmap file (geometry identical to the input), or folder")
    p.add_argument("--prompt", default=None, help="what to segment, as the axial view shows it")
    p.add_argument("--prompts", default=None, help="CSV case,prompt[,s1,s2]: one prompt per case of a folder")
    p.add_argument("--slab", type=float, nargs=2, default=None, metavar=("S1", "S2"), help="axial slices between these S positions (mm)")
    p.add_argument("--slice", type=float, default=None, metavar="S", help="the one axial slice through S (mm)")
    p.add_argument("--model", default=None, help="model id (default: the newest text-segmentation model)")
    p.add_argument("--probability", default=None, help="also write the probability volume here")
    p.add_argument("--force", action="store_true", help="run even when the scan is outside the model's declared domain "
                   "(another modality than its training images)")
    job_options(p)
    p.set_defaults(func=cmd_segment_text)
