"""Whole-volume segmentation with a catalog model, on the input's own grid.

3D models: resample to the model's spacing, normalise as the card says, sliding-window inference.
2.5D models (cards with "slice_context"): slices of the model's plane at its in-plane spacing, a slice
and its neighbours per input, batched. Both end the same way: argmax → label values → optional clean-up
→ back onto the input grid (nearest neighbour); optional foreground probability (linear)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..errors import BadInputError
from ..models.openvino_backend import inference_net
from ..transforms import check_scalar_volume, normalise, resample_to_reference, resample_to_spacing
from ..volume import Volume
from .postprocess import postprocess_labels
from .slice_data import SliceCase, neighbour_stack, prepare_case


def count_windows(shape, roi, overlap: float) -> int:
    """Number of windows sliding_window_inference visits (same scan interval rule as MONAI)."""
    n = 1
    for s, r in zip(shape, roi):
        r = min(r, s)
        interval = max(1, int(r * (1 - overlap))) if r < s else 1
        n *= 1 if r >= s else -(-(s - r) // interval) + 1
    return n


def is_slice_model(card: dict) -> bool:
    return card["input"].get("slice_context") is not None


def is_text_model(card: dict) -> bool:
    return card.get("task") == "text-segmentation" or "text_prompt" in card.get("input", {})


def segment_volume(volume: Volume, card: dict, net: torch.nn.Module, device, report: Callable | None = None,
                   overlap: float = 0.25, batch_size: int | None = None, with_probabilities: bool = False,
                   postprocess: dict | None = None, backend: str = "auto"):
    """Label Volume on `volume`'s grid (values = card label values), and optionally the foreground
    probability (1 - P(background)) on the same grid. `postprocess`: options of `postprocess_labels`
    (None: the card's defaults). batch_size: windows (3D, default 2) or slices (2.5D, default 8) per forward pass.
    backend: what runs the network (models/openvino_backend.py): auto | torch | openvino."""
    report = report or (lambda *a, **k: None)
    spec = card["input"]
    if spec.get("box_channels"):
        raise BadInputError(f"Model '{card['id']}' is a teacher annotator: it segments only inside boxes you give it.",
                            "Use it to make pseudo-labels (SKSSegmentation > Boxes, or `slicerleap pseudolabel`), "
                            "or segment with a student model.")
    if is_text_model(card):
        raise BadInputError(f"Model '{card['id']}' segments what a text prompt describes; it needs a prompt.",
                            "Use SKSSegmentation > Text prompt, `slicerleap segment-text --prompt ...`, or the task 'segment-text'.")
    working = [s if s is not None else volume.spacing[n] for n, s in enumerate(spec["spacing_mm"])]
    check_scalar_volume(volume, working_spacing=working, min_size=1 if is_slice_model(card) else 4)
    if is_slice_model(card):
        grid, probs = _slice_probabilities(volume, card, net, device, report, batch_size or 8, backend)
    else:
        grid, probs = _window_probabilities(volume, card, net, device, report, overlap, batch_size or 2, backend)
    report(0.92, "postprocess", "cleaning up and resampling to the input grid")
    values = np.array([0] + [int(l["value"]) for l in card["labels"]], dtype=np.int16)
    labels_work = values[np.argmax(probs, axis=0)]
    options = {**card.get("postprocess", {}), **(postprocess or {})}
    labels_work = postprocess_labels(labels_work, card["labels"], grid.spacing, options)
    labels = resample_to_reference(grid.with_array(labels_work), volume, "nearest")
    labels.metadata["name"] = volume.metadata.get("name", "volume") + " segmentation"
    if not with_probabilities:
        return labels, None
    fg = resample_to_reference(grid.with_array((1.0 - probs[0]).astype(np.float32)), volume, "linear")
    return labels, fg


def _window_probabilities(volume, card, net, device, report, overlap, batch_size, backend):
    from monai.inferers import sliding_window_inference

    work = resample_to_spacing(volume.with_array(volume.array.astype(np.float32)), card["input"]["spacing_mm"], "linear")
    image = normalise(work.array, card["input"]["normalisation"])
    roi = card["input"].get("patch", [64, 64, 64])
    total = max(1, -(-count_windows(image.shape, roi, overlap) // batch_size))
    net = inference_net(net, device, backend, total, card.get("sha256"), report)
    done = [0]

    def predictor(x):
        done[0] += 1
        report(0.1 + 0.8 * done[0] / total, "inference", f"window batch {done[0]}/{total}")
        return net(x)

    tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None].to(device)
    with torch.inference_mode():
        logits = sliding_window_inference(tensor, roi, batch_size, predictor, overlap=overlap, mode="gaussian")
        return work, torch.softmax(logits.float(), dim=1)[0].cpu().numpy()


def _slice_probabilities(volume, card, net, device, report, batch_size, backend):
    report(0.05, "preparing", "reorienting and resampling in-plane")
    case = prepare_case(volume, card["input"])
    net = inference_net(net, device, backend, -(-case.image.shape[0] // batch_size), card.get("sha256"), report)
    probs = predict_case(net, case, device, batch_size, card["input"]["slice_context"],
                         lambda done, total: report(0.1 + 0.8 * done / total, "inference", f"slice {done}/{total}"))
    return case.grid, probs


def predict_case(net, case: SliceCase, device, batch_size: int = 8, context: int = 1,
                 report: Callable | None = None, extra: np.ndarray | None = None) -> np.ndarray:
    """Softmax probabilities (n_classes, K, J, I) for every slice of `case`, in batches of slices. Slices are
    zero-padded to a multiple of 32 pixels (U-Net strides, Swin patches and merges) and cropped back.
    `extra` (C, K, J, I): more input channels per slice after the image stack (e.g. box maps)."""
    k, h, w = case.image.shape
    pad = ((0, 0), (0, 0), (0, -h % 32), (0, -w % 32))
    out = None
    with torch.inference_mode():
        for start in range(0, k, batch_size):
            ks = np.arange(start, min(k, start + batch_size))
            stack = neighbour_stack(case.image, ks, context)
            if extra is not None:
                stack = np.concatenate([stack, extra[:, ks].transpose(1, 0, 2, 3).astype(stack.dtype)], axis=1)
            x = torch.from_numpy(np.pad(stack, pad)).float().to(device)
            probs = torch.softmax(net(x).float(), dim=1)[:, :, :h, :w].cpu().numpy()
            if out is None:
                out = np.empty((probs.shape[1], k) + probs.shape[2:], dtype=np.float32)
            out[:, ks] = probs.transpose(1, 0, 2, 3)
            if report:
                report(ks[-1] + 1, k)
    return out
