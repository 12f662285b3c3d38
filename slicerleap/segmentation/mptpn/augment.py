"""Augmentations for prompted slices: scanner-like intensity changes, noise, blur and small rigid moves of image and
mask together. No flips and no crops: they would move the object away from where its prompt says it is."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..slice_training import intensity_augment


def small_moves(batch: int, rng, degrees: float = 8.0, scale: float = 0.08, shift: float = 0.04) -> torch.Tensor:
    """(B, 2, 3) affine_grid matrices: rotation within +-degrees, zoom within 1 +- scale, shift within +- shift of the side."""
    angle = np.deg2rad(rng.uniform(-degrees, degrees, batch))
    zoom = rng.uniform(1 - scale, 1 + scale, batch)
    t = rng.uniform(-2 * shift, 2 * shift, (batch, 2))  # affine_grid coordinates span [-1, 1]
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    return torch.as_tensor(np.stack([np.stack([cos, -sin, t[:, 0]], 1), np.stack([sin, cos, t[:, 1]], 1)], 1), dtype=torch.float32)


def augment_pair(images: torch.Tensor, masks: torch.Tensor | None, rng) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Augmented copies of (B, 1, S, S) images and their masks (nearest-neighbour moved, kept 0/1)."""
    grid = F.affine_grid(small_moves(images.shape[0], rng), list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if rng.random() < 0.3:  # mild blur, as a softer scanner kernel
        moved = F.avg_pool2d(F.pad(moved, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    moved = intensity_augment(moved, rng)
    if masks is None:
        return moved, None
    return moved, F.grid_sample(masks, grid, mode="nearest", padding_mode="zeros", align_corners=False)
