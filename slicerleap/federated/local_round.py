"""One site's share of a federated round: a few optimiser steps of the 2.5D slice segmenter on the
site's own cases, from the global weights, with FedProx's proximal term when mu > 0.

Same slices, crops, augmentation and loss as `segmentation/slice_training.py` (one training recipe for local, central
and federated runs). A fresh AdamW per round at a constant rate: the server's weights are the only state
that crosses rounds (optimiser moments are not averaged, as in FedAvg/FedProx)."""
from __future__ import annotations

import numpy as np
import torch

from ..segmentation.slice_data import SliceCase
from ..segmentation.slice_training import SliceTrainingConfig, sample_slices, segmentation_loss


def proximal_term(net, reference: list[torch.Tensor]) -> torch.Tensor:
    """||w - w_global||² over the trainable parameters (FedProx, Li et al. 2020, eq. 2 without mu/2)."""
    return sum(((p - r) ** 2).sum() for p, r in zip(net.parameters(), reference))


def train_local_round(net, cases: list[SliceCase], config: SliceTrainingConfig, device, iterations: int,
                      rng: np.random.Generator, proximal_mu: float = 0.0) -> float:
    """Train `net` in place for `iterations` batches; returns the mean training loss (without the proximal term)."""
    reference = [p.detach().clone() for p in net.parameters()] if proximal_mu > 0 else None
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = segmentation_loss(config.loss)
    losses = []
    net.train()
    for _ in range(iterations):
        x, y = sample_slices(cases, rng, config, pixel=True)
        loss = loss_fn(net(x.to(device)), y.to(device))
        total = loss + 0.5 * proximal_mu * proximal_term(net, reference) if reference is not None else loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        losses.append(loss.item())
    return float(np.mean(losses))
