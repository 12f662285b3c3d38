"""Where per-pair optimisation needs to run: the box around what either image shows, plus a margin.
Outside it both images are empty, LNCC carries no information and only the regulariser would act, so the
optimisation skips it (a skull-stripped brain fills ~40 % of a scan's grid: 2-3x fewer voxels per step)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def foreground_box(fixed_t: torch.Tensor, moving_t: torch.Tensor, margin: int, threshold: float = 0.05,
                   min_saving: float = 0.15) -> tuple[slice, slice, slice] | None:
    """Index slices (k, j, i) of the box around voxels where either image (1, 1, k, j, i), normalised to
    [0, 1], is brighter than `threshold` after a 5³ mean (isolated noise does not count; edges widen by 2), grown by
    `margin` voxels; None when the box would save less than `min_saving` of the grid or nothing shows."""
    shown = F.avg_pool3d(torch.maximum(fixed_t, moving_t).float(), 5, stride=1, padding=2, count_include_pad=False)[0, 0] > threshold
    if not shown.any():
        return None
    box = []
    for axis, size in enumerate(shown.shape):
        others = tuple(a for a in range(3) if a != axis)
        hits = torch.nonzero(shown.any(dim=others)).flatten()
        box.append(slice(max(0, int(hits[0]) - margin), min(size, int(hits[-1]) + 1 + margin)))
    kept = 1.0
    for s, size in zip(box, shown.shape):
        kept *= (s.stop - s.start) / size
    return tuple(box) if kept <= 1.0 - min_saving else None
