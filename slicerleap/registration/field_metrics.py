"""How good and how regular a registration is: folding (% of voxels with det J ≤ 0), SD of log det J
(over voxels with det J > 0), NCC of intensities, Dice and HD95 of propagated labels."""
from __future__ import annotations

import numpy as np

from ..segmentation.metrics import dice_per_class


def field_metrics(jacobian: np.ndarray) -> dict:
    positive = jacobian[jacobian > 0]
    return {"folding_percent": float((jacobian <= 0).mean() * 100.0),
            "sd_log_jacobian": float(np.log(positive).std()) if positive.size else float("nan"),
            "jacobian_min": float(jacobian.min()), "jacobian_max": float(jacobian.max())}


def ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    a, b = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-8))


def label_agreement(warped: np.ndarray, truth: np.ndarray, values, spacing_mm) -> dict:
    """Dice per label and the 95th-percentile symmetric surface distance (mm) per label (MONAI). Arrays
    (k, j, i); `spacing_mm` the voxel size (i, j, k)."""
    import torch
    from monai.metrics import compute_hausdorff_distance

    dice = dice_per_class(warped, truth, values)
    hd95 = {}
    for v in values:
        a = torch.from_numpy(warped == v)[None, None]
        b = torch.from_numpy(truth == v)[None, None]
        hd = compute_hausdorff_distance(a, b, include_background=True, percentile=95,
                                        spacing=[float(s) for s in spacing_mm][::-1])
        hd95[int(v)] = float(hd.item())
    return {"dice": dice, "hd95_mm": hd95}
