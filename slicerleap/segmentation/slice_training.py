"""The 2.5D slice-training recipe the methods share: the settings of a slice segmenter (SKS or its U-Net baseline,
the federation's U-Net), batches of slices (crops, mirror, intensity changes), the stage-2 loss, AdamW with a
one-cycle schedule and validation Dice. SKS's two stages (sks/trainer.py) and the federated sites use all of it,
MPTPN and the teacher–student training the parts they need.

Loss choice (the SKS paper says only "Dice loss"): soft Dice of the foreground classes over the whole batch
(MONAI `batch=True`: most slices hold no lesion, and per-slice Dice is undefined there) plus cross-entropy.
With Dice alone (background included) both networks here collapsed to "no lesion" on small lesions; the
cross-entropy term gives every pixel a gradient from the first step. Same loss for every model."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..mixed_precision import check_precision
from .inference import predict_case
from .metrics import overlap_metrics
from .slice_data import SliceCase, neighbour_stack


@dataclass
class SliceTrainingConfig:
    model: str = "sks"                  # "sks" or "unet"
    sks: dict = field(default_factory=dict)  # SKSConfig overrides (embed_dim, depths, ablation switches, ...)
    unet_channels: tuple = (32, 64, 128, 256)
    unet_norm: str = "instance"         # or "batch" (the federation's default: see run_config)
    n_classes: int = 2                  # background included
    context: int = 1                    # neighbours each side
    crop: int = 128                     # training crop (pixels of the working grid)
    batch_size: int = 8
    coarse_iterations: int = 300        # stage 1
    iterations: int = 400               # stage 2
    iterations_per_epoch: int = 50
    learning_rate: float | None = None  # None: 5e-4 for SKS (transformer), 2e-3 for the U-Net (CNN)
    weight_decay: float = 1e-4
    coarse_in_stage2: str = "frozen"    # or "finetune"
    lesion_fraction: float = 0.6        # share of stage-2 slices drawn from slices with foreground
    augment: bool = True
    mirrored_lesion_copies: bool = False  # stage 2 also sees each pixel-labelled case with the last class's contrast reversed
    loss: str = "dice_ce"               # or "dice_balanced_ce" (segmentation_loss)
    precision: str = "fp32"             # or "bf16" / "auto" (mixed_precision.py): forward + loss in bf16
    seed: int = 0

    def __post_init__(self):
        check_precision(self.precision)

    def architecture(self) -> dict:
        c = 2 * self.context + 1
        if self.model == "unet":
            return {"name": "monai.UNet", "args": {"spatial_dims": 2, "in_channels": c, "out_channels": self.n_classes,
                                                   "channels": list(self.unet_channels), "strides": [2] * (len(self.unet_channels) - 1),
                                                   "num_res_units": 2, "norm": self.unet_norm}}
        from .sks.net import SKSConfig

        return {"name": "slicerleap.SKSNet", "args": SKSConfig(**{**self.sks, "in_channels": c, "out_channels": self.n_classes}).to_args()}

    @property
    def lr(self) -> float:
        return self.learning_rate or (2e-3 if self.model == "unet" else 5e-4)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def random_crop(stack: np.ndarray, target: np.ndarray | None, size: int, rng, centre=None):
    """Random size x size crop (zero-padded when the slice is smaller), containing `centre` when given."""
    _, h, w = stack.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        stack = np.pad(stack, ((0, 0), (0, ph), (0, pw)))
        target = None if target is None else np.pad(target, ((0, ph), (0, pw)))
        h, w = h + ph, w + pw
    def start(n, c):
        lo, hi = (0, n - size) if c is None else (max(0, c - size + 1), min(n - size, c))
        return int(rng.integers(lo, hi + 1))
    y, x = start(h, None if centre is None else centre[0]), start(w, None if centre is None else centre[1])
    return stack[:, y:y + size, x:x + size], None if target is None else target[y:y + size, x:x + size]


def intensity_augment(x: torch.Tensor, rng) -> torch.Tensor:
    """Intensity changes a scanner or protocol would make: gain, offset, gamma, noise (per sample)."""
    b = x.shape[0]
    gain = torch.as_tensor(rng.uniform(0.85, 1.15, b), dtype=x.dtype)[:, None, None, None]
    offset = torch.as_tensor(rng.uniform(-0.05, 0.05, b), dtype=x.dtype)[:, None, None, None]
    gamma = torch.as_tensor(rng.uniform(0.8, 1.25, b), dtype=x.dtype)[:, None, None, None]
    noise = torch.as_tensor(rng.normal(0, 1, x.shape) * rng.uniform(0, 0.03, (b, 1, 1, 1)), dtype=x.dtype)
    return (x.clamp(0, 1) ** gamma) * gain + offset + noise


def sample_slices(cases: list[SliceCase], rng, config: SliceTrainingConfig, pixel: bool, unlabelled: int | None = None):
    """A batch: x (B, 2c+1, crop, crop); y = class maps (B, 1, crop, crop) when `pixel`, else slice flags (B,).
    `unlabelled`: the label value of pixels without a label (sparse labels): never foreground; padding is 0."""
    xs, ys = [], []
    for _ in range(config.batch_size):
        case = cases[int(rng.integers(len(cases)))]
        foreground = (case.labels > 0) & (case.labels != unlabelled) if unlabelled is not None else None
        flags = case.slice_targets() if foreground is None else foreground.reshape(len(foreground), -1).any(axis=1).astype(np.int8)
        known = case.known_slices
        want_positive = rng.random() < (config.lesion_fraction if pixel else 0.5)
        pool = known[flags[known] > 0] if want_positive else known[flags[known] == 0]
        k = int(rng.choice(pool if pool.size else known))
        stack = neighbour_stack(case.image, [k], config.context)[0]
        centre = None
        if pixel and flags[k] > 0:
            fg = np.argwhere(case.labels[k] > 0 if foreground is None else foreground[k])
            centre = fg[int(rng.integers(len(fg)))]
        stack, target = random_crop(stack, case.labels[k] if pixel else None, config.crop, rng, centre)
        if config.augment and rng.random() < 0.5:  # left-right mirror: brain and most lesion anatomy allow it
            stack, target = stack[:, :, ::-1], None if target is None else target[:, ::-1]
        xs.append(np.ascontiguousarray(stack))
        ys.append(np.ascontiguousarray(target[None]) if pixel else flags[k])
    x = torch.as_tensor(np.stack(xs))
    if config.augment:
        x = intensity_augment(x, rng)
    return x.float(), torch.as_tensor(np.stack(ys)).long() if pixel else torch.as_tensor(np.array(ys, dtype=np.float32))


LOSSES = ("dice_ce", "dice_balanced_ce")


def segmentation_loss(name: str = "dice_ce"):
    """The stage-2 objective of every 2.5D model (module docstring): foreground soft Dice over the batch + CE;
    "dice_balanced_ce": the CE class-balanced (balanced_loss), as MPTPN needed for small lesions."""
    if name == "dice_balanced_ce":
        from .balanced_loss import DiceBalancedCELoss

        return DiceBalancedCELoss()
    if name != "dice_ce":
        raise ValueError(f"unknown segmentation loss {name!r}: use one of {LOSSES}")
    from monai.losses import DiceCELoss

    return DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True)


def mean_dice(net, cases: list[SliceCase], device, context: int = 1) -> float | None:
    """Mean 3D foreground Dice over `cases` (on their slice grids); None without cases."""
    from .. import distributed

    if not cases:
        return None
    distributed.share_buffers(net)
    net.eval()  # under torchrun each process scores its share of the cases
    return distributed.mean_over_processes([overlap_metrics(predict_case(net, c, device, context=context).argmax(0) > 0, c.labels > 0)["dice"]
                                            for c in distributed.my_share(cases)], device)


def optimiser_step(opt, sched, loss) -> float:
    """One gradient step and schedule step; returns the loss value."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def one_cycle_adamw(params, config, steps: int):
    """AdamW at config.lr / config.weight_decay with a one-cycle schedule over `steps`."""
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=max(1, steps), pct_start=0.1)
