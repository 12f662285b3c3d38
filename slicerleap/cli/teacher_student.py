"""Command line of the teacher–student method: `train teacher`, `train student`, `pseudolabel`, `boxes`.

Boxes travel as JSON files in RAS mm ({"boxes": [{"role": "organ"|"lesion", "center": [R, A, S],
"size": [x, y, z], "axes": optional 3x3]}), one per case, named like the case's image (case.json);
`slicerleap boxes --labels DIR --out DIR` writes them from labelmaps."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import SlicerLeapError
from ..segmentation.training_methods import TEACHER_STUDENT, resolve_training
from .common import case_name, check_outputs, job_options, process_options, train_and_register, trained_model_options, volume_files


def _boxes_for(names, folder, required: bool) -> list:
    from ..segmentation.boxes import read_boxes

    folder = Path(folder) if folder else None
    out = []
    for name in names:
        path = folder / f"{name}.json" if folder else None
        if path is None or not path.exists():
            if required:
                raise SlicerLeapError(f"No boxes for case '{name}'" + (f" ({path} does not exist)." if path else "."),
                                      "Give --boxes, a folder holding CASE.json per case (RAS mm; see `slicerleap boxes`).")
            out.append(None)
        else:
            out.append([b.to_dict() for b in read_boxes(path)])
    return out


def _pairs(args, validation: int):
    images, labels = volume_files(Path(args.images)), volume_files(Path(args.labels))
    names = [n for n in images if n in labels]
    if not names:
        raise SlicerLeapError(f"No image of {args.images} has a labelmap of the same name in {args.labels}.", "Name each labelmap like its image.")
    return images, labels, names[validation:], names[:validation]


def _settings(args, method: str) -> tuple[dict, int]:
    """The declared training options of `method` (bad values refused before staging), and the validation case count."""
    settings = resolve_training(TEACHER_STUDENT, method, TEACHER_STUDENT.cli_values(args))
    return settings, settings.pop("validation_cases")


def cmd_train_teacher(args) -> int:
    settings, validation = _settings(args, "teacher")
    images, labels, names, val = _pairs(args, validation)
    params = {"config": {**settings, "box_conditioning": args.box_conditioning}, "model_id": args.id, "modality": args.modality,
              "organ_value": args.organ_value, "lesion_value": args.lesion_value, "boxes": _boxes_for(names, args.boxes, False),
              "in_plane_spacing_mm": args.spacing}
    inputs = {"images": [images[n] for n in names], "labels": [labels[n] for n in names],
              "val_images": [images[n] for n in val], "val_labels": [labels[n] for n in val]}
    print(f"{len(names)} case(s) with masks, {len(val)} for validation", file=sys.stderr)
    return train_and_register("train-teacher", inputs, params, args)


def cmd_train_student(args) -> int:
    settings, validation = _settings(args, "student")
    images, labels, names, val = _pairs(args, validation)
    weak = volume_files(Path(args.weak_images)) if args.weak_images else {}
    weak_names = [n for n in weak if n not in labels]
    if weak_names and not args.teacher:
        raise SlicerLeapError("--weak-images need --teacher (the model that pseudo-labels them).", "Add --teacher ID, or drop --weak-images.")
    params = {"config": {**settings, "localisation": not args.no_localisation}, "model_id": args.id, "modality": args.modality,
              "organ_value": args.organ_value, "lesion_value": args.lesion_value, "boxes": _boxes_for(names, args.boxes, False),
              "pseudo_boxes": _boxes_for(weak_names, args.boxes, True), "teacher": args.teacher, "start_from": args.start_from}
    inputs = {"images": [images[n] for n in names], "labels": [labels[n] for n in names], "pseudo_images": [weak[n] for n in weak_names],
              "val_images": [images[n] for n in val], "val_labels": [labels[n] for n in val]}
    print(f"{len(names)} case(s) with masks, {len(weak_names)} with boxes only, {len(val)} for validation", file=sys.stderr)
    return train_and_register("train-student", inputs, params, args)


def cmd_pseudolabel(args) -> int:
    """One volume + one box file, or a folder of volumes + a folder of CASE.json; writes labelmaps and
    uncertainty.json (cases most uncertain first: the order to review them in)."""
    from ..jobs.files import export_output, print_progress, run_task_on_files
    from ..json_files import write_json_atomically

    source, target = Path(args.input), Path(args.output)
    if source.is_dir():
        images = volume_files(source)
        names, paths = list(images), list(images.values())
        boxes = _boxes_for(names, args.boxes, True)
        from ..io.output_files import check_output_path

        check_output_path(target, [source], "folder")  # never the input folder
        destinations = [target / f"{n}.nrrd" for n in names]
    else:
        from ..segmentation.boxes import read_boxes

        names, paths = [case_name(source)], [source]
        boxes = [[b.to_dict() for b in read_boxes(args.boxes)]]
        destinations = [target]
    check_outputs({"images": paths}, {f"pseudo_{n}": d for n, d in enumerate(destinations)})
    result, job = run_task_on_files("pseudolabel", {"images": paths}, {"boxes": boxes, "names": names}, args.model, args.device,
                                    args.keep_files, on_progress=print_progress)
    try:
        for n, destination in enumerate(destinations):
            print(f"{names[n]}: {export_output(job, result, f'pseudo_{n}', destination)}")
    finally:
        job.cleanup()
    queue = sorted(({"case": n, "uncertainty": u, "labels": str(d)} for n, u, d in zip(names, result["metrics"]["uncertainty"], destinations)),
                   key=lambda r: -r["uncertainty"])
    report = (target if source.is_dir() else target.parent) / "uncertainty.json"
    write_json_atomically(report, queue)
    print(json.dumps(queue, indent=1))
    return 0


def cmd_boxes(args) -> int:
    """Box files from labelmaps: an organ box around organ + lesion voxels, a box per connected lesion."""
    from ..io import read_volume
    from ..segmentation.boxes import boxes_from_labels, write_boxes

    source, target = Path(args.labels), Path(args.out)
    files = volume_files(source) if source.is_dir() else {case_name(source): source}
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        boxes = boxes_from_labels(read_volume(path), (args.organ_value,), (args.lesion_value,))
        destination = target / f"{name}.json" if source.is_dir() else target
        write_boxes(boxes, destination)
        print(f"{name}: {sum(b.role == 'organ' for b in boxes)} organ box(es), {sum(b.role == 'lesion' for b in boxes)} lesion box(es) -> {destination}")
    return 0


def add_commands(sub, train_sub) -> None:
    """`train teacher`, `train student` (under `train`), `pseudolabel` and `boxes`."""
    def values(p):
        p.add_argument("--organ-value", type=int, default=1, help="organ label value in the labelmaps")
        p.add_argument("--lesion-value", type=int, default=2, help="lesion label value in the labelmaps")

    def training(t, default_id):
        t.add_argument("--images", required=True, help="folder of volumes")
        t.add_argument("--labels", required=True, help="folder of organ/lesion labelmaps named like their images")
        t.add_argument("--boxes", default=None, help="folder of CASE.json box files (RAS mm; default for masked cases: from the masks)")
        trained_model_options(t, default_id)
        TEACHER_STUDENT.add_cli_options(t, skip=("seed",))  # --seed: trained_model_options
        values(t)
        process_options(t)
        job_options(t)

    t = train_sub.add_parser("teacher", help="teacher annotator: U-Net with organ-to-lesion box attention, from cases with masks")
    training(t, "my-teacher@1.0.0")
    t.add_argument("--box-conditioning", default="o2l", choices=["o2l", "o2l-no-shortcut", "multichannel", "none"],
                   help="how the teacher reads the boxes: o2l (the paper's organ-to-lesion fusion), without its shortcut, as extra input channels, or not at all")
    t.add_argument("--spacing", type=float, default=None, help="in-plane working pixel size in mm (default: median of the images)")
    t.set_defaults(func=cmd_train_teacher)

    t = train_sub.add_parser("student", help="student segmentor: masks + the teacher's pseudo-labels of box-only cases")
    training(t, "my-student@1.0.0")
    t.add_argument("--weak-images", default=None, help="folder of box-only volumes (their boxes in --boxes)")
    t.add_argument("--teacher", default=None, help="teacher model id that pseudo-labels --weak-images")
    t.add_argument("--start-from", default=None, help="a student model id to fine-tune")
    t.add_argument("--no-localisation", action="store_true", help="train without the localisation branch (ablation)")
    t.set_defaults(func=cmd_train_student)

    p = sub.add_parser("pseudolabel", help="pseudo-labels of box-labelled volumes with a teacher model, most uncertain first")
    p.add_argument("--model", required=True, help="teacher model id")
    p.add_argument("--input", required=True, help="volume file or folder of volumes")
    p.add_argument("--boxes", required=True, help="box JSON file (RAS mm), or folder of CASE.json for a folder input")
    p.add_argument("--output", required=True, help="labelmap file, or folder")
    job_options(p)
    p.set_defaults(func=cmd_pseudolabel)

    p = sub.add_parser("boxes", help="write box JSON files (RAS mm) from organ/lesion labelmaps")
    p.add_argument("--labels", required=True, help="labelmap file or folder")
    p.add_argument("--out", required=True, help="JSON file, or folder")
    values(p)
    p.set_defaults(func=cmd_boxes)
