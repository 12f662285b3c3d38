"""Sparse labels simulated from full masks, as FedICRA's sites have them (each site one kind): points,
scribbles, boxes, or the full mask. Encoding: 0 background, 1 foreground, UNLABELLED elsewhere (ignored by
the partial cross-entropy). Works on one 2D slice; a volume is labelled slice by slice."""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

UNLABELLED = 255
KINDS = ("point", "scribble", "box", "full")


def _components(mask: np.ndarray) -> list[np.ndarray]:
    labelled, count = ndimage.label(mask)
    return [labelled == n for n in range(1, count + 1)]


def _innermost(component: np.ndarray) -> tuple[int, int]:
    distance = ndimage.distance_transform_edt(component)
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(distance)), component.shape))


def weak_label(mask: np.ndarray, kind: str, rng: np.random.Generator, radius: int = 2) -> np.ndarray:
    """The sparse label of one 2D binary `mask`.

    point: a disc of `radius` at the innermost pixel of every object, and three times as many background discs at
    random places at least 5 pixels away from any object. scribble: the skeleton of every object (eroded by one pixel so it
    stays inside) and background strokes: the skeleton of the background more than 3 pixels from any object. box: the bounding box of
    every object, its inner half labelled foreground (a "block", as the paper converts boxes) and everything
    outside the box dilated by 2 pixels background. full: the mask itself. A slice without objects gets a
    background label of the same kind (points, a skeleton stroke, or everything for box/full)."""
    if kind not in KINDS:
        raise ValueError(f"unknown weak-label kind {kind!r}; use one of {', '.join(KINDS)}")
    mask = mask.astype(bool)
    if kind == "full":
        return mask.astype(np.uint8)
    out = np.full(mask.shape, UNLABELLED, np.uint8)
    components = _components(mask)
    yy, xx = np.mgrid[:mask.shape[0], :mask.shape[1]]
    if kind == "point":
        far = ~ndimage.binary_dilation(mask, iterations=5) if mask.any() else np.ones_like(mask)
        for component in components:
            cy, cx = _innermost(component)
            out[((yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2) & component] = 1
        candidates = np.argwhere(far)
        for cy, cx in candidates[rng.choice(len(candidates), size=min(len(candidates), 3 * max(1, len(components))), replace=False)]:
            out[((yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2) & far] = 0
        return out
    if kind == "scribble":
        for component in components:
            inner = ndimage.binary_erosion(component) if component.sum() > 8 else component
            out[skeletonize(inner if inner.any() else component)] = 1
        background = ~ndimage.binary_dilation(mask, iterations=3) if mask.any() else np.ones_like(mask)
        out[skeletonize(background) & ~mask] = 0  # strokes through the whole background, as annotators draw them
        return out
    # box
    outside = np.ones_like(mask)
    for component in components:
        rows, cols = np.where(component)
        r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
        outside[max(0, r0 - 2):r1 + 3, max(0, c0 - 2):c1 + 3] = False
        hr, hc = (r1 - r0) // 4, (c1 - c0) // 4
        block = np.zeros_like(mask)
        block[r0 + hr:r1 - hr + 1, c0 + hc:c1 - hc + 1] = True
        out[block & component] = 1
    out[outside] = 0
    return out
