"""SKS's two training stages, and the MONAI U-Net baseline in the same loop (the recipe: slice_training.py).

Stage 1 (SKS only): the coarse branch learns "does this slice contain lesion" from slice-level labels of
every case (cases with pixel labels contribute their derived flags). Stage 2: the fine branch, fusion and
decoder learn from the few pixel-labelled cases with Dice loss; the coarse branch stays frozen by default
(the paper trains it in stage 1 and names only fine branch + decoder for stage 2; freezing also keeps the
slice-label knowledge from being overwritten by a handful of cases). The U-Net baseline runs stage 2 only,
with the same slices, crops, augmentation, loss, optimiser and iterations."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ... import distributed
from ...best_weights import BestWeights
from ...mixed_precision import autocast, resolve_precision
from ...training_state import load_training_state, save_training_state
from ..slice_data import SliceCase
from ..slice_training import SliceTrainingConfig, mean_dice, one_cycle_adamw, optimiser_step, sample_slices, segmentation_loss
from .lesion_polarity import mirror_lesion_contrast


def with_mirrored_lesion_copies(cases: list[SliceCase], lesion_class: int) -> list[SliceCase]:
    """The cases, then a copy of each with the contrast of its `lesion_class` voxels reversed (lesion_polarity.py): as
    many bright as dark lesion examples, whatever the few labelled cases hold. The lesion is the last class (after the
    organ in organ + lesion labels)."""
    copies = [SliceCase(c.grid.with_array(mirror_lesion_contrast(c.image, c.labels == lesion_class)), c.labels, c.slice_labels,
                        f"{c.name} (lesion contrast mirrored)") for c in cases if c.labels is not None and (c.labels == lesion_class).any()]
    return cases + copies


def train_coarse_branch(net, cases: list[SliceCase], config: SliceTrainingConfig, device, report: Callable,
                        should_stop: Callable = lambda: False) -> list[dict]:
    """Stage 1: slice classification (BCE) on every case with slice-level knowledge."""
    usable = [c for c in cases if c.known_slices.size]
    distributed.check_batch_divides(config.batch_size)
    rng = np.random.default_rng(config.seed + 1)  # the same on every process: each keeps its share of the same batch
    classify = distributed.wrap(distributed.Through(net, "classify"), device)
    params = list(net.coarse.parameters()) + list(net.classifier.parameters())
    opt, sched = one_cycle_adamw(params, config, config.coarse_iterations)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    precision = resolve_precision(config.precision, device)
    history, losses, hits = [], [], []
    net.train()
    for it in range(config.coarse_iterations):
        x, y = distributed.batch_share(*sample_slices(usable, rng, config, pixel=False))
        x, y = x.to(device), y.to(device)
        with autocast(device, precision):
            logits = classify(x).float()
            loss = loss_fn(logits, y)
        losses.append(optimiser_step(opt, sched, loss))
        hits.append(float(((logits > 0).float() == y).float().mean()))
        if (it + 1) % config.iterations_per_epoch == 0 or it + 1 == config.coarse_iterations:
            record = {"training_stage": 1, "iteration": it + 1, "loss": distributed.mean_over_processes(losses, device),
                      "train_accuracy": distributed.mean_over_processes(hits, device)}
            history.append(record)
            report((it + 1) / config.coarse_iterations, f"stage 1 (slice labels) iteration {it + 1}/{config.coarse_iterations}: "
                   f"loss {record['loss']:.3f}, slice accuracy {record['train_accuracy']:.2f}", record)
            losses, hits = [], []
        if distributed.any_process(should_stop(), device):
            break
    return history


def train_segmenter(net, cases: list[SliceCase], val: list[SliceCase], config: SliceTrainingConfig, device,
                    report: Callable, should_stop: Callable = lambda: False, resume_file: str | None = None) -> list[dict]:
    """Stage 2: pixel labels, Dice loss; keeps the weights with the best validation Dice, the latest of equals (last ones
    without validation). With `resume_file`, the run's state is saved there at every validation and a stopped run goes on
    from it (the file is removed when the run ends)."""
    distributed.check_batch_divides(config.batch_size)
    rng = np.random.default_rng(config.seed + 2)  # the same on every process: each keeps its share of the same batch
    if config.mirrored_lesion_copies:
        cases = with_mirrored_lesion_copies(cases, config.n_classes - 1)
    frozen = config.model == "sks" and net.cfg.coarse_branch and config.coarse_in_stage2 == "frozen"
    if frozen:
        net.coarse.requires_grad_(False)
        net.classifier.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    model = distributed.wrap(net, device)
    opt, sched = one_cycle_adamw(params, config, config.iterations)
    loss_fn = segmentation_loss(config.loss)
    precision = resolve_precision(config.precision, device)
    history, losses, best = [], [], BestWeights()
    start = 0
    if resume_file:
        start, history = load_training_state(resume_file, net, opt, sched, best, rng)
    for it in range(start, config.iterations):
        net.train()
        if frozen:
            net.coarse.eval()  # no dropout/drop-path in the frozen guidance branch
        x, y = distributed.batch_share(*sample_slices(cases, rng, config, pixel=True))
        with autocast(device, precision):
            loss = loss_fn(model(x.to(device)).float(), y.to(device))
        losses.append(optimiser_step(opt, sched, loss))
        last = it + 1 == config.iterations or distributed.any_process(should_stop(), device)
        if (it + 1) % config.iterations_per_epoch == 0 or last:
            dice = mean_dice(net, val, device, config.context)
            record = {"training_stage": 2, "iteration": it + 1, "loss": distributed.mean_over_processes(losses, device), "val_dice": dice}
            history.append(record)
            report((it + 1) / config.iterations, f"stage 2 (pixel labels) iteration {it + 1}/{config.iterations}: loss {record['loss']:.3f}"
                   + (f", validation Dice {dice:.3f}" if dice is not None else ""), record)
            best.offer(dice, net)
            losses = []
            if resume_file and not last and distributed.is_main():
                save_training_state(resume_file, it + 1, net, opt, sched, best, history, rng)
        if last:
            break
    best.restore(net)
    distributed.share_buffers(net)  # every process ends with the model the first one writes
    if resume_file:
        Path(resume_file).unlink(missing_ok=True)
    return history


def train_slice_model(pixel_cases: list[SliceCase], slice_cases: list[SliceCase], val_cases: list[SliceCase],
                      config: SliceTrainingConfig, device, report: Callable = lambda *a, **k: None,
                      should_stop: Callable = lambda: False):
    """Build the configured network and train it (stage 1 for SKS with a coarse branch, then stage 2).

    report(fraction 0..1, message, record) is called per epoch; returns (net in eval mode, history, seconds)."""
    from monai.utils import set_determinism

    from ...models.networks import build_network

    set_determinism(config.seed)
    net = build_network(config.architecture()).to(device)
    started = time.time()
    history = []
    two_stages = config.model == "sks" and net.cfg.coarse_branch
    split = config.coarse_iterations / (config.coarse_iterations + config.iterations) if two_stages else 0.0
    if two_stages:
        history += train_coarse_branch(net, pixel_cases + slice_cases, config, device,
                                       lambda f, m, r: report(f * split, m, r), should_stop)
    history += train_segmenter(net, pixel_cases, val_cases, config, device,
                               lambda f, m, r: report(split + f * (1 - split), m, r), should_stop)
    return net.eval(), history, time.time() - started
