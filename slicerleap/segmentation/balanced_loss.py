"""Class-balanced pixel losses: each class's pixels get the same total weight, whatever their number.

Small lesions cover ~1 % of a slice; in a plain pixel mean the background outvotes them and a network
settles on "no lesion" (what both MPTPN and the SKS trainer did with plain BCE/CE on MNI lesion cases)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def class_balanced_mean(per_pixel: torch.Tensor, classes: torch.Tensor, n_classes: int, smooth: float = 1e-12) -> torch.Tensor:
    """sum_c (1/C) * mean of `per_pixel` over the pixels of class c (a class absent from the batch adds 0).
    per_pixel and classes have the same shape; classes holds integers 0..C-1."""
    total = per_pixel.new_zeros(())
    for c in range(n_classes):
        mask = classes == c
        total = total + (per_pixel * mask).sum() / (mask.sum() + smooth)
    return total / n_classes


def balanced_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy, class-balanced. logits (B, C, ...); target (B, 1, ...) class indices."""
    classes = target[:, 0].long()
    return class_balanced_mean(F.cross_entropy(logits, classes, reduction="none"), classes, logits.shape[1])


class DiceBalancedCELoss(torch.nn.Module):
    """Foreground soft Dice over the batch (MONAI) + class-balanced cross-entropy, equal weights."""

    def __init__(self):
        super().__init__()
        from monai.losses import DiceLoss

        self.dice = DiceLoss(include_background=False, to_onehot_y=True, softmax=True, batch=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice(logits, target) + balanced_cross_entropy(logits, target)
