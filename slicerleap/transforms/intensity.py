"""Intensity normalisation as a model card specifies it (CT window in HU, or MRI percentiles)."""
from __future__ import annotations

import numpy as np


def robust_range(array: np.ndarray, slice_step: int = 1) -> tuple[float, float]:
    """(low, scale): the 0.5th percentile and the 0.5-99.5 percentile span (1 if flat), from every
    `slice_step`-th slice; for reversible scaling (x - low) / scale of per-scan optimisations."""
    low, high = np.percentile(array[::max(1, slice_step)], [0.5, 99.5])
    return float(low), float(high - low) or 1.0


def normalise(array: np.ndarray, spec: dict) -> np.ndarray:
    """Map intensities to about [0, 1] (float32).

    {"kind": "window", "center": c, "width": w}: CT Hounsfield window, clipped.
    {"kind": "percentile", "lower": p0, "upper": p1}: MRI, percentiles of the non-zero voxels, clipped.
    """
    a = array.astype(np.float32, copy=False)
    if spec["kind"] == "window":
        low = spec["center"] - spec["width"] / 2.0
        return np.clip((a - low) / spec["width"], 0.0, 1.0).astype(np.float32)
    if spec["kind"] == "percentile":
        foreground = a[a != 0]
        sample = foreground if foreground.size > 100 else a.ravel()
        low, high = np.percentile(sample, [spec["lower"], spec["upper"]])
        if high <= low:
            high = low + 1.0
        return np.clip((a - low) / (high - low), 0.0, 1.0).astype(np.float32)
    raise ValueError(f"unknown normalisation {spec['kind']!r}")
