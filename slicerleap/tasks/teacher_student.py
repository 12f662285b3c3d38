"""Tasks of the teacher–student method (boxes + a few masks -> pseudo-labels -> student):

"train-teacher": inputs images + labels (pairs); params boxes (per case a list of box dicts in RAS mm,
or null to derive them from the labels), organ_value / lesion_value (label values, default 1 / 2),
optional val_images + val_labels, config (the declared training parameters, segmentation/training_methods.py,
and other TeacherStudentConfig fields), model_id, labels (organ/lesion specs).
"pseudolabel": model = a teacher; inputs images; params boxes (per case, required). One labelmap per
case with the teacher's uncertainty (0..1: how far its lesion label falls short of filling the lesion boxes as true
lesions do, segmentation/teacher_student/uncertainty.py) in its attributes.
"train-student": inputs images + labels (manual or corrected masks), pseudo_images (weak cases; their soft
labels come from params "teacher" in the job), optional val_*; params boxes and pseudo_boxes (per case),
start_from (a student to fine-tune), config, model_id. The saved student has no localisation branch."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import BadInputError
from ..io import read_volume
from ..mixed_precision import resolve_precision
from ..models.cards import model_output, trained_model_card
from ..models.domain import measure_training_case, training_domain
from ..models import get_catalog
from ..models.networks import load_model
from ..models.weights import load_verified_state_dict, save_weights
from ..segmentation.boxes import Box, boxes_from_labels
from ..segmentation.label_specs import LESION_LABEL
from ..segmentation.slice_data import slice_input_spec
from ..segmentation.teacher_student.nets import inference_state
from ..segmentation.teacher_student.uncertainty import DEFAULT_FILL, box_fill_reference
from ..segmentation.teacher_student.training import (
    TeacherStudentConfig, prepare_box_case, pseudo_label, train_box_unet)
from ..segmentation.training_methods import TEACHER_STUDENT, training_config
from ..transforms import check_scalar_volume, resample_to_reference
from ..volume import reorient_to_ras_axes

ORGAN_LABEL = {"value": 1, "name": "Organ", "color": "#dcaa8c", "role": "organ",
               "terminology": {"category": "SCT^123037004^Anatomical Structure", "type": "SCT^91723000^Anatomical structure"}}


def _boxes(entries, n: int, role_of_case: str) -> list[Box]:
    try:
        return [Box(e["center"], e["size"], e.get("role", "lesion"), e.get("axes", np.eye(3))) for e in entries]
    except (KeyError, TypeError) as exc:
        raise BadInputError(f"The boxes of {role_of_case} {n + 1} are malformed ({exc}).",
                            "Give each box as {'role': 'organ'|'lesion', 'center': [R, A, S], 'size': [x, y, z]} in mm.") from None


def _image(path, role: str):
    volume = read_volume(path)
    check_scalar_volume(volume, role, min_size=1)
    return volume


def _labels(path, image, organ_value: int, lesion_value: int, role: str, allow_empty: bool):
    """The labelmap on the image's grid with classes 1 organ, 2 lesion (other values: background)."""
    labels = resample_to_reference(read_volume(path), image, "nearest")
    classes = np.zeros(labels.array.shape, dtype=np.uint8)
    classes[labels.array == organ_value] = 1
    classes[labels.array == lesion_value] = 2
    if not allow_empty and not classes.any():
        raise BadInputError(f"The labelmap of {role} has neither organ ({organ_value}) nor lesion ({lesion_value}) voxels.",
                            "Check the label values, or leave that case out.")
    return labels.with_array(classes)


def _spec(ctx, images, config: TeacherStudentConfig, card: dict | None = None) -> dict:
    if card is not None:  # the teacher's or the previous student's grid; a student reads no boxes
        return {k: v for k, v in card["input"].items() if k != "box_channels"}
    spacing = ctx.params.get("in_plane_spacing_mm") or float(np.median([reorient_to_ras_axes(im).spacing[:2] for im in images]))
    return slice_input_spec(float(spacing), config.context, ctx.params.get("normalisation"))


def _labelled_cases(ctx, spec, images, labels, boxes_param, role):
    cases = []
    for n, (image, labels_) in enumerate(zip(images, labels)):
        ctx.check_cancelled()
        entries = boxes_param[n] if boxes_param and n < len(boxes_param) else None
        boxes = _boxes(entries, n, role) if entries else boxes_from_labels(labels_)
        cases.append(prepare_box_case(image, spec, boxes, labels_))
    return cases


