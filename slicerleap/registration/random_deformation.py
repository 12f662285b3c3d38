"""Smooth random diffeomorphic displacements: a random velocity on a coarse control grid, upsampled and
integrated by scaling and squaring (MONAI DVF2DDF). Used to make training pairs and, in benchmarks,
pairs with a known ground-truth field. Also the two voxel-field helpers the registration code shares:
warp an image through a field, resize a field to another grid."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_displacement(shape, max_voxels: float, control_points: int = 5, generator: torch.Generator | None = None,
                        device="cpu") -> torch.Tensor:
    """(1, 3, *shape) displacement in voxels of `shape`, largest component ≈ `max_voxels`."""
    from monai.networks.blocks import DVF2DDF

    # integrate on a grid 4x coarser than `shape` (the field is smooth at the control-point scale), then upsample
    small = [max(control_points, -(-n // 4)) for n in shape]
    factor = torch.tensor([n / m for n, m in zip(shape, small)], device=device).view(1, 3, 1, 1, 1)
    coarse = torch.randn((1, 3) + (control_points,) * 3, generator=generator).to(device)
    velocity = F.interpolate(coarse, size=small, mode="trilinear", align_corners=True)
    velocity = velocity * (max_voxels / velocity.abs().amax().clamp(min=1e-6)) / factor
    ddf = DVF2DDF(num_steps=7)(velocity)
    return F.interpolate(ddf, size=tuple(shape), mode="trilinear", align_corners=True) * factor


def resize_field(ddf: torch.Tensor, shape) -> torch.Tensor:
    """A voxel displacement (1, 3, ...) resampled onto a grid of `shape`, its vectors rescaled to that grid's voxels."""
    factor = torch.tensor([n / m for n, m in zip(shape, ddf.shape[2:])], device=ddf.device).view(1, 3, 1, 1, 1)
    return F.interpolate(ddf, size=tuple(shape), mode="trilinear", align_corners=False) * factor


def warp(image: torch.Tensor, ddf: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """image (B, C, ...) sampled at x + ddf(x) (voxels); zeros outside. `mode`: bilinear or nearest."""
    from monai.networks.blocks import Warp

    return Warp(mode=mode, padding_mode="zeros")(image, ddf)
