"""One FedICRA site's training on sparse labels: L = L_pCE + 0.1 L_gCRF + 1.0 L_con (the paper's weights; the
multiscale tree-energy term is not used: it needs a minimum-spanning-tree filter op, and the paper's ablation
credits most of the gain to AA + SCR + gCRF). Same 2.5D slices and intensity augmentation as the other trainers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...segmentation.slice_data import SliceCase
from ...segmentation.slice_training import SliceTrainingConfig, sample_slices
from .losses import gated_crf_loss, partial_cross_entropy, partial_dice, site_code_contrast
from .weak_labels import UNLABELLED, weak_label

CRF_WEIGHT, CONTRAST_WEIGHT = 0.1, 1.0
PAPER_WEIGHTS = {"pce": 1.0, "gcrf": CRF_WEIGHT, "con": CONTRAST_WEIGHT, "pdice": 0.0}


@dataclass
class SparseCase:
    """A site's scan with sparse labels (K, J, I): 0 background, 1 foreground, UNLABELLED elsewhere."""
    case: SliceCase
    sparse: np.ndarray


def sparsify(case: SliceCase, kind: str, rng: np.random.Generator) -> SparseCase:
    """The site's label kind simulated from the case's full mask, slice by slice (as the paper simulates its sites)."""
    masks = case.labels > 0
    return SparseCase(case, np.stack([weak_label(m, kind, rng) for m in masks]))


def sample_sparse(cases: list[SparseCase], rng, config: SliceTrainingConfig):
    """A batch (x (B, 2c+1, crop, crop), sparse labels (B, crop, crop)) drawn as every 2.5D trainer draws them:
    slices with labelled foreground with probability config.lesion_fraction, centred on a labelled pixel."""
    x, y = sample_slices([SliceCase(c.case.grid, c.sparse, None) for c in cases], rng, config, pixel=True, unlabelled=UNLABELLED)
    return x, y[:, 0]


def fedicra_loss(net, x: torch.Tensor, sparse: torch.Tensor, site: int, context: int,
                 weights: dict = PAPER_WEIGHTS) -> tuple[torch.Tensor, dict]:
    """sum of weights[term] * term over pCE, gCRF, L_con and (not in the paper, 0 there) the partial Dice."""
    logits = net(x, site)
    probabilities = torch.softmax(logits, dim=1)
    centre = x[:, context:context + 1].clamp(0, 1)  # the slice itself: the image the CRF affinities come from
    term_of = {"pce": lambda: partial_cross_entropy(logits, sparse), "gcrf": lambda: gated_crf_loss(probabilities, centre),
               "con": lambda: site_code_contrast(net.site_codes(x), site),  # its own encoder pass per site code
               "pdice": lambda: partial_dice(probabilities, sparse)}
    terms = {k: term() for k, term in term_of.items() if weights.get(k, 0.0)}  # unweighted terms are not computed
    total = sum(weights.get(k, 0.0) * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def train_fedicra_round(net, cases: list[SparseCase], site: int, config: SliceTrainingConfig, device, iterations: int,
                        rng: np.random.Generator, weights: dict = PAPER_WEIGHTS) -> float:
    """Train the whole network in place for `iterations` batches (AdamW at the config's rate, fresh each round);
    returns the mean L_seg (every weighted term but the contrast term, which is negative by design)."""
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    losses = []
    net.train()
    for _ in range(iterations):
        x, sparse = sample_sparse(cases, rng, config)
        loss, terms = fedicra_loss(net, x.to(device), sparse.to(device), site, config.context, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(sum(weights.get(k, 0.0) * v for k, v in terms.items() if k != "con"))
    return float(np.mean(losses))
