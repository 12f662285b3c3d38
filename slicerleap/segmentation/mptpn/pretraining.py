"""MPTPN stage 1: SimSiam on image–text pairs (seed 001, METHODS.md §2).

Two augmented views of each (slice, prompt) pair go through the prior prompt encoder (PPE); a projector maps
its pooled output to z, a predictor maps z to p, and the loss is D(p1, sg(z2))/2 + D(p2, sg(z1))/2 with D the
negative cosine and sg the stop-gradient. Views differ by intensity, noise, blur and small rigid moves, never
flips or crops: the prompt says where the object is. Optimiser: SGD with momentum, as SimSiam ("SGD update").

The paper pretrains on 5000 COCO image–caption pairs; no natural-image set ships offline, so we pretrain on
our own unlabelled real-anatomy slices with their generated descriptions (the cards say so). Which PPE output
feeds the head is not stated: we pool each of the three fused scales (global average) and concatenate.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..slice_training import optimiser_step
from . import text_encoder
from .augment import augment_pair


class SimSiamHead(nn.Module):
    """SimSiam's projector (3 layers, BN) and bottleneck predictor, sized for a small PPE."""

    def __init__(self, width: int, dim: int = 128, bottleneck: int = 32):
        super().__init__()
        self.projector = nn.Sequential(nn.Linear(width, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
                                       nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
                                       nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim, affine=False))
        self.predictor = nn.Sequential(nn.Linear(dim, bottleneck, bias=False), nn.BatchNorm1d(bottleneck),
                                       nn.ReLU(inplace=True), nn.Linear(bottleneck, dim))


def pooled_prior(net, image, words) -> torch.Tensor:
    return torch.cat([f.mean((2, 3)) for f in net.prior(image, words)], 1)


class _TwoViews(nn.Module):
    """SimSiam's loss of two views as one module's forward, so that DDP can wrap the encoder and the head together."""

    def __init__(self, net, head: SimSiamHead):
        super().__init__()
        self.net, self.head = net, head

    def forward(self, v1, v2, words):
        return simsiam_loss(self.head, pooled_prior(self.net, v1, words), pooled_prior(self.net, v2, words))


def simsiam_loss(head: SimSiamHead, r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    z1, z2 = head.projector(r1), head.projector(r2)
    p1, p2 = head.predictor(z1), head.predictor(z2)
    return -(F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean()) / 2


def pretrain_prior(net, images: torch.Tensor, prompts: list[str], iterations: int, device, batch_size: int = 8,
                   lr: float = 0.05, seed: int = 0, report: Callable | None = None,
                   stop: Callable[[], bool] | None = None) -> list[dict]:
    """Train `net`'s PPE in place by SimSiam on (images (N, 1, S, S), prompts); returns [{"step", "loss"}, ...].
    Under torchrun every process draws the same batch and views (one seed) and trains on its share of them."""
    from ... import distributed

    c = net.config.channels
    head = SimSiamHead(7 * c).to(device)
    two_views = distributed.wrap(_TwoViews(net, head), device)
    params = [p for name, p in net.named_parameters() if not name.startswith(("msff", "up_attention", "head"))]
    opt = torch.optim.SGD(params + list(head.parameters()), lr=lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, iterations))
    rng = np.random.default_rng(seed)
    history = []
    net.train()
    for step in range(1, iterations + 1):
        if distributed.any_process(bool(stop and stop()), device):
            break
        index = rng.choice(len(prompts), size=min(batch_size, len(prompts)), replace=False)
        distributed.check_batch_divides(len(index))
        batch = images[index]
        v1, _ = augment_pair(batch, None, rng)
        v2, _ = augment_pair(batch, None, rng)
        words, _ = text_encoder.encode(distributed.my_share([prompts[i] for i in index]), device)
        v1, v2 = distributed.batch_share(v1, v2)
        loss = optimiser_step(opt, sched, two_views(v1.to(device), v2.to(device), words))
        history.append({"step": step, "loss": round(distributed.mean_over_processes([loss], device), 4)})
        if report:
            report(step / iterations, f"stage 1 (SimSiam) step {step}/{iterations} loss {loss:.3f}", history[-1])
    return history
