"""How likely a box-guided pseudo-label is wrong, from what the annotator gave (the boxes) and what the
teacher predicted. Boxes are drawn tight around each lesion, so a right lesion label fills a typical
fraction of its box; a label that fills much less has missed (part of) the lesion — the pseudo-labels an
annotator should correct first. The typical fill is measured on the strongly labelled cases."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

LESION_BOX = 2
# median fill of the true lesions in their boxes in the lesion benchmark's strongly labelled cases (0.39-0.41 over
# seeds 0-2, RESULTS.md); used when a teacher's card does not carry its own
DEFAULT_FILL = 0.4


def box_fills(lesion: np.ndarray, boxes: np.ndarray) -> list[float]:
    """Fraction of each lesion box (connected region of `boxes == 2`) that `lesion` (bool, same grid) covers."""
    regions, n = ndimage.label(boxes == LESION_BOX)
    if n == 0:
        return []
    sizes = ndimage.sum(np.ones_like(regions), regions, index=range(1, n + 1))
    covered = ndimage.sum(lesion, regions, index=range(1, n + 1))
    return [float(c / s) for c, s in zip(covered, sizes)]


def box_fill_reference(cases) -> float:
    """Median fill of the true lesions in their boxes over labelled cases (`labels == 2`, `boxes`); DEFAULT_FILL
    when they hold no lesion."""
    fills = [f for case in cases for f in box_fills(case.labels == LESION_BOX, case.boxes)]
    return float(np.median(fills)) if fills else DEFAULT_FILL


def box_fill_shortfall(lesion: np.ndarray, boxes: np.ndarray, reference: float) -> float:
    """Mean over the lesion boxes of max(0, 1 − fill / reference): 0 when every box is filled as a true
    lesion fills it, 1 when the label misses every box; 0 for a case without lesion boxes."""
    fills = box_fills(lesion, boxes)
    if not fills:
        return 0.0
    return float(np.mean([max(0.0, 1.0 - f / max(reference, 1e-6)) for f in fills]))


def pseudo_label_uncertainty(lesion: np.ndarray, boxes: np.ndarray, reference: float = DEFAULT_FILL) -> float:
    """0 (looks right) .. 1 (looks wrong) for a pseudo-label's lesion mask: the box-fill shortfall; on a case
    without lesion boxes (the annotator saw no lesion), the fraction of its organ box labelled lesion."""
    if (boxes == LESION_BOX).any():
        return box_fill_shortfall(lesion, boxes, reference)
    organ = boxes >= 1
    return float(lesion[organ].mean()) if organ.any() else 0.0
