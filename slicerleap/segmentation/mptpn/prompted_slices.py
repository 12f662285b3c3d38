"""Image–text–mask triples for MPTPN: axial slices of prepared cases, as viewed, with prompts written from their masks.

A slice showing lesion gets the prompt its mask describes (count, size, shape, position; prompts.py);
a share of lesion-free slices of the organ gets "no lesion" with an empty mask, so that a prompt alone
cannot conjure a lesion the image does not show. A user-written prompt can replace the generated one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..slice_data import SliceCase
from .prompt_view import SquareFit, as_viewed
from .prompts import prompt_from_mask


@dataclass
class PromptedSlices:
    """images (N, 1, S, S) float32 and masks (N, 1, S, S) 0/1 at the model's input size; one prompt per slice;
    `where` (case name, k on the case's slice grid) per slice."""
    images: torch.Tensor
    masks: torch.Tensor
    prompts: list[str]
    where: list[tuple[str, int]]

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, index) -> "PromptedSlices":
        index = list(index)
        return PromptedSlices(self.images[index], self.masks[index], [self.prompts[i] for i in index],
                              [self.where[i] for i in index])

    @staticmethod
    def concatenate(parts: list["PromptedSlices"]) -> "PromptedSlices":
        return PromptedSlices(torch.cat([p.images for p in parts]), torch.cat([p.masks for p in parts]),
                              sum((p.prompts for p in parts), []), sum((p.where for p in parts), []))


def prompted_slices(case: SliceCase, size: int, empty_share: float = 0.25, min_pixels: int = 5, rng=None,
                    target: str = "lesion", prompts: dict[int, str] | None = None) -> PromptedSlices:
    """Every slice of `case` (RAS axial grid, binary `labels`) whose lesion covers >= `min_pixels`, plus about
    `empty_share` as many lesion-free slices inside the organ (image above its 20th percentile over 5 % of the
    slice). `prompts`: user-written prompts by k, used instead of the generated ones."""
    rng = rng if rng is not None else np.random.default_rng(0)
    views = as_viewed(case.image)
    masks = as_viewed(case.labels > 0)
    area = masks.reshape(len(masks), -1).sum(1)
    lesion = np.flatnonzero(area >= min_pixels)
    tissue = (views > np.percentile(views, 20)).reshape(len(views), -1).mean(1) > 0.05
    empty = np.flatnonzero((area == 0) & tissue)
    chosen = rng.choice(empty, size=min(len(empty), int(round(empty_share * len(lesion)))), replace=False) if len(empty) else []
    ks = sorted([*lesion.tolist(), *np.asarray(chosen, dtype=int).tolist()])
    fit = SquareFit(views.shape[1], views.shape[2], size)
    written = [(prompts or {}).get(k) or prompt_from_mask(masks[k], target, min_pixels) for k in ks]
    return PromptedSlices(fit.to_model_input(views[ks]), (fit.to_model_input(masks[ks].astype(np.float32), "nearest") > 0.5).float(),
                          written, [(case.name, int(k)) for k in ks])
