"""Task "train-sks": train a 2.5D slice segmenter (SKS, or the U-Net baseline) from few pixel labels
plus slice-level labels, and hand back weights + card (the parent registers them on success).

inputs: pixel_images + pixel_labels (pairs), slice_images (no masks), optional val_images + val_labels.
params: slice_labels: one entry per slice image, {"flags": [0/1 per stored slice]} or
{"lesion_slices": [[k1, k2], ...]} (0-based inclusive slices that contain lesion, every other slice has none);
label_value: lesion value in the labelmaps (default: any non-zero); config: the declared training parameters
(segmentation/training_methods.py: SKS_TRAINING, method = "model") and other SliceTrainingConfig fields;
in_plane_spacing_mm (default: median of the training images); model_id, title, modality, label."""
from __future__ import annotations


import numpy as np

from ..errors import BadInputError
from ..io import read_volume
from ..mixed_precision import resolve_precision
from ..models.cards import model_output, trained_model_card
from ..models.domain import measure_training_case, training_domain
from ..models.weights import save_weights
from ..segmentation.label_specs import LESION_LABEL
from ..segmentation.sks.trainer import train_slice_model
from ..segmentation.slice_data import median_in_plane_spacing, prepare_case, ranges_to_flags, slice_input_spec
from ..segmentation.slice_training import SliceTrainingConfig
from ..segmentation.training_methods import SKS_TRAINING, training_config
from ..transforms import check_scalar_volume


def _flags(entry, image, n: int) -> np.ndarray:
    k = image.array.shape[0]
    if "flags" in entry:
        return np.asarray(entry["flags"], dtype=np.int8)
    if "lesion_slices" in entry:
        return ranges_to_flags(entry["lesion_slices"], k)
    raise BadInputError(f"Slice-level labels of case {n + 1} give neither 'flags' nor 'lesion_slices'.",
                        "Give per-slice 0/1 flags, or the slice ranges that contain lesion.")


def run(ctx) -> dict:
    p = ctx.params
    pixel_images, pixel_labels = ctx.input_paths("pixel_images"), ctx.input_paths("pixel_labels")
    slice_images, val_images, val_labels = ctx.input_paths("slice_images"), ctx.input_paths("val_images"), ctx.input_paths("val_labels")
    slice_entries = p.get("slice_labels") or []
    if not pixel_images or len(pixel_images) != len(pixel_labels):
        raise BadInputError(f"Training needs at least one case with a pixel labelmap; got {len(pixel_images)} images "
                            f"and {len(pixel_labels)} labelmaps.", "Segment the lesion in at least one case.")
    if len(slice_entries) != len(slice_images) or len(val_images) != len(val_labels):
        raise BadInputError(f"{len(slice_images)} cases without masks but {len(slice_entries)} slice-label lists.",
                            "Give one slice-label list (or slice ranges) per case without a mask.")
    config = SliceTrainingConfig(**training_config(SKS_TRAINING, p.get("config"), SliceTrainingConfig))
    label_value = p.get("label_value")
    read = lambda path, role: _checked(read_volume(path), role)
    px = [(read(i, f"pixel-labelled image {n + 1}"), read_volume(l)) for n, (i, l) in enumerate(zip(pixel_images, pixel_labels))]
    sl = [read(i, f"slice-labelled image {n + 1}") for n, i in enumerate(slice_images)]
    vl = [(read(i, f"validation image {n + 1}"), read_volume(l)) for n, (i, l) in enumerate(zip(val_images, val_labels))]
    spacing = float(p.get("in_plane_spacing_mm") or median_in_plane_spacing([im for im, _ in px] + sl))
    spec = slice_input_spec(spacing, config.context, p.get("normalisation"))

    def binary(lab):  # the lesion as value 1, whatever value the user's labelmap used
        return lab.with_array((lab.array == label_value) if label_value is not None else lab.array > 0)

    label = {**LESION_LABEL, **p.get("label", {}), "value": 1}
    measured = [measure_training_case(im, binary(lab).array, [label]) for im, lab in px] + \
        [measure_training_case(im, None, [label]) for im in sl]
    total = len(px) + len(sl) + len(vl)
    def prepared(n, case):
        ctx.report(0.05 * n / total, "preparing", f"case {n}/{total}")
        ctx.check_cancelled()
        return case
    pixel_cases = [prepared(n + 1, prepare_case(im, spec, binary(lab))) for n, (im, lab) in enumerate(px)]
    for case in pixel_cases:
        if not case.labels.any():
            raise BadInputError(f"The labelmap of '{case.name}' is empty.", "Paint the lesion, or give that case as slice labels only.")
    slice_cases = [prepared(len(px) + n + 1, prepare_case(im, spec, slice_labels=_flags(e, im, n)))
                   for n, (im, e) in enumerate(zip(sl, slice_entries))]
    val_cases = [prepared(len(px) + len(sl) + n + 1, prepare_case(im, spec, binary(lab))) for n, (im, lab) in enumerate(vl)]
    net, history, seconds = train_slice_model(
        pixel_cases, slice_cases, val_cases, config, ctx.device,
        lambda f, message, record: ctx.report(0.05 + 0.9 * f, "training", message, **record), ctx.stop_requested)
    save_weights(net, ctx.output_path("model.safetensors"))
    kind = "SKS (Skip and Skip, 2.5D Swin V2 dual encoder)" if config.model == "sks" else "MONAI 2D U-Net (2.5D input)"
    card = trained_model_card(
        p, default_id=f"my-{config.model}@1.0.0", default_title=f"{kind} trained in SlicerLeap", task="segmentation",
        module="SKSSegmentation", architecture=config.architecture(), input_spec=spec, labels=[label],
        training_data=f"{len(pixel_cases)} case(s) with pixel labels, {len(slice_cases)} with slice-level labels only, "
                      f"{len(val_cases)} validation case(s), from the user's scene or folder",
        training={**config.to_dict(), "precision": resolve_precision(config.precision, ctx.device), "seconds": round(seconds, 1),
                  "device": str(ctx.device)},
        evaluation={"history": history}, domain=training_domain(measured, p.get("modality")))
    last = history[-1] if history else {}
    val = [r["val_dice"] for r in history if r.get("val_dice") is not None]
    return {"outputs": {"model": model_output(ctx, card)},
            "metrics": {"final_loss": last.get("loss"), "best_val_dice": max(val) if val else None, "seconds": round(seconds, 1),
                        "pixel_cases": len(pixel_cases), "slice_cases": len(slice_cases)}}


def _checked(volume, role):
    check_scalar_volume(volume, role, min_size=1)
    return volume
