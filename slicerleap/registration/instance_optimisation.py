"""Per-pair optimisation of a dense displacement field, coarse to fine: LNCC similarity + diffusion
regulariser, Adam. Works on the fixed image's grid at a working spacing; returns the full resampling
field (affine included) in RAS mm, so the result is valid in physical space whatever the inputs'
orientation, spacing and field of view."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..transforms import normalise, resample_to_spacing
from ..volume import Volume


@dataclass
class InstanceOptimisationConfig:
    working_spacing_mm: float = 3.0
    levels: int = 2
    iterations: int = 80
    learning_rate: float = 0.2  # Adam step, in voxels of the working grid (0.5 overshot on clean phantoms)
    smoothness: float = 1.0  # weight of the diffusion regulariser
    lncc_kernel: int = 7


def sample_affine(moving: Volume, fixed_grid: Volume, affine_ras: np.ndarray, extra_ras: np.ndarray | None = None) -> np.ndarray:
    """Moving intensities at positions A @ (x + extra(x)) for every fixed-grid voxel x (trilinear, zero outside)."""
    ras = fixed_grid.voxel_positions_ras()
    if extra_ras is not None:
        ras = ras + extra_ras
    moving_pos = ras @ affine_ras[:3, :3].T + affine_ras[:3, 3]
    moving_ijk = (moving_pos - moving.ijk_to_ras[:3, 3]) @ np.linalg.inv(moving.ijk_to_ras[:3, :3]).T
    shape = np.array(moving.array.shape[:3][::-1], dtype=np.float64)  # i, j, k sizes
    grid = 2.0 * moving_ijk / np.maximum(shape - 1, 1) - 1.0  # normalised (x=i, y=j, z=k)
    src = torch.from_numpy(np.ascontiguousarray(moving.array, dtype=np.float32))[None, None]
    g = torch.from_numpy(grid.astype(np.float32))[None]
    return F.grid_sample(src, g, mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0].numpy()


def optimise_displacement(fixed: Volume, moving: Volume, affine_ras: np.ndarray, config: InstanceOptimisationConfig,
                          device, report=lambda *a, **k: None, should_stop=lambda: False) -> Volume:
    """Displacement Volume (k, j, i, 3), RAS mm, on the fixed image at the working spacing.
    `should_stop` (the user's "stop and keep the result so far") ends the optimisation early."""
    from monai.losses import DiffusionLoss, LocalNormalizedCrossCorrelationLoss
    from monai.networks.blocks import Warp

    work = resample_to_spacing(fixed.with_array(fixed.array.astype(np.float32)), [config.working_spacing_mm] * 3, "linear")
    norm = {"kind": "percentile", "lower": 1.0, "upper": 99.0}
    fixed_t = torch.from_numpy(normalise(work.array, norm))[None, None].to(device)
    moved_affine = sample_affine(moving.with_array(normalise(moving.array, norm)), work, affine_ras)
    moving_t = torch.from_numpy(moved_affine)[None, None].to(device)

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
    voxel = ddf.detach()[0].cpu().numpy().transpose(1, 2, 3, 0)[..., ::-1]  # (k, j, i, [di, dj, dk])
    step_ras = voxel @ work.ijk_to_ras[:3, :3].T  # voxel offsets -> RAS mm
    x = work.voxel_positions_ras()
    y = x + step_ras
    moving_pos = y @ affine_ras[:3, :3].T + affine_ras[:3, 3]
    return work.with_array((moving_pos - x).astype(np.float32), name="displacement")


def jacobian_determinant(field: Volume) -> np.ndarray:
    """det(I + du/dx) of the mapping x -> x + u(x), per voxel (physical derivatives)."""
    u = field.array.astype(np.float64)
    # derivatives along k, j, i (voxel units), then chain rule through the inverse IJK->RAS
    grads = [np.gradient(u[..., c], axis=(2, 1, 0)) for c in range(3)]  # per component: d/di, d/dj, d/dk
    du_dijk = np.stack([np.stack(g, -1) for g in grads], -2)  # (..., 3 comps, 3 ijk)
    du_dx = du_dijk @ np.linalg.inv(field.ijk_to_ras[:3, :3])
    return np.linalg.det(np.eye(3) + du_dx)
