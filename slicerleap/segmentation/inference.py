"""Whole-volume segmentation with a catalog model: resample to the model's spacing, normalise as the
card says, sliding-window inference, argmax, and back onto the input grid (nearest neighbour)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..transforms import check_scalar_volume, normalise, resample_to_reference, resample_to_spacing
from ..volume import Volume


def count_windows(shape, roi, overlap: float) -> int:
    """Number of windows sliding_window_inference visits (same scan interval rule as MONAI)."""
    n = 1
    for s, r in zip(shape, roi):
        r = min(r, s)
        interval = max(1, int(r * (1 - overlap))) if r < s else 1
        n *= 1 if r >= s else -(-(s - r) // interval) + 1
    return n


def segment_volume(volume: Volume, card: dict, net: torch.nn.Module, device, report: Callable | None = None,
                   overlap: float = 0.25, batch_size: int = 2, with_probabilities: bool = False):
    """Label Volume on `volume`'s grid (values = card label values), and optionally the foreground
    probability (1 - P(background)) on the same grid."""
    from monai.inferers import sliding_window_inference

    spacing = card["input"]["spacing_mm"]
    check_scalar_volume(volume, working_spacing=spacing, min_size=4)
    report = report or (lambda *a, **k: None)
    work = resample_to_spacing(volume.with_array(volume.array.astype(np.float32)), spacing, "linear")
    image = normalise(work.array, card["input"]["normalisation"])
    roi = card["input"].get("patch", [64, 64, 64])
    total = max(1, -(-count_windows(image.shape, roi, overlap) // batch_size))
    done = [0]

    def predictor(x):
        done[0] += 1
        report(0.1 + 0.8 * done[0] / total, "inference", f"window batch {done[0]}/{total}")
        return net(x)

    tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None].to(device)
    with torch.inference_mode():
        logits = sliding_window_inference(tensor, roi, batch_size, predictor, overlap=overlap, mode="gaussian")
        probs = torch.softmax(logits.float(), dim=1)[0].cpu().numpy()
    report(0.92, "postprocess", "resampling to the input grid")
    values = np.array([0] + [int(l["value"]) for l in card["labels"]], dtype=np.int16)
    labels_work = values[np.argmax(probs, axis=0)]
    labels = resample_to_reference(work.with_array(labels_work), volume, "nearest")
    labels.metadata["name"] = volume.metadata.get("name", "volume") + " segmentation"
    if not with_probabilities:
        return labels, None
    fg = resample_to_reference(work.with_array((1.0 - probs[0]).astype(np.float32)), volume, "linear")
    return labels, fg
