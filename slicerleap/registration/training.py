"""Train a registration network (TM-DCA or the VoxelMorph baseline: same loop, same loss, same pairs)
on pairs from a PairSampler; validation = mean Dice of labels warped on fixed held-out pairs; the best
validation state is kept."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..best_weights import BestWeights
from ..models.networks import build_network
from ..segmentation.metrics import dice_per_class
from .losses import RegistrationLoss, RegistrationLossConfig
from .random_deformation import warp


def tm_dca_architecture(**args) -> dict:
    return {"name": "slicerleap.TMDCA", "args": {"embed_dim": 16, "depths": [2, 2, 2], "heads": [2, 4, 8], "window": 4,
                                                 "patch": 4, "offset_range": 2.0, "skip_channels": 16, **args}}


def voxelmorph_architecture(**args) -> dict:
    return {"name": "slicerleap.VoxelMorph", "args": {"channels": [16, 32, 32, 32], "final_conv_channels": [16, 16],
                                                      "unet_out_channels": 16, **args}}


@dataclass
class RegistrationTrainingConfig:
    architecture: dict = field(default_factory=tm_dca_architecture)
    loss: RegistrationLossConfig = field(default_factory=RegistrationLossConfig)
    iterations: int = 400
    learning_rate: float = 3e-4  # the papers use 1e-4 over 10^5 iterations; a CPU budget needs a larger step
    validate_every: int = 50
    seed: int = 0


def one_hot(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    return F.one_hot(labels[:, 0].clamp(0, n_classes - 1), n_classes).permute(0, 4, 1, 2, 3).float()


def pair_dice(net, pairs, device, label_values) -> float:
    """Mean Dice over pairs and labels of the moving labels warped (nearest) by the predicted field; with
    no labels (unlabelled training images), the mean local normalised cross-correlation instead."""
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    from .. import distributed

    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=7)
    scores = []
    distributed.share_buffers(net)
    net.eval()
    with torch.no_grad():
        for moving, fixed, moving_labels, fixed_labels in distributed.my_share(pairs):  # torchrun: gathered below
            warped_image, ddf = net(moving.to(device), fixed.to(device))
            if not label_values:
                scores.append(-float(lncc(warped_image, fixed.to(device))))
                continue
            warped = warp(moving_labels.float().to(device), ddf, mode="nearest")[0, 0].cpu().numpy()
            truth = fixed_labels[0, 0].numpy()
            present = [v for v in label_values if (truth == v).any() or (warped == v).any()]  # absent labels are no evidence
            scores += list(dice_per_class(warped, truth, present).values())
    net.train()
    return distributed.mean_over_processes(scores, device)


def train_registration(sampler, validation_pairs, config: RegistrationTrainingConfig, device, n_classes: int,
                       report=lambda *a, **k: None, should_stop=lambda: False, initial_state: dict | None = None):
    """Returns (network with the best validation state, history of {iteration, loss parts, val_dice}).
    `initial_state`: weights to start from (fine-tuning a catalog model). n_classes = 1: no labels."""
    from .. import distributed

    torch.manual_seed(config.seed)
    net = build_network(config.architecture).to(device)
    if initial_state is not None:
        net.load_state_dict(initial_state)
    model = distributed.wrap(net, device)
    loss_fn = RegistrationLoss(config.loss)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    label_values = list(range(1, n_classes))
    best, history, started = BestWeights(), [], time.time()
    running: dict[str, float] = {}
    for iteration in range(1, config.iterations + 1):
        if distributed.any_process(should_stop(), device):
            report(None, "training", f"stopped by the user after {iteration - 1} iterations; keeping the best model so far")
            break
        # under torchrun every process draws the same N pairs (one generator, one seed) and trains on its own: a step sees N pairs
        pairs = [sampler.sample() for _ in range(distributed.world_size())]
        moving, fixed, moving_labels, fixed_labels = (t.to(device) for t in pairs[distributed.rank()])
        warped, ddf = model(moving, fixed)
        if n_classes > 1:
            loss, parts = loss_fn(fixed, warped, ddf, one_hot(fixed_labels, n_classes), warp(one_hot(moving_labels, n_classes), ddf))
        else:
            loss, parts = loss_fn(fixed, warped, ddf)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        for k, v in parts.items():
            running[k] = running.get(k, 0.0) + v
        if iteration % config.validate_every == 0 or iteration == config.iterations:
            n = config.validate_every if iteration % config.validate_every == 0 else iteration % config.validate_every
            dice = pair_dice(net, validation_pairs, device, label_values)
            parts_summed = distributed.sum_over_processes(list(running.values()), device)
            record = {"iteration": iteration, **{k: v / n / distributed.world_size() for k, v in zip(running, parts_summed)}, "val_dice": dice,
                      "elapsed_s": round(time.time() - started, 1)}
            history.append(record)
            running = {}
            best.offer(dice, net)
            report(iteration / config.iterations, "training",
                   f"iteration {iteration}/{config.iterations}: loss {sum(v for k, v in record.items() if k in parts):.4f}, "
                   f"validation Dice {dice:.3f}", **record)
    best.restore(net)
    distributed.share_buffers(net)  # every process ends with the model the first one writes
    return net.eval(), history
