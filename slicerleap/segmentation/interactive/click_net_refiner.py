"""The click network as a refiner of an interactive session: loaded once from the catalog (weights verified), its
domain checked against the image (models/domain.py: refused outside unless forced, warnings kept); per interaction
two passes (PE-MED's self-loop: the first pass's mask fed back with the same clicks). Boxes use the classical
object-in-box (the network was not trained on boxes)."""
from __future__ import annotations

import numpy as np
import torch

from ...volume import Volume
from .click_net import back_to_crop, network_input
from .grow_from_clicks import object_in_box
from .prompts import BoxPrompt

TASK = "interactive-segmentation"


class ClickNetRefiner:

    def __init__(self, card: dict, device, warnings: list[str] | None = None):
        from ...models.networks import load_model

        self.name, self.card, self.device = card["id"], card, device
        self.net = load_model(card, device)
        self.warnings = warnings or []

    @classmethod
    def loaded(cls, card: dict, check) -> "ClickNetRefiner":
        """The card's network on the auto-selected device, with its domain check's findings as warnings."""
        from ...device import select_device

        return cls(card, select_device("auto"), list(check.findings) if check.outcome != "fine" else [])

    @classmethod
    def from_catalog(cls, model: str, volume: Volume, force: bool = False) -> "ClickNetRefiner":
        from ...models import get_catalog
        from ...models.domain import require_domain

        card = get_catalog().get(model, task=TASK, needed_by="interactive segmentation")
        return cls.loaded(card, require_domain(volume, card, force, alternative="Use the classical model (grow-from-clicks), which needs no training"))

    @classmethod
    def default_or_classical(cls, volume: Volume):
        """The default click network (the user's choice, else a bundled card marked default) when the image is inside
        its domain; else grow-from-clicks, with a warning that says why."""
        from ...models import get_catalog
        from ...models.domain import check_domain
        from .grow_from_clicks import GrowFromClicks

        catalog = get_catalog()
        cards = [c for c in catalog.cards() if c["task"] == TASK]
        if not catalog.user_defaults().get(TASK) and not any(c.get("default") for c in cards):
            return GrowFromClicks()
        card = catalog.default_for(TASK)
        check = check_domain(volume, card)
        if check.outcome == "refused":
            return GrowFromClicks(warnings=[f"{' '.join(check.findings)} Clicks use grow-from-clicks instead (no training, any modality)."])
        return cls.loaded(card, check)

    def refine(self, image: np.ndarray, mask: np.ndarray, prompt, seeds_kji: np.ndarray, spacing_kji, clicks) -> np.ndarray:
        if isinstance(prompt, BoxPrompt):
            return object_in_box(image)
        x = network_input(image, mask, clicks, spacing_kji).to(self.device)
        with torch.inference_mode():
            x[:, 1] = (self.net(x)[:, 0] > 0).float()  # self-loop: the first pass's mask, fed back
            logits = self.net(x)
        return back_to_crop(logits.cpu(), image.shape) > 0
