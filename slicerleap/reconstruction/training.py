"""Training a reconstruction network on fully sampled k-space slices: each step undersamples one slice again with a
fresh mask (an acceleration drawn from `accelerations`), and the loss is 1 - SSIM between the network's magnitude and
the fully sampled RSS image (fastMRI's target), both in the slice's own intensity unit. Validation: mean PSNR at 4x,
equispaced, mask seed 0, on the held-out slices; the weights with the best validation PSNR are kept. Under torchrun
every process draws the same N slices and masks and trains on its own one (a step sees N slices)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from .. import distributed
from ..best_weights import BestWeights
from .classical import zero_filled
from .masks import undersampling_mask
from .varnet import as_network_input, slice_scale, varnet_architecture, varnet_reconstruct


@dataclass
class ReconTrainingConfig:
    iterations: int = 300
    learning_rate: float = 1e-3
    accelerations: tuple = (4.0, 8.0)
    mask: str = "random"
    cascades: int = 4
    features: tuple = (8, 8, 16, 32, 64, 8)
    sensitivity_features: tuple = (4, 4, 8, 16, 32, 4)
    validate_every: int = 50
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def architecture(self) -> dict:
        return varnet_architecture(self.cascades, self.features, self.sensitivity_features)

    def to_dict(self) -> dict:
        return asdict(self)


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    span = float(reference.max() - reference.min()) or 1.0
    return float(10 * np.log10(span ** 2 / max(np.mean((reference - image) ** 2), 1e-12)))


def validation_psnr(net, slices: list[np.ndarray], device) -> float | None:
    distributed.share_buffers(net)
    net.eval()
    scores = []
    for kspace in distributed.my_share(slices):
        mask = undersampling_mask(kspace.shape[-1], 4.0, "equispaced", seed=0)
        scores.append(psnr(zero_filled(kspace), varnet_reconstruct(net, kspace * mask, mask, device)))
    net.train()
    return distributed.mean_over_processes(scores, device)


def train_varnet(train: list[np.ndarray], val: list[np.ndarray], config: ReconTrainingConfig, device,
                 report: Callable = lambda *a, **k: None, should_stop: Callable = lambda: False):
    """(network with the best validation weights, history). `train`, `val`: fully sampled slices (coils, H, W)."""
    from monai.losses import SSIMLoss

    from ..models.networks import build_network

    torch.manual_seed(config.seed)
    net = build_network(config.architecture()).to(device)
    model = distributed.wrap(net, device)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    rng = np.random.default_rng(config.seed)  # the same on every process
    history, best, losses, started = [], BestWeights(), [], time.time()
    for step in range(1, config.iterations + 1):
        if distributed.any_process(should_stop(), device):
            report(None, "training", f"stopped by the user after {step - 1} steps; keeping the best model so far")
            break
        draws = [(int(rng.integers(len(train))), float(rng.choice(config.accelerations)), int(rng.integers(2 ** 31)))
                 for _ in range(distributed.world_size())]
        index, acceleration, mask_seed = draws[distributed.rank()]
        kspace = train[index]
        mask = undersampling_mask(kspace.shape[-1], acceleration, config.mask, seed=mask_seed)
        sampled = kspace * mask
        scale = slice_scale(sampled)
        target = torch.as_tensor(zero_filled(kspace) / scale)[None, None].to(device)
        x, m = as_network_input(sampled, mask, scale, device)
        output = model(x, m)[:, None]
        loss = SSIMLoss(spatial_dims=2, data_range=float(target.max()))(output, target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if step % config.validate_every == 0 or step == config.iterations:
            score = validation_psnr(net, val, device) if val else None
            record = {"step": step, "loss": distributed.mean_over_processes(losses, device), "val_psnr": score,
                      "elapsed_s": round(time.time() - started, 1)}
            history.append(record)
            losses = []
            best.offer(score, net)
            report(step / config.iterations, "training", f"step {step}/{config.iterations}: loss (1 - SSIM) {record['loss']:.4f}"
                   + (f", validation PSNR at 4x {score:.2f} dB" if score is not None else ""), **record)
    best.restore(net)
    distributed.share_buffers(net)
    return net.eval(), history