def _read_pairs(ctx, image_key: str, label_key: str, role: str, allow_empty: bool = False):
    """Images and their labelmaps; `allow_empty`: a mask without organ or lesion is a valid negative case
    (an accepted pseudo-label may be empty), else it is taken for a mistake."""
    images = [_image(p, f"{role} {n + 1}") for n, p in enumerate(ctx.input_paths(image_key))]
    label_paths = ctx.input_paths(label_key)
    if len(label_paths) != len(images):
        raise BadInputError(f"{len(images)} {role} images but {len(label_paths)} labelmaps.", "Give one labelmap per image.")
    organ, lesion = int(ctx.params.get("organ_value", 1)), int(ctx.params.get("lesion_value", 2))
    return images, [_labels(p, im, organ, lesion, f"{role} {n + 1}", allow_empty) for n, (p, im) in enumerate(zip(label_paths, images))]


def _card(ctx, role: str, config: TeacherStudentConfig, spec: dict, history, seconds, counts: str,
          training_pairs: list) -> dict:
    """training_pairs: (image, labels 1 organ / 2 lesion) of the cases with masks, for the card's domain."""
    p = ctx.params
    labels = [{**ORGAN_LABEL, **p.get("labels", {}).get("organ", {}), "value": 1},
              {**LESION_LABEL, **p.get("labels", {}).get("lesion", {}), "value": 2}]
    measured = [measure_training_case(image, label.array, labels) for image, label in training_pairs]
    kind = ("teacher annotator (U-Net with organ-to-lesion box attention; needs boxes)" if role == "teacher"
            else "student segmentor (U-Net trained on masks + teacher pseudo-labels with a localisation branch)")
    input_spec = {**spec, "box_channels": 2} if role == "teacher" else spec
    return trained_model_card(
        p, default_id=f"my-{role}@1.0.0", default_title=f"Teacher–student {kind}", task="segmentation",
        module="SKSSegmentation", architecture=config.architecture(role), input_spec=input_spec, labels=labels,
        training_data=counts, postprocess={"largest_organ": True, "fill_holes": True, "lesions_inside_organ": True},
        training={**config.to_dict(), "precision": resolve_precision(config.precision, ctx.device), "role": role,
                  "seconds": round(seconds, 1), "device": str(ctx.device),
                  **({"fine_tuned_from": p["start_from"]} if p.get("start_from") else {})},
        evaluation={"history": history}, **({"domain": training_domain(measured, p.get("modality"))} if measured else {}))


def _result(ctx, card: dict, history, seconds, extra: dict) -> dict:
    val = [r["lesion_dice"] for r in history if "lesion_dice" in r]
    return {"outputs": {"model": model_output(ctx, card)},
            "metrics": {"final_loss": history[-1]["loss"] if history else None, "best_val_lesion_dice": max(val) if val else None,
                        "seconds": round(seconds, 1), **extra}}


def _val_cases(ctx, spec):
    if not ctx.input_paths("val_images"):
        return []
    images, labels = _read_pairs(ctx, "val_images", "val_labels", "validation case")
    return _labelled_cases(ctx, spec, images, labels, None, "validation case")


def run_train_teacher(ctx) -> dict:
    config = TeacherStudentConfig(**training_config(TEACHER_STUDENT, ctx.params.get("config"), TeacherStudentConfig, "teacher"))
    images, labels = _read_pairs(ctx, "images", "labels", "strongly labelled case")
    if not images:
        raise BadInputError("The teacher needs at least one case with an organ/lesion mask.", "Segment one or more cases first.")
    spec = _spec(ctx, images, config)
    cases = _labelled_cases(ctx, spec, images, labels, ctx.params.get("boxes"), "strongly labelled case")
    val = _val_cases(ctx, spec)
    net, history, seconds = train_box_unet("teacher", cases, val, config, ctx.device,
                                           lambda f, m, r: ctx.report(0.05 + 0.9 * f, "training", m, **r), ctx.stop_requested)
    save_weights(net, ctx.output_path("model.safetensors"))
    card = _card(ctx, "teacher", config, spec, history, seconds, f"{len(cases)} case(s) with masks and boxes, {len(val)} validation case(s)",
                 list(zip(images, labels)))
    card["training"]["lesion_box_fill"] = round(box_fill_reference(cases), 4)  # the pseudo-labels' uncertainty reference
    return _result(ctx, card, history, seconds, {"cases": len(cases)})


def _teacher(ctx, model_id: str):
    card = get_catalog().get(model_id, "segmentation", "pseudolabel")
    if not card["input"].get("box_channels"):
        raise BadInputError(f"Model '{card['id']}' is not a teacher annotator (it does not read boxes).",
                            "Pick a model trained with 'train teacher'.")
    return card, load_model(card, ctx.device)


