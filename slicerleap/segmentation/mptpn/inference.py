"""Text-prompted segmentation of a volume's axial slices with an MPTPN model, on the input's own grid.

A prompt describes what one slice shows ("small round lesion in the upper left"), so it is applied to the
slices the user points at: a slab of patient S positions (mm; the current slice is a slab of one), or every
slice. Each chosen slice goes the way training slices went (RAS axial grid at the card's in-plane spacing, as
the axial view shows it, fitted into the model's square); results come back the same way, then onto the
input grid (labels nearest neighbour, probability linear). Slices outside the slab stay background.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ...errors import BadInputError
from ...transforms import check_scalar_volume, resample_to_reference
from ...volume import Volume
from ..inference import is_text_model
from ..slice_data import prepare_case
from .prompt_view import SquareFit, as_viewed


def require_prompt(prompt) -> str:
    """The prompt, stripped; refused when empty (MPTPN segments what the prompt describes)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadInputError("The text prompt is empty.", "Describe what to segment, e.g. 'one small round lesion in the upper left', "
                                                         "or write the prompt from a click or a box.")
    return prompt.strip()


def slice_positions_mm(grid: Volume) -> np.ndarray:
    """Patient S coordinate (mm) of each axial slice's centre on a RAS-reoriented slice grid."""
    k, j, i = grid.array.shape[:3]
    centres = np.stack([np.full(k, (i - 1) / 2), np.full(k, (j - 1) / 2), np.arange(k), np.ones(k)])
    return (grid.ijk_to_ras @ centres)[2]


def slices_in_slab(grid: Volume, slab_mm) -> np.ndarray:
    """Grid slices whose centre lies in [s1, s2] (mm, either order), widened by half a slice so that a slab of
    one position picks the slice through it. None: every slice."""
    positions = slice_positions_mm(grid)
    if slab_mm is None:
        return np.arange(len(positions))
    low, high = sorted(float(s) for s in slab_mm)
    half = abs(float(np.median(np.diff(positions)))) / 2 if len(positions) > 1 else np.inf
    chosen = np.flatnonzero((positions >= low - half) & (positions <= high + half))
    if not chosen.size:
        raise BadInputError(f"No axial slice of the volume lies between S = {low:.1f} and {high:.1f} mm "
                            f"(its slices span {positions.min():.1f} .. {positions.max():.1f} mm).",
                            "Move the axial view onto the volume, or give slice positions inside it.")
    return chosen


def segment_with_prompt(volume: Volume, card: dict, net: torch.nn.Module, prompt: str, device, slab_mm=None,
                        report: Callable | None = None, with_probabilities: bool = False, batch_size: int = 8):
    """Label Volume on `volume`'s grid (the card's label value where the model finds what `prompt` describes,
    on the slab's slices), the grid slices used, and optionally the probability on the same grid."""
    from .net import MPTPN, ImageOnly
    from .trainer import batch_logits

    report = report or (lambda *a, **k: None)
    if not is_text_model(card):
        raise BadInputError(f"Model '{card['id']}' does not read text prompts.", "Pick a text-prompted (MPTPN) model.")
    prompt = require_prompt(prompt)
    spec = card["input"]
    check_scalar_volume(volume, working_spacing=[s if s is not None else volume.spacing[n] for n, s in enumerate(spec["spacing_mm"])],
                        min_size=1)
    report(0.05, "preparing", "reorienting and resampling in-plane")
    case = prepare_case(volume, spec)
    ks = slices_in_slab(case.grid, slab_mm)
    fit = SquareFit(case.image.shape[1], case.image.shape[2], int(spec["img_size"]))
    probs = np.zeros(case.image.shape, dtype=np.float32)
    net = (net if isinstance(net, (MPTPN, ImageOnly)) else ImageOnly(net)).eval()  # the image-only baseline ignores the prompt
    with torch.inference_mode():
        for start in range(0, len(ks), batch_size):
            part = ks[start:start + batch_size]
            logits = batch_logits(net, fit.to_model_input(as_viewed(case.image[part])), [prompt] * len(part), device)
            probs[part] = as_viewed(fit.from_model_input(torch.sigmoid(logits.float()).cpu()))
            report(0.1 + 0.8 * min(start + batch_size, len(ks)) / len(ks), "inference", f"slice {min(start + batch_size, len(ks))}/{len(ks)}")
    report(0.92, "resampling", "back to the input grid")
    value = int(card["labels"][0]["value"])
    labels = resample_to_reference(case.grid.with_array((probs > 0.5).astype(np.int16) * value), volume, "nearest")
    labels.metadata["name"] = volume.metadata.get("name", "volume") + " prompted segmentation"
    probability = resample_to_reference(case.grid.with_array(probs), volume, "linear") if with_probabilities else None
    return labels, ks, probability
