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
from .foreground_box import foreground_box
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
    crop_to_foreground: bool = True  # optimise only around what the images show (foreground_box.py)
    # optimise a stationary velocity field whose exponential (scaling and squaring) is the displacement: the map
    # stays invertible when it is integrated again on a finer grid for the outputs (velocity_field.py)
    diffeomorphic: bool = False

    def steps_at(self, level: int) -> int:
        return self.iterations if level > 0 or self.fine_iterations is None else self.fine_iterations


def refinement_schedule(iterations: int, working_spacing_mm: float) -> InstanceOptimisationConfig:
    """Refinement of a network's field: up to 60 steps at half working resolution (6/7 of a small budget),
    the rest at full resolution, weaker diffusion (the folding penalty keeps the map regular). 70 steps
    (60 + 10) fit a brain pair in 10 s; a larger budget goes to full-resolution steps, which is what
    same-subject pairs need (RESULTS.md: 60 + 30 lowered the known-field error 0.48 -> 0.38 mm)."""
    coarse = min(60, round(iterations * 6 / 7)) if iterations > 0 else 0
    return InstanceOptimisationConfig(working_spacing_mm=working_spacing_mm, levels=2, iterations=coarse,
                                      fine_iterations=iterations - coarse, smoothness=0.5, diffeomorphic=True)


def refinement_spacing(network_spacing_mm: float, fixed: Volume, finest_mm: float = 2.0) -> float:
    """The working spacing of a network field's refinement: the fixed image's own resolution, but no finer
    than `finest_mm` (a step's cost grows with the cube) and no coarser than the network's grid. On the
    benchmark's brains refining at 2 mm instead of the network's 2.5 mm gained 0.04-0.05 inter-subject Dice
    (RESULTS.md): LNCC then resolves the ~2.5 mm thick cortex."""
    return float(min(network_spacing_mm, max(finest_mm, min(fixed.spacing))))


def refine_displacement(fixed_t: torch.Tensor, moving_t: torch.Tensor, config: InstanceOptimisationConfig,
                        initial: torch.Tensor | None = None, report=lambda *a, **k: None, should_stop=lambda: False,
                        progress: tuple = (0.15, 0.85)) -> torch.Tensor:
    """fixed, moving (1, 1, k, j, i) on the working grid -> ddf (1, 3, k, j, i) in voxels, channel order
    (dk, dj, di) — with `config.diffeomorphic`, the velocity field whose exponential is the displacement
    (velocity_field.integrate_velocity). `initial` (same layout, any grid size) is where the optimisation starts. `should_stop`
    (the user's "stop and keep the result so far") ends it early. With `crop_to_foreground`, only the box
    around the images' content is optimised; the field outside it stays `initial`, and the box's faces are
    held at it so the field stays continuous across them."""
    start = torch.zeros((1, 3) + fixed_t.shape[2:], device=fixed_t.device) if initial is None else initial.detach()
    if start.shape[2:] != fixed_t.shape[2:]:
        start = resize_field(start, fixed_t.shape[2:])
    box = foreground_box(fixed_t, moving_t, margin=config.lncc_kernel + 2) if config.crop_to_foreground else None
    if box is None:
        return _optimise(fixed_t, moving_t, config, start, False, report, should_stop, progress)
    report(None, "optimisation", "optimising the " + "x".join(str(s.stop - s.start) for s in box) + " voxels around the images' content")
    inside = (slice(None), slice(None)) + box
    result = start.clone()
    result[inside] = _optimise(fixed_t[inside], moving_t[inside], config, start[inside], True, report, should_stop, progress)
    return result


def _optimise(f_full: torch.Tensor, m_full: torch.Tensor, config: InstanceOptimisationConfig, start: torch.Tensor,
              hold_faces: bool, report, should_stop, progress) -> torch.Tensor:
    from monai.losses import DiffusionLoss, LocalNormalizedCrossCorrelationLoss
    from monai.networks.blocks import Warp

    from .velocity_field import integrate_velocity

    warp = Warp(mode="bilinear", padding_mode="zeros")
    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=config.lncc_kernel)
    diffusion = DiffusionLoss()
    ddf = start
    total_steps = max(1, sum(config.steps_at(level) for level in range(config.levels)))
    step, stopped = 0, False
    for level in reversed(range(config.levels)):
        scale = 2 ** level
        f = F.avg_pool3d(f_full, scale) if scale > 1 else f_full
        m = F.avg_pool3d(m_full, scale) if scale > 1 else m_full
        if ddf.shape[2:] != f.shape[2:]:
            ddf = resize_field(ddf, f.shape[2:])
        faces = _face_mask(f.shape[2:], f.device) if hold_faces else None
        anchor = resize_field(start, f.shape[2:]) if hold_faces else None
        ddf = ddf.detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([ddf], lr=config.learning_rate)
        for _ in range(0 if stopped else config.steps_at(level)):
            if should_stop():
                stopped = True
                report(None, "optimisation", f"stopped early by the user after {step} steps; keeping the field so far")
                break
            optimiser.zero_grad(set_to_none=True)
            displacement = integrate_velocity(ddf) if config.diffeomorphic else ddf
            loss_sim = lncc(warp(m, displacement), f)
            loss = loss_sim + config.smoothness * diffusion(ddf)
            if config.folding_weight > 0:
                loss = loss + config.folding_weight * folding_penalty(displacement)
            loss.backward()
            optimiser.step()
            if faces is not None:
                with torch.no_grad():
                    ddf.copy_(torch.where(faces, anchor, ddf))
            step += 1
            if step % 10 == 0 or step == total_steps:
                report(progress[0] + (progress[1] - progress[0]) * step / total_steps, "optimisation",
                       f"level {config.levels - level}/{config.levels} step {step}/{total_steps}: similarity {-loss_sim.item():.4f}",
                       similarity=-loss_sim.item())
    return ddf.detach()


def _face_mask(shape, device) -> torch.Tensor:
    """(1, 1, k, j, i) True on the grid's outermost layer of voxels."""
    mask = torch.ones(shape, dtype=torch.bool, device=device)
    mask[1:-1, 1:-1, 1:-1] = False
    return mask[None, None]


def optimise_displacement(fixed: Volume, moving: Volume, affine_ras: np.ndarray, config: InstanceOptimisationConfig,
                          device, report=lambda *a, **k: None, should_stop=lambda: False) -> Volume:
    """Displacement Volume (k, j, i, 3), RAS mm, on the fixed image at the working spacing, from zero."""
    work, fixed_t, moving_t = working_pair(fixed, moving, affine_ras, config.working_spacing_mm, device)
    return field_in_ras(refine_displacement(fixed_t, moving_t, config, None, report, should_stop), work, affine_ras)
