"""The weights a training run keeps: those of its best validation score."""
from __future__ import annotations

import math

import torch


class BestWeights:
    """The network's weights at the best validation score offered so far. A tie keeps the later weights: a score
    stuck at 0 through the first checks (small lesions are missed early on) must not keep the first check's weights.
    A NaN score (nothing to validate on) is no score: with no score ever, restore() leaves the last weights."""

    def __init__(self):
        self.score: float | None = None
        self.state: dict | None = None

    def offer(self, score: float | None, net: torch.nn.Module) -> bool:
        if score is None or math.isnan(score) or (self.score is not None and score < self.score):
            return False
        self.score, self.state = score, {k: v.detach().clone() for k, v in net.state_dict().items()}
        return True

    def restore(self, net: torch.nn.Module) -> None:
        if self.state is not None:
            net.load_state_dict(self.state)
