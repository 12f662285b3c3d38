"""Per-pair optimisation of a dense displacement field, coarse to fine: LNCC similarity + diffusion
regulariser + a folding penalty, Adam. Starts from zero (method "optimisation") or from a network's
prediction (refinement after a network, network_registration.py). Works on the fixed image's grid at a
working spacing; returns the full resampling field (affine included) in RAS mm, so the result is valid in
physical space whatever the inputs' orientation, spacing and field of view (geometry: working_grid.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..volume import Volume
from .folding_penalty import folding_penalty
from .random_deformation import resize_field
from .working_grid import field_in_ras, working_pair


@dataclass
class InstanceOptimisationConfig:
    working_spacing_mm: float = 3.0
    levels: int = 2
    iterations: int = 80  # per level
    fine_iterations: int | None = None  # at the finest level (None: `iterations`); a step there costs 8x a coarser one
    learning_rate: float = 0.2  # Adam step, in voxels of the working grid (0.5 overshot on clean phantoms)
    smoothness: float = 1.0  # weight of the diffusion regulariser
    folding_weight: float = 10.0  # weight of folding_penalty (0: off)
    lncc_kernel: int = 7

    def steps_at(self, level: int) -> int:
        return self.iterations if level > 0 or self.fine_iterations is None else self.fine_iterations


def refinement_schedule(iterations: int, working_spacing_mm: float) -> InstanceOptimisationConfig:
    """Refinement of a network's field: `iterations` steps split 6:1 between half and full working
    resolution, weaker diffusion (the folding penalty keeps the map regular). Chosen on the benchmark's
    inter-subject pairs (RESULTS.md): same Dice as 80 + 80 steps at a fifth of the time."""
    fine = max(1, round(iterations / 7)) if iterations > 0 else 0
    return InstanceOptimisationConfig(working_spacing_mm=working_spacing_mm, levels=2, iterations=iterations - fine,
                                      fine_iterations=fine, smoothness=0.5)


def refine_displacement(fixed_t: torch.Tensor, moving_t: torch.Tensor, config: InstanceOptimisationConfig,
                        initial: torch.Tensor | None = None, report=lambda *a, **k: None, should_stop=lambda: False,
                        progress: tuple = (0.15, 0.85)) -> torch.Tensor:
    """fixed, moving (1, 1, k, j, i) on the working grid -> ddf (1, 3, k, j, i) in voxels, channel order
    (dk, dj, di). `initial` (same layout, any grid size) is where the optimisation starts. `should_stop`
    (the user's "stop and keep the result so far") ends it early."""
    from monai.losses import DiffusionLoss, LocalNormalizedCrossCorrelationLoss
    from monai.networks.blocks import Warp

    warp = Warp(mode="bilinear", padding_mode="zeros")
    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=config.lncc_kernel)
    diffusion = DiffusionLoss()
    ddf = None if initial is None else initial.detach()
    total_steps = max(1, sum(config.steps_at(level) for level in range(config.levels)))
    step, stopped = 0, False
    for level in reversed(range(config.levels)):
        scale = 2 ** level
        f = F.avg_pool3d(fixed_t, scale) if scale > 1 else fixed_t
        m = F.avg_pool3d(moving_t, scale) if scale > 1 else moving_t
        if ddf is None:
            ddf = torch.zeros((1, 3) + f.shape[2:], device=f.device)
        elif ddf.shape[2:] != f.shape[2:]:
            ddf = resize_field(ddf, f.shape[2:])
        ddf = ddf.detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([ddf], lr=config.learning_rate)
        for _ in range(0 if stopped else config.steps_at(level)):
            if should_stop():
                stopped = True
                report(None, "optimisation", f"stopped early by the user after {step} steps; keeping the field so far")
                break
            optimiser.zero_grad(set_to_none=True)
            loss_sim = lncc(warp(m, ddf), f)
            loss = loss_sim + config.smoothness * diffusion(ddf)
            if config.folding_weight > 0:
                loss = loss + config.folding_weight * folding_penalty(ddf)
            loss.backward()
            optimiser.step()
            step += 1
            if step % 10 == 0 or step == total_steps:
                report(progress[0] + (progress[1] - progress[0]) * step / total_steps, "optimisation",
                       f"level {config.levels - level}/{config.levels} step {step}/{total_steps}: similarity {-loss_sim.item():.4f}",
                       similarity=-loss_sim.item())
    return ddf.detach()


def optimise_displacement(fixed: Volume, moving: Volume, affine_ras: np.ndarray, config: InstanceOptimisationConfig,
                          device, report=lambda *a, **k: None, should_stop=lambda: False) -> Volume:
    """Displacement Volume (k, j, i, 3), RAS mm, on the fixed image at the working spacing, from zero."""
    work, fixed_t, moving_t = working_pair(fixed, moving, affine_ras, config.working_spacing_mm, device)
    return field_in_ras(refine_displacement(fixed_t, moving_t, config, None, report, should_stop), work, affine_ras)
