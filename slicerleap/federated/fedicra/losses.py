"""FedICRA's sparse-label losses: partial cross-entropy on the labelled pixels, and the gated CRF loss
(Obukhov et al. 2019, as FedICRA uses it) that spreads labels to similar neighbouring pixels; plus the
site-code contrastive term L_con that keeps the sites' calibrated codes apart."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .weak_labels import UNLABELLED


def partial_cross_entropy(logits: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
    """Mean CE over labelled pixels only (UNLABELLED ignored); 0 when a batch has no labelled pixel."""
    labelled = sparse != UNLABELLED
    if not bool(labelled.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, torch.where(labelled, sparse.long(), torch.full_like(sparse.long(), -100)), ignore_index=-100)


def partial_dice(probabilities: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
    """1 - soft foreground Dice over the labelled pixels of the batch (UNLABELLED ignored; not FedICRA's: an
    option for sites whose small foreground CE alone fits slowly); 0 without labelled foreground."""
    labelled = (sparse != UNLABELLED).to(probabilities.dtype)
    target = (sparse == 1).to(probabilities.dtype)
    if not bool(target.any()):
        return probabilities.sum() * 0.0
    p = probabilities[:, 1] * labelled
    return 1.0 - 2.0 * (p * target).sum() / (p.sum() + target.sum()).clamp(min=1e-6)


def gated_crf_loss(probabilities: torch.Tensor, image: torch.Tensor, kernel: int = 5, sigma_xy: float = 6.0,
                   sigma_intensity: float = 0.1, gate: torch.Tensor | None = None) -> torch.Tensor:
    """Gated CRF loss: for every pixel i and neighbour j in a kernel x kernel window, the weight
    K(i, j) = exp(-|x_i - x_j|^2 / 2 sigma_xy^2 - |I_i - I_j|^2 / 2 sigma_I^2) times the probability that i and j
    get different labels, 1 - <p_i, p_j>; averaged over (gated) pixels. `image` (B, C, H, W) scaled to [0, 1];
    `gate` (B, 1, H, W) marks the pixels that count (default: all)."""
    b, c, h, w = probabilities.shape
    pad = kernel // 2
    p_neighbours = F.unfold(probabilities, kernel, padding=pad).view(b, c, kernel * kernel, h, w)
    i_neighbours = F.unfold(image, kernel, padding=pad).view(b, image.shape[1], kernel * kernel, h, w)
    valid = F.unfold(torch.ones_like(image[:, :1]), kernel, padding=pad).view(b, 1, kernel * kernel, h, w)
    offsets = torch.arange(kernel, device=image.device, dtype=image.dtype) - pad
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    spatial = torch.exp(-(dy ** 2 + dx ** 2).reshape(1, 1, -1, 1, 1) / (2 * sigma_xy ** 2))
    intensity = torch.exp(-((i_neighbours - image[:, :, None]) ** 2).sum(1, keepdim=True) / (2 * sigma_intensity ** 2))
    affinity = spatial * intensity * valid
    affinity[:, :, kernel * kernel // 2] = 0.0  # a pixel is not its own neighbour
    disagreement = 1.0 - (p_neighbours * probabilities[:, :, None]).sum(1, keepdim=True)
    energy = (affinity * disagreement).sum(2)  # (B, 1, H, W)
    if gate is not None:
        energy = energy * gate
        return energy.sum() / gate.sum().clamp(min=1.0)
    return energy.mean()


def site_code_contrast(codes: torch.Tensor, site: int) -> torch.Tensor:
    """L_con = -1/(K-1) sum_{i != k} |c_k - sg(c_i)|: `codes` (K, C) are every site's calibrated code; the own
    site's (row `site`) is pushed away from the others, which are not updated (stop-gradient)."""
    others = torch.cat([codes[:site], codes[site + 1:]]).detach()
    if len(others) == 0:
        return codes.sum() * 0.0
    return -(codes[site][None] - others).abs().mean(1).mean()
