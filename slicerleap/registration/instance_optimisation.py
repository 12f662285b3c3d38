"""Per-pair optimisation of a dense displacement field, coarse to fine: LNCC similarity + diffusion
regulariser, Adam. Works on the fixed image's grid at a working spacing; returns the full resampling
field (affine included) in RAS mm, so the result is valid in physical space whatever the inputs'
orientation, spacing and field of view (geometry: working_grid.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..volume import Volume
from .working_grid import field_in_ras, working_pair


@dataclass
class InstanceOptimisationConfig:
    working_spacing_mm: float = 3.0
    levels: int = 2
    iterations: int = 80
    learning_rate: float = 0.2  # Adam step, in voxels of the working grid (0.5 overshot on clean phantoms)
    smoothness: float = 1.0  # weight of the diffusion regulariser
    lncc_kernel: int = 7


def optimise_displacement(fixed: Volume, moving: Volume, affine_ras: np.ndarray, config: InstanceOptimisationConfig,
                          device, report=lambda *a, **k: None, should_stop=lambda: False) -> Volume:
    """Displacement Volume (k, j, i, 3), RAS mm, on the fixed image at the working spacing.
    `should_stop` (the user's "stop and keep the result so far") ends the optimisation early."""
    from monai.losses import DiffusionLoss, LocalNormalizedCrossCorrelationLoss
    from monai.networks.blocks import Warp

    work, fixed_t, moving_t = working_pair(fixed, moving, affine_ras, config.working_spacing_mm, device)

    warp = Warp(mode="bilinear", padding_mode="zeros")
    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=config.lncc_kernel)
    diffusion = DiffusionLoss()
    ddf = None  # (1, 3, k, j, i) voxel displacement on the working grid, channel order (dk, dj, di)
    total_steps = config.levels * config.iterations
    step = 0
    stopped = False
    for level in reversed(range(config.levels)):
        scale = 2 ** level
        f = F.avg_pool3d(fixed_t, scale) if scale > 1 else fixed_t
        m = F.avg_pool3d(moving_t, scale) if scale > 1 else moving_t
        if ddf is None:
            ddf = torch.zeros((1, 3) + f.shape[2:], device=device)
        else:
            ddf = F.interpolate(ddf.detach(), size=f.shape[2:], mode="trilinear", align_corners=False) * 2.0
        ddf = ddf.requires_grad_(True)
        optimiser = torch.optim.Adam([ddf], lr=config.learning_rate)
        for _ in range(0 if stopped else config.iterations):
            if should_stop():
                stopped = True
                report(None, "optimisation", f"stopped early by the user after {step} steps; keeping the field so far")
                break
            optimiser.zero_grad(set_to_none=True)
            loss_sim = lncc(warp(m, ddf), f)
            loss = loss_sim + config.smoothness * diffusion(ddf)
            loss.backward()
            optimiser.step()
            step += 1
            if step % 10 == 0 or step == total_steps:
                report(0.15 + 0.7 * step / total_steps, "optimisation",
                       f"level {config.levels - level}/{config.levels} step {step}/{total_steps}: similarity {-loss_sim.item():.4f}",
                       similarity=-loss_sim.item())
    return field_in_ras(ddf, work, affine_ras)
