"""Total-variation reconstruction of thick-slice volumes: a classical baseline that uses the measured data
exactly. Among all images that reproduce the measured slices (the degradation model: box slice profile or
central k-space, as dmDIP's), find the one with the least total variation in each coronal slice, starting
from cubic interpolation. Plain Adam on the pixels of the data-consistent image; seconds per volume.

It is here because on MNI brain slabs it beat dmDIP at a CPU budget (benchmarks/RESULTS.md): a fair,
cheap method a user can run first, and the baseline that dmDIP's TV term must be judged against."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..volume import Volume
from .dmdip import thick_slice_problem, total_variation


def tv_consistent(start: torch.Tensor, measured: torch.Tensor, operator, iterations: int, learning_rate: float = 0.002,
                  should_stop: Callable[[], bool] = lambda: False) -> torch.Tensor:
    """start (..., W, n_high), measured (..., W, n_low), thick axis last; returns the data-consistent image of
    least TV (over the last two axes) found in `iterations` Adam steps from `start`."""
    x = start.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=learning_rate)
    for _ in range(iterations):
        optimiser.zero_grad(set_to_none=True)
        total_variation(operator.consistent(x, measured)).backward()
        optimiser.step()
        if should_stop():
            break
    with torch.no_grad():
        return operator.consistent(x, measured)


def tv_reconstruct(volume: Volume, device, thickness_mm: float | None = None, degradation: str = "slice-profile",
                   iterations: int = 200, report=lambda *a, **k: None, should_stop: Callable[[], bool] = lambda: False,
                   slab: int = 32) -> Volume:
    """The volume on SR4ZCT's high-resolution grid (the in-plane pixel size along the thick axis), in slabs of
    `slab` coronal slices to bound memory."""
    problem = thick_slice_problem([volume], thickness_mm, degradation, device, cubic_starts=True)
    low, start = problem.scaled[0], problem.starts[0]  # (n_low, J, I), (n_high, J, I)
    out = np.empty_like(start)
    j = low.shape[1]
    for begin in range(0, j, slab):
        stop = min(j, begin + slab)
        start_slab, low_slab = (torch.from_numpy(np.ascontiguousarray(a[:, begin:stop].transpose(1, 2, 0))).to(device)
                                for a in (start, low))  # (coronal slices, I, k)
        restored = tv_consistent(start_slab, low_slab, problem.operator, iterations, should_stop=should_stop)
        out[:, begin:stop] = restored.cpu().numpy().transpose(2, 0, 1)
        report(0.05 + 0.9 * stop / j, "optimisation", f"coronal slices {stop}/{j} done")
        if should_stop():
            out[:, stop:] = start[:, stop:]  # the rest stays cubic: the user stopped early
            report(None, "optimisation", "stopped early by the user: remaining slices use cubic interpolation")
            break
    return problem.restored([out])[0]
