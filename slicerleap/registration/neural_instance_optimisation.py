"""Neural instance optimisation (NIO, MLMI 2023 pp. 126-136): at test time, fine-tune the weights of the
pretrained registration network on the one pair (not the field), coarse to fine. Each level runs the
network on the pair downsampled by its scale, with the moving image pre-warped by the field of the
previous levels; the level's field is composed with that field, and the level's loss is
(1 − λ)·LNCC(F, M ∘ φ) + λ·‖∇u‖² (LNCC window 7³, λ = 0.4, Adam lr 1e-4 as in the paper).

The paper gives each level its own network (conditional LapIRN); we have one network, so every level
fine-tunes the same weights — the coarse levels, cheap on CPU, take most iterations. Returns a field
at full working resolution (voxels), the network's own prediction when `iterations` are all zero."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .random_deformation import resize_field, warp


@dataclass
class NIOConfig:
    scales: tuple = (0.5, 1.0)
    iterations: tuple = (30, 10)
    learning_rate: float = 1e-4
    smoothness: float = 0.4  # λ
    lncc_kernel: int = 7
    time_budget_s: float | None = None


def _compose(u: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    """x -> x + u(x) + previous(x + u(x)): the field of previous ∘ (this level's map)."""
    return u if previous is None else u + warp(previous, u)


def neural_instance_optimisation(net, fixed: torch.Tensor, moving: torch.Tensor, config: NIOConfig,
                                 report=lambda *a, **k: None, should_stop=lambda: False) -> torch.Tensor:
    """fixed, moving (1, 1, k, j, i) on the working grid -> ddf (1, 3, k, j, i) in voxels. `net` is not changed."""
    from monai.losses import DiffusionLoss, LocalNormalizedCrossCorrelationLoss

    if len(config.scales) != len(config.iterations):
        raise ValueError("NIO needs one iteration count per scale")
    tuned = copy.deepcopy(net).train()
    for p in tuned.parameters():
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(tuned.parameters(), lr=config.learning_rate)
    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=config.lncc_kernel)
    diffusion = DiffusionLoss()
    lam, started, total_steps, step = config.smoothness, time.time(), sum(config.iterations), 0
    previous, field = None, None
    out_of_time = lambda: config.time_budget_s is not None and time.time() - started > config.time_budget_s  # noqa: E731
    for scale, iterations in zip(config.scales, config.iterations):
        shape = [max(8, round(n * scale)) for n in fixed.shape[2:]]
        f = F.interpolate(fixed, size=shape, mode="trilinear", align_corners=False) if scale != 1 else fixed
        m = F.interpolate(moving, size=shape, mode="trilinear", align_corners=False) if scale != 1 else moving
        prev = None if previous is None else resize_field(previous, shape)
        m_pre = m if prev is None else warp(m, prev)
        for _ in range(iterations):
            if should_stop() or out_of_time():
                break
            _, u = tuned(m_pre, f)
            field = _compose(u, prev)
            similarity = lncc(warp(m, field), f)
            loss = (1 - lam) * similarity + lam * diffusion(field)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            if step % 5 == 0 or step == total_steps:
                report(None, "instance optimisation", f"NIO step {step}/{total_steps} (scale {scale}): similarity {-similarity.item():.4f}",
                       similarity=-similarity.item())
        with torch.no_grad():  # the level's result with the final weights
            tuned.eval()
            previous = _compose(tuned(m_pre, f)[1], prev).detach()
            tuned.train()
    return resize_field(previous, fixed.shape[2:]) if previous.shape[2:] != fixed.shape[2:] else previous
