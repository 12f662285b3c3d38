"""Train the click network (click_net.py) on labelled volumes by simulating an annotator, as SPPNet and PE-MED do.

Each training item: a structure (one label value, or the union of all labels) and a first click deep inside it
(the centre of the largest false-negative part, jittered), a patch of the volume at WORKING_MM around that click;
the starting mask is empty or, with probability `corrupted_start`, the truth eroded / dilated / shifted (a
pseudo-label to correct). Then 0..`max_extra_clicks` rounds in which the network's own mask meets a new simulated
click on its largest error (no gradient), and a last pass that the loss (MONAI DiceFocal) trains. Augmentation:
flips, intensity gamma and scale, noise, and contrast inversion (so a structure may be dark or bright)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from scipy import ndimage

from ...transforms import resample_to_reference, resample_to_spacing
from ...volume import Volume
from .click_net import IN_CHANNELS, WORKING_MM, ClickNet, click_maps, normalise_region
from .click_simulator import next_click


@dataclass
class ClickTrainingConfig:
    channels: tuple = (8, 16, 32, 64)
    local_channels: int = 4
    patch: int = 32  # working voxels per side (40 mm at 1.25 mm)
    iterations: int = 1500
    batch_size: int = 4
    learning_rate: float = 2e-3
    max_extra_clicks: int = 3
    corrupted_start: float = 0.3
    union_probability: float = 0.2
    seed: int = 0

    def architecture(self) -> dict:
        return {"name": "slicerleap.ClickNet", "args": {"channels": list(self.channels), "local_channels": self.local_channels}}


def prepare_case(image: Volume, labels: Volume) -> dict:
    """Image and labels at WORKING_MM isotropic (labels on the image's new grid), and the label values present."""
    work = resample_to_spacing(image.with_array(image.array.astype(np.float32)), (WORKING_MM,) * 3, "linear")
    lab = resample_to_reference(labels, work, "nearest").array.astype(np.int16)
    return {"image": work.array.astype(np.float32), "labels": lab, "values": [int(v) for v in np.unique(lab) if v > 0]}


def _corrupted(truth: np.ndarray, rng) -> np.ndarray:
    """A pseudo-label's typical errors: too small, too large, shifted."""
    how = rng.integers(3)
    iterations = int(rng.integers(1, 4))
    if how == 0:
        return ndimage.binary_erosion(truth, iterations=iterations)
    if how == 1:
        return ndimage.binary_dilation(truth, iterations=iterations)
    return np.roll(truth, tuple(int(v) for v in rng.integers(-3, 4, size=3)), axis=(0, 1, 2))


def _augmented(image: np.ndarray, rng) -> np.ndarray:
    x = normalise_region(image)
    if rng.random() < 0.2:
        x = 1.0 - x
    if rng.random() < 0.5:
        x = np.sign(x) * np.abs(x) ** rng.uniform(0.7, 1.5)
    x = x * rng.uniform(0.85, 1.15) + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.3:
        x = x + rng.normal(0, rng.uniform(0.01, 0.05), x.shape)
    return x.astype(np.float32)


def draw_item(cases: list[dict], config: ClickTrainingConfig, rng) -> dict:
    """One training item: image patch (augmented), truth, starting mask, first click."""
    case = cases[int(rng.integers(len(cases)))]
    if rng.random() < config.union_probability or len(case["values"]) == 1:
        structure = case["labels"] > 0
    else:
        structure = case["labels"] == case["values"][int(rng.integers(len(case["values"])))]
    inside = np.argwhere(ndimage.binary_erosion(structure) if structure.sum() > 50 else structure)
    centre = inside[int(rng.integers(len(inside)))]
    half = config.patch // 2
    padded = [np.pad(a, half, mode="constant", constant_values=c) for a, c in ((case["image"], float(case["image"].min())), (structure, False))]
    region = tuple(slice(int(c), int(c) + config.patch) for c in centre)  # in padded coordinates: centred on `centre`
    image, truth = padded[0][region], padded[1][region]
    for axis in range(3):
        if rng.random() < 0.5:
            image, truth = np.flip(image, axis), np.flip(truth, axis)
    start = _corrupted(truth, rng) if rng.random() < config.corrupted_start else np.zeros_like(truth)
    click = next_click(start, truth, (WORKING_MM,) * 3, rng)
    return {"image": _augmented(np.ascontiguousarray(image), rng), "truth": np.ascontiguousarray(truth), "mask": start,
            "clicks": [click] if click else []}


def _batch(items: list[dict]) -> torch.Tensor:
    rows = []
    for it in items:
        maps = click_maps(it["truth"].shape, it["clicks"], it["truth"].shape)
        rows.append(np.concatenate([it["image"][None], it["mask"][None].astype(np.float32), maps]))
    return torch.from_numpy(np.stack(rows))


def train_click_net(cases: list[dict], config: ClickTrainingConfig, device, report: Callable = lambda *a, **k: None,
                    should_stop: Callable[[], bool] = lambda: False) -> tuple[ClickNet, list[dict]]:
    """The trained network (last weights) and its loss history (mean per 100 iterations)."""
    from monai.losses import DiceFocalLoss

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = ClickNet(config.channels, config.local_channels).to(device)
    assert net.head.out_channels == 1 and IN_CHANNELS == 4
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=config.iterations)
    loss_fn = DiceFocalLoss(sigmoid=True)
    history, losses, started = [], [], time.monotonic()
    for step in range(config.iterations):
        items = [draw_item(cases, config, rng) for _ in range(config.batch_size)]
        extra = int(rng.integers(config.max_extra_clicks + 1))
        net.eval()
        with torch.no_grad():
            for _ in range(extra):  # the network's own mask, corrected by one more simulated click
                masks = (net(_batch(items).to(device)) > 0).cpu().numpy()[:, 0]
                for it, m in zip(items, masks):
                    it["mask"] = m
                    click = next_click(m, it["truth"], (WORKING_MM,) * 3, rng)
                    if click:
                        it["clicks"].append(click)
        net.train()
        logits = net(_batch(items).to(device))
        truth = torch.from_numpy(np.stack([it["truth"] for it in items])[:, None].astype(np.float32)).to(device)
        loss = loss_fn(logits, truth)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0 or step + 1 == config.iterations:
            history.append({"iteration": step + 1, "loss": float(np.mean(losses)), "seconds": time.monotonic() - started})
            losses = []
            report((step + 1) / config.iterations, "training", f"iteration {step + 1}/{config.iterations}: loss {history[-1]['loss']:.3f}")
        if should_stop():
            break
    return net.eval(), history


def config_dict(config: ClickTrainingConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
