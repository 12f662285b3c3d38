"""Train a MONAI U-Net on (image, label) volume pairs: patches at the card's spacing, MONAI
augmentations, Dice+CE loss, validation Dice per epoch, progress/cancel through a callback."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..best_weights import BestWeights
from ..transforms import normalise, resample_to_reference, resample_to_spacing
from ..volume import Volume
from .metrics import dice_per_class


@dataclass
class UNetTrainingConfig:
    spacing_mm: tuple = (2.0, 2.0, 2.0)
    patch: tuple = (64, 64, 64)
    channels: tuple = (16, 32, 64, 128)
    strides: tuple = (2, 2, 2)
    num_res_units: int = 1
    epochs: int = 20
    iterations_per_epoch: int = 20
    batch_size: int = 2
    learning_rate: float = 2e-3
    normalisation: dict = field(default_factory=lambda: {"kind": "percentile", "lower": 0.5, "upper": 99.5})
    n_classes: int = 2  # background included
    seed: int = 0
    augment: bool = True

    def architecture(self) -> dict:
        return {"name": "monai.UNet", "args": {
            "spatial_dims": 3, "in_channels": 1, "out_channels": self.n_classes, "channels": list(self.channels),
            "strides": list(self.strides), "num_res_units": self.num_res_units, "norm": "instance"}}


def prepare_pair(image: Volume, label: Volume, config: UNetTrainingConfig) -> dict:
    """Image and label resampled to the training spacing (label on the image's new grid)."""
    work = resample_to_spacing(image.with_array(image.array.astype(np.float32)), config.spacing_mm, "linear")
    lab = resample_to_reference(label, work, "nearest")
    return {"image": normalise(work.array, config.normalisation)[None], "label": lab.array.astype(np.int64)[None]}


def _augmentations(config: UNetTrainingConfig):
    from monai import transforms as T

    keys = ["image", "label"]
    steps = [
        T.SpatialPadd(keys, config.patch),
        T.RandCropByPosNegLabeld(keys, "label", config.patch, pos=2, neg=1, num_samples=1),
    ]
    if config.augment:
        steps += [
            T.RandAffined(keys, prob=0.7, rotate_range=(0.26, 0.26, 0.26), scale_range=(0.15, 0.15, 0.15),
                          mode=("bilinear", "nearest"), padding_mode="zeros"),
            T.RandFlipd(keys, prob=0.5, spatial_axis=2),
            T.RandBiasFieldd("image", prob=0.4, coeff_range=(0.0, 0.2)),
            T.RandAdjustContrastd("image", prob=0.5, gamma=(0.7, 1.5)),
            T.RandScaleIntensityd("image", factors=0.15, prob=0.5),
            T.RandGaussianNoised("image", prob=0.3, std=0.03),
            T.RandGaussianSmoothd("image", prob=0.2, sigma_x=(0.3, 1.0), sigma_y=(0.3, 1.0), sigma_z=(0.3, 1.0)),
        ]
    return T.Compose(steps)


def _augmented_patch(train: list[dict], augment, seed: int, step: int, item: int) -> dict:
    """Item `item` of global batch `step`: its case and augmentation drawn from a generator of its own, so a batch is the
    same whether one process draws all of it or several processes draw their shares."""
    rng = np.random.default_rng([seed, step, item])
    case = train[int(rng.integers(len(train)))]
    augment.set_random_state(seed=int(rng.integers(2 ** 31)))
    return augment(case)[0]


def train_unet(train: list[dict], val: list[dict], config: UNetTrainingConfig, device,
               report: Callable = lambda *a, **k: None) -> tuple[torch.nn.Module, list[dict]]:
    """Returns the trained network (best validation Dice) and the per-epoch history. Under torchrun each process
    trains on its share of every batch (distributed.py) and all end with the same weights."""
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.utils import set_determinism

    from .. import distributed
    from ..models.networks import build_network

    distributed.check_batch_divides(config.batch_size)
    set_determinism(config.seed)
    net = build_network(config.architecture()).to(device)
    model = distributed.wrap(net, device)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs * config.iterations_per_epoch)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    augment = _augmentations(config)
    my_items = distributed.my_share(range(config.batch_size))
    history, best = [], BestWeights()
    started = time.time()
    for epoch in range(config.epochs):
        model.train()
        losses = []
        for it in range(config.iterations_per_epoch):
            step = epoch * config.iterations_per_epoch + it
            batch = [_augmented_patch(train, augment, config.seed, step, i) for i in my_items]
            x = torch.stack([torch.as_tensor(b["image"]) for b in batch]).float().to(device)
            y = torch.stack([torch.as_tensor(b["label"]) for b in batch]).long().to(device)
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()  # DDP averages the gradients of the processes' equal shares: the global batch's gradient
            optimiser.step()
            scheduler.step()
            losses.append(distributed.mean_over_processes([loss.item()], device))
            report((epoch + (it + 1) / config.iterations_per_epoch) / config.epochs * 0.95, "training",
                   f"epoch {epoch + 1}/{config.epochs} iteration {it + 1}: loss {losses[-1]:.4f}")
        distributed.share_buffers(net)
        net.eval()
        dices = []
        with torch.inference_mode():
            for case in distributed.my_share(val):
                x = torch.as_tensor(case["image"])[None].float().to(device)
                pred = sliding_window_inference(x, config.patch, 2, net, overlap=0.25).argmax(1)[0].cpu().numpy()
                per = dice_per_class(pred, case["label"][0], range(1, config.n_classes))
                dices.append(float(np.mean(list(per.values()))))
        val_dice = distributed.mean_over_processes(dices, device)
        val_dice = float("nan") if val_dice is None else val_dice
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_dice": val_dice, "elapsed_s": round(time.time() - started, 1),
                  "iteration_losses": [round(v, 6) for v in losses]}
        history.append(record)
        report((epoch + 1) / config.epochs * 0.95, "validation",
               f"epoch {epoch + 1}: loss {record['loss']:.4f}, validation Dice {val_dice:.3f}",
               **{k: v for k, v in record.items() if k != "iteration_losses"})
        best.offer(val_dice, net)  # the same score on every process: the same weights kept; NaN (no validation): the last
    best.restore(net)
    distributed.share_buffers(net)  # every process ends with the model the first one writes
    return net.eval(), history
