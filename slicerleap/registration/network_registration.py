"""Register a pair with a catalog network: both images on the working grid at the card's spacing,
one forward pass, then neural instance optimisation of the network's weights on this pair (NIO) for
`nio_iterations` steps, most of them at half resolution, then (`refine_iterations` > 0) optimisation of
the field itself from the network's prediction, with a folding penalty, on a grid as fine as the fixed
image allows (instance_optimisation.py), as a velocity field integrated again on the fixed image's own grid.
Returns the RAS field (on the fixed image's grid when refined, else on the network's working grid) and the card."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import BadInputError
from ..models import get_catalog
from ..models.networks import load_model
from ..volume import Volume
from .instance_optimisation import refine_displacement, refinement_schedule, refinement_spacing
from .neural_instance_optimisation import NIOConfig, neural_instance_optimisation
from .velocity_field import field_from_velocity, output_spacing
from .working_grid import ddf_on_grid, field_in_ras, working_pair


def nio_schedule(iterations: int, learning_rate: float = 1e-4) -> NIOConfig:
    """`iterations` NIO steps split 3:1 between half and full working resolution (the coarse level
    dominates, as in the paper's [100, 60, 30] schedule, and is 8x cheaper per step)."""
    if iterations < 0:
        raise BadInputError(f"NIO iterations cannot be negative (got {iterations}).", "Use 0 (network only) or e.g. 40.")
    coarse = round(0.75 * iterations)
    return NIOConfig(scales=(0.5, 1.0), iterations=(coarse, iterations - coarse), learning_rate=learning_rate)


def register_with_network(fixed: Volume, moving: Volume, affine_ras: np.ndarray, model_id: str | None, nio_iterations: int,
                          device, report=lambda *a, **k: None, should_stop=lambda: False,
                          nio_learning_rate: float = 1e-4, refine_iterations: int = 0) -> tuple[Volume, dict]:
    if refine_iterations < 0:
        raise BadInputError(f"Refinement iterations cannot be negative (got {refine_iterations}).", "Use 0 (no refinement) or e.g. 70.")
    card = get_catalog().resolve(model_id, "registration", "register")
    report(0.1, "loading model", f"{card['id']} on {device}")
    net = load_model(card, device)
    spacing = float(card["input"]["spacing_mm"][0])
    work, fixed_t, moving_t = working_pair(fixed, moving, affine_ras, spacing, device, card["input"]["normalisation"])
    report(0.15, "network", f"predicting the displacement on a {'x'.join(map(str, work.shape_ijk))} grid at {spacing:g} mm")
    if nio_iterations > 0:
        ddf = neural_instance_optimisation(net, fixed_t, moving_t, nio_schedule(nio_iterations, nio_learning_rate),
                                           report, should_stop)
    else:
        with torch.no_grad():
            _, ddf = net(moving_t, fixed_t)
    if refine_iterations > 0:
        fine = refinement_spacing(spacing, fixed)
        report(0.5, "optimisation", f"refining the network's field on this pair ({refine_iterations} steps at {fine:g} mm)")
        if fine != spacing:
            grid, fixed_t, moving_t = working_pair(fixed, moving, affine_ras, fine, device, card["input"]["normalisation"])
            ddf, work = ddf_on_grid(ddf, work, grid), grid
        velocity = refine_displacement(fixed_t, moving_t, refinement_schedule(refine_iterations, fine), ddf, report, should_stop,
                                       progress=(0.5, 0.85))
        report(0.86, "optimisation", f"integrating the field at the fixed image's resolution ({output_spacing(fixed):g} mm)")
        return field_from_velocity(velocity, work, fixed, affine_ras), card
    return field_in_ras(ddf, work, affine_ras), card
