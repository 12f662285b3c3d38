"""MPTPN training (stage 1 SimSiam, stage 2 segmentation) and the image-only U-Net baseline in the same loop.

Stage 2 (the paper gives no optimiser, rate or length): AdamW with a one-cycle schedule, batches of prompted
slices, the paper's 0.5 WBCE + 0.5 WDice for every model, the same augmentations for every model. The U-Net
baseline sees the same slices and steps but not the prompts.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from ...mixed_precision import autocast, check_precision, resolve_precision
from ..slice_training import one_cycle_adamw, optimiser_step
from . import text_encoder
from .augment import augment_pair
from .net import ImageOnly, MPTPNConfig, mptpn_loss
from .pretraining import pretrain_prior
from .prompted_slices import PromptedSlices


@dataclass
class MPTPNTrainingConfig:
    model: str = "mptpn"               # or "unet" (image only)
    net: dict = field(default_factory=dict)  # MPTPNConfig overrides (channels, patch, heads, ablation switches)
    img_size: int = 128
    unet_channels: tuple = (16, 32, 64, 128)
    iterations: int = 600               # stage 2
    pretrain_iterations: int = 300      # stage 1 (SimSiam); 0 = no pretraining (the paper's "w/o Stage-1 weights")
    batch_size: int = 8
    learning_rate: float | None = None  # None: 1e-3 (MPTPN), 2e-3 (U-Net)
    weight_decay: float = 1e-4
    augment: bool = True
    precision: str = "fp32"             # or "bf16" / "auto" (mixed_precision.py): stage 2 forward + loss in bf16
    seed: int = 0

    def __post_init__(self):
        check_precision(self.precision)

    def mptpn_config(self) -> MPTPNConfig:
        return MPTPNConfig(**{"img_size": self.img_size, "text_width": text_encoder.width(),
                              "text_tokens": text_encoder.MAX_TOKENS, **self.net})

    def architecture(self) -> dict:
        if self.model == "unet":
            return {"name": "monai.UNet", "args": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                                                   "channels": list(self.unet_channels), "strides": [2] * (len(self.unet_channels) - 1),
                                                   "num_res_units": 2, "norm": "batch"}}
        return {"name": "slicerleap.MPTPN", "args": self.mptpn_config().to_dict()}

    @property
    def lr(self) -> float:
        return self.learning_rate or (2e-3 if self.model == "unet" else 1e-3)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def build(config: MPTPNTrainingConfig) -> torch.nn.Module:
    """The network with MPTPN's call signature net(image, words)."""
    from ...models.networks import build_network

    net = build_network(config.architecture())
    return ImageOnly(net) if config.model == "unet" else net


def batch_logits(net, images: torch.Tensor, prompts: list[str], device) -> torch.Tensor:
    from ... import distributed

    words = text_encoder.encode(prompts, device)[0] if not isinstance(distributed.unwrap(net), ImageOnly) else None
    return net(images.to(device), words)


def predict(net, images: torch.Tensor, prompts: list[str], device, batch_size: int = 16) -> torch.Tensor:
    """Foreground probabilities (N, 1, S, S) on the CPU."""
    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            out.append(torch.sigmoid(batch_logits(net, images[start:start + batch_size],
                                                  prompts[start:start + batch_size], device).float()).cpu())
    return torch.cat(out)


def train_mptpn(train: PromptedSlices, config: MPTPNTrainingConfig, device, report: Callable | None = None,
                stop: Callable[[], bool] | None = None, pretrain: PromptedSlices | None = None, initial: dict | None = None):
    """(net, history, seconds). Stage 1 runs on `pretrain` (default: the training pairs, masks unused) unless
    the model is the U-Net or pretrain_iterations is 0. `initial`: a state dict to start from instead, e.g. one
    stage-1 run shared by ablation variants (tensors whose name and shape match are taken). `report(fraction,
    message, record)`."""
    from ... import distributed

    report = report or (lambda *a: None)
    started = time.time()
    torch.manual_seed(config.seed)
    net = build(config).to(device)
    if initial is not None:
        own = net.state_dict()
        net.load_state_dict({k: v for k, v in initial.items() if k in own and own[k].shape == v.shape}, strict=False)
    history = []
    stage1 = config.pretrain_iterations if config.model == "mptpn" else 0
    total = stage1 + config.iterations
    if stage1:
        pairs = pretrain if pretrain is not None else train
        history += [{"stage": 1, **r} for r in pretrain_prior(
            net, pairs.images, pairs.prompts, stage1, device, config.batch_size, seed=config.seed,
            report=lambda f, m, r: report(f * stage1 / total, m, r), stop=stop)]
    opt, sched = one_cycle_adamw(net.parameters(), config, config.iterations)
    precision = resolve_precision(config.precision, device)
    rng = np.random.default_rng(config.seed + 1)  # the same on every process (torchrun): each keeps its share of a batch
    model = distributed.wrap(net, device)
    net.train()
    for step in range(1, config.iterations + 1):
        if distributed.any_process(bool(stop and stop()), device):
            break
        index = rng.choice(len(train), size=min(config.batch_size, len(train)), replace=False)
        distributed.check_batch_divides(len(index))
        images, masks = train.images[index], train.masks[index]
        if config.augment:
            images, masks = augment_pair(images, masks, rng)
        images, masks = distributed.batch_share(images, masks)
        prompts = distributed.my_share([train.prompts[i] for i in index])
        with autocast(device, precision):
            loss = mptpn_loss(batch_logits(model, images, prompts, device).float(), masks.to(device))
        loss = distributed.mean_over_processes([optimiser_step(opt, sched, loss)], device)
        history.append({"stage": 2, "step": step, "loss": round(loss, 4)})
        if step % 10 == 0 or step == config.iterations:
            report((stage1 + step) / total, f"stage 2 step {step}/{config.iterations} loss {loss:.3f}", history[-1])
    distributed.share_buffers(net)  # every process ends with the model the first one writes
    return net.eval(), history, time.time() - started