def _weak_cases(ctx, key: str, boxes_key: str, card: dict, teacher, report_span=(0.05, 0.3)):
    """Weak cases with the teacher's soft labels; returns (cases, uncertainties)."""
    paths, entries = ctx.input_paths(key), ctx.params.get(boxes_key) or []
    if len(entries) != len(paths):
        raise BadInputError(f"{len(paths)} box-labelled images but boxes for {len(entries)}.", "Give the boxes of every case (RAS, mm).")
    cases, scores = [], []
    lo, hi = report_span
    for n, (path, boxes) in enumerate(zip(paths, entries)):
        if not boxes:
            raise BadInputError(f"Case {n + 1} has no boxes.", "Draw at least one organ or lesion box (ROI) on it.")
        case = prepare_box_case(_image(path, f"box-labelled case {n + 1}"), card["input"], _boxes(boxes, n, "box-labelled case"))
        case.soft, uncertainty = pseudo_label(teacher, case, ctx.device, card["input"]["slice_context"],
                                              fill_reference=card.get("training", {}).get("lesion_box_fill", DEFAULT_FILL))
        cases.append(case)
        scores.append(uncertainty)
        ctx.report(lo + (hi - lo) * (n + 1) / len(paths), "pseudo-labelling", f"case {n + 1}/{len(paths)}: uncertainty {uncertainty:.3f}")
    return cases, scores


def run_pseudolabel(ctx) -> dict:
    from ..segmentation.postprocess import postprocess_labels

    card, teacher = _teacher(ctx, ctx.spec.model)
    ctx.extra_result["model"] = {"id": card["id"], "sha256": card["sha256"]}
    cases, scores = _weak_cases(ctx, "images", "boxes", card, teacher, (0.05, 0.85))
    outputs = {}
    names = ctx.params.get("names") or [f"case {n + 1}" for n in range(len(cases))]
    for n, (case, path) in enumerate(zip(cases, ctx.input_paths("images"))):
        labels = postprocess_labels(case.soft.astype(np.float32).argmax(0).astype(np.int16), card["labels"], case.grid.spacing,
                                    card.get("postprocess"))
        on_input = resample_to_reference(case.grid.with_array(labels), read_volume(path), "nearest")
        file = ctx.write_output(on_input.with_array(on_input.array.astype(np.int16)), f"pseudo_{n}.nrrd")
        outputs[f"pseudo_{n}"] = {"kind": "labels", "file": file, "reference": "images", "index": n, "labels": card["labels"],
                                  "name": f"{names[n]} pseudo-label",
                                  "attributes": {"SlicerLeap.model": card["id"], "SlicerLeap.provenance": "pseudo",
                                                 "SlicerLeap.uncertainty": f"{scores[n]:.5f}"}}
    return {"outputs": outputs, "metrics": {"uncertainty": [round(s, 5) for s in scores]}}


def run_train_student(ctx) -> dict:
    p = ctx.params
    config = TeacherStudentConfig(**training_config(TEACHER_STUDENT, p.get("config"), TeacherStudentConfig, "student"))
    images, labels = _read_pairs(ctx, "images", "labels", "labelled case", allow_empty=True)
    initial, previous = None, None
    if p.get("start_from"):  # fine-tune a previous student: its width, its grid, its weights
        previous = get_catalog().get(p["start_from"], "segmentation", "train-student")
        initial = load_verified_state_dict(previous)
        config = replace(config, features=tuple(previous["architecture"]["args"]["features"]))
    teacher_card, teacher = _teacher(ctx, p["teacher"]) if ctx.input_paths("pseudo_images") else (None, None)
    spec = _spec(ctx, images, config, previous or teacher_card)
    cases = _labelled_cases(ctx, spec, images, labels, p.get("boxes"), "labelled case")
    weak, _ = _weak_cases(ctx, "pseudo_images", "pseudo_boxes", teacher_card, teacher) if teacher is not None else ([], [])
    if not cases and not weak:
        raise BadInputError("The student has nothing to learn from.", "Give cases with masks and/or box-labelled cases with a teacher.")
    val = _val_cases(ctx, spec)
    net, history, seconds = train_box_unet("student", cases + weak, val, config, ctx.device,
                                           lambda f, m, r: ctx.report(0.3 + 0.65 * f, "training", m, **r), ctx.stop_requested,
                                           initial_state=initial)
    save_weights(inference_state(net), ctx.output_path("model.safetensors"))
    counts = (f"{len(cases)} case(s) with masks (manual or corrected), {len(weak)} with boxes and pseudo-labels of "
              f"{teacher_card['id'] if teacher_card else 'no teacher'}, {len(val)} validation case(s)")
    card = _card(ctx, "student", config, spec, history, seconds, counts, list(zip(images, labels)))
    if teacher_card:
        card["training"]["teacher"] = teacher_card["id"]
    return _result(ctx, card, history, seconds, {"labelled_cases": len(cases), "pseudo_cases": len(weak)})
