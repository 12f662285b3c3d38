"""Smooth random diffeomorphic displacements: a random velocity on a coarse control grid, upsampled and
integrated by scaling and squaring (MONAI DVF2DDF). Used to make training pairs and, in benchmarks,
pairs with a known ground-truth field."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_displacement(shape, max_voxels: float, control_points: int = 5, generator: torch.Generator | None = None,
                        device="cpu") -> torch.Tensor:
    """(1, 3, *shape) displacement in voxels of `shape`, largest component ≈ `max_voxels`."""
    from monai.networks.blocks import DVF2DDF

    coarse = torch.randn((1, 3) + (control_points,) * 3, generator=generator).to(device)
    velocity = F.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)
    velocity = velocity * (max_voxels / velocity.abs().amax().clamp(min=1e-6))
    return DVF2DDF(num_steps=7)(velocity)


def warp(image: torch.Tensor, ddf: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """image (B, C, ...) sampled at x + ddf(x) (voxels); zeros outside. `mode`: bilinear or nearest."""
    from monai.networks.blocks import Warp

    return Warp(mode=mode, padding_mode="zeros")(image, ddf)
