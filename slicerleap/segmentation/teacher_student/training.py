"""Training and pseudo-labelling of the teacher–student method (METHODS.md §3) on 2.5D slices.

Teacher: trained on the strongly labelled cases (image, organ/lesion mask, boxes) with cross-entropy; it
reads the image slices and the two box maps. Pseudo-labels: the teacher's softmax on the weakly labelled
cases (image, boxes) — soft targets, as the paper distils them — with an uncertainty score per case.
Student: the same U-Net without box input, trained on hard labels (manual or corrected) and soft
pseudo-labels with cross-entropy, plus α·CE of its localisation branch against the box map (class
weights background 1, organ 0.1, lesion 1; the paper names organ 0.1 and lesion 1, and outside every
box a voxel is surely background, so it keeps full weight).

Deviations from the paper, the same for every compared model: AdamW with a one-cycle schedule instead of
SGD (momentum 0.9, 1500/4000 epochs) — a CPU budget of a few hundred iterations does not converge with
SGD at 1e-3 (`optimiser="sgd"` gives the paper's); soft Dice (organ, lesion; over the batch) added to
every cross-entropy — with CE alone the teacher had learnt no lesion voxel after 150 iterations, with
Dice its validation lesion Dice was 0.59 (`dice=False` gives the paper's loss); batch norm (instance
norm turned the empty slices above and below the head into "organ"); crops of `crop` pixels instead of
320²; intensity augmentation (gain, gamma, noise) beside the paper's random scaling 0.8–1.2 and flips."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...best_weights import BestWeights
from ...mixed_precision import autocast, check_precision, resolve_precision
from ...volume import Volume
from ..boxes import Box, box_map
from ..inference import predict_case
from ..metrics import overlap_from_counts, overlap_metrics
from ..slice_data import SliceCase, neighbour_stack, prepare_case
from ..slice_training import intensity_augment, optimiser_step, random_crop
from .uncertainty import DEFAULT_FILL, pseudo_label_uncertainty

N_CLASSES = 3  # background, organ, lesion


@dataclass
class TeacherStudentConfig:
    features: tuple = (16, 32, 64, 128, 256)
    context: int = 1                       # neighbours each side: 3-slice input
    crop: int = 128
    batch_size: int = 4
    iterations: int = 400
    iterations_per_epoch: int = 50
    optimiser: str = "adamw"               # or "sgd" (the paper's: momentum 0.9)
    learning_rate: float | None = None     # None: AdamW 1e-3; SGD teacher 1e-3, student 3e-4 (the paper's)
    weight_decay: float = 1e-4
    box_conditioning: str = "o2l"          # teacher: o2l | o2l-no-shortcut | multichannel | none
    localisation: bool = True              # student's localisation branch
    localisation_weight: float = 1.0       # α
    localisation_class_weights: tuple = (1.0, 0.1, 1.0)
    dice: bool = True                      # + soft Dice of organ and lesion over the batch (see module docstring)
    lesion_fraction: float = 0.5           # share of training slices drawn from slices with lesion (box)
    scale_range: tuple = (0.8, 1.2)
    augment: bool = True
    precision: str = "fp32"                # or "bf16" / "auto" (mixed_precision.py): forward + loss in bf16
    seed: int = 0

    def __post_init__(self):
        check_precision(self.precision)

    def architecture(self, role: str) -> dict:
        """The card's architecture of the teacher, or of the student as deployed (branch dropped)."""
        args = {"image_channels": 2 * self.context + 1, "out_channels": N_CLASSES, "features": list(self.features)}
        if role == "teacher":
            args["box_conditioning"] = self.box_conditioning
        return {"name": "slicerleap.BoxUNet", "args": args}

    def lr(self, role: str) -> float:
        if self.learning_rate:
            return self.learning_rate
        return 1e-3 if self.optimiser == "adamw" or role == "teacher" else 3e-4

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class BoxCase(SliceCase):
    """A SliceCase with its box map (K, J, I: 0 / 1 organ box / 2 lesion box) and, for pseudo-labelled
    cases, the teacher's soft labels (3, K, J, I, float16)."""
    boxes: np.ndarray | None = None
    soft: np.ndarray | None = None

    def box_channels(self, k=slice(None)) -> np.ndarray:
        """(2, K, J, I) float32 (or (2, J, I) for one slice k): organ box (union of all boxes), lesion box."""
        return np.stack([self.boxes[k] >= 1, self.boxes[k] == 2]).astype(np.float32)


def prepare_box_case(image: Volume, input_spec: dict, boxes: list[Box], labels: Volume | None = None,
                     label_values=(1, 2)) -> BoxCase:
    """Image (+ labels with organ value label_values[0] and lesion value label_values[1]) on the model's slice
    grid, with the box map drawn on that grid from RAS boxes."""
    case = prepare_case(image, input_spec, labels, list(label_values) if labels is not None else None)
    return BoxCase(case.grid, case.labels, None, case.name, boxes=box_map(case.grid, boxes))


def _targets(case: BoxCase, k: int) -> np.ndarray:
    """(3, J, I) class probabilities of slice k: one-hot of the labels, or the soft pseudo-label."""
    if case.labels is not None:
        return np.eye(N_CLASSES, dtype=np.float32)[case.labels[k]].transpose(2, 0, 1)
    return case.soft[:, k].astype(np.float32)


def sample_batch(cases: list[BoxCase], rng, config: TeacherStudentConfig):
    """x (B, 2c+1, crop, crop) image slices, boxes (B, 2, ...), target (B, 3, ...) probabilities,
    box_map (B, ...) long. Lesion slices (by labels, else by lesion box) with probability lesion_fraction,
    cropped around a lesion pixel; other slices from the organ box."""
    n_img = 2 * config.context + 1
    items = []
    for _ in range(config.batch_size):
        case = cases[int(rng.integers(len(cases)))]
        lesion = case.labels == 2 if case.labels is not None else case.boxes == 2
        lesion_slices = np.flatnonzero(lesion.reshape(len(lesion), -1).any(1))
        organ_slices = np.flatnonzero((case.boxes >= 1).reshape(len(lesion), -1).any(1))
        centre = None
        if lesion_slices.size and rng.random() < config.lesion_fraction:
            k = int(rng.choice(lesion_slices))
            points = np.argwhere(lesion[k])
            centre = points[int(rng.integers(len(points)))]
        else:
            pool = organ_slices if organ_slices.size and rng.random() < 0.7 else np.arange(len(lesion))
            k = int(rng.choice(pool))
        stack = np.concatenate([neighbour_stack(case.image, [k], config.context)[0], case.box_channels(k),
                                _targets(case, k), case.boxes[k][None].astype(np.float32)])
        stack, _ = random_crop(stack, None, config.crop, rng, centre)
        items.append(stack)
    batch = torch.as_tensor(np.stack(items))
    if config.augment:
        batch = _spatial_augment(batch, rng, config.scale_range, n_img)
        batch[:, :n_img] = intensity_augment(batch[:, :n_img], rng)
    return (batch[:, :n_img].float(), batch[:, n_img:n_img + 2].float(), batch[:, n_img + 2:n_img + 2 + N_CLASSES].float(),
            batch[:, -1].round().long())


def _spatial_augment(batch: torch.Tensor, rng, scale_range, n_img: int) -> torch.Tensor:
    """The paper's random scaling and flips, per sample: image bilinear, boxes and targets nearest."""
    b = batch.shape[0]
    scale = rng.uniform(*scale_range, b)
    flip = np.where(rng.random((b, 2)) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, dtype=batch.dtype)
    theta[:, 0, 0] = torch.as_tensor(flip[:, 0] / scale)
    theta[:, 1, 1] = torch.as_tensor(flip[:, 1] / scale)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    image = F.grid_sample(batch[:, :n_img], grid, "bilinear", "zeros", align_corners=False)
    rest = F.grid_sample(batch[:, n_img:], grid, "nearest", "zeros", align_corners=False)
    rest[:, 2] += (rest[:, 2:2 + N_CLASSES].sum(1) == 0).to(rest.dtype)  # outside the slice: background
    return torch.cat([image, rest], 1)


def build_box_unet(config: TeacherStudentConfig, role: str):
    from .nets import BoxUNet

    args = config.architecture(role)["args"]
    return BoxUNet(**args, localisation=role == "student" and config.localisation)


def predict_box_case(net, case: BoxCase, device, context: int = 1, batch_size: int = 8, report=None) -> np.ndarray:
    """Softmax (3, K, J, I) of the teacher (box channels given) or the student."""
    extra = case.box_channels() if getattr(net, "box_conditioning", None) else None
    return predict_case(net, case, device, batch_size, context, report, extra=extra)


ROLE_LABELS = [{"value": 1, "name": "organ", "color": "#808080", "role": "organ"},
               {"value": 2, "name": "lesion", "color": "#ff0000", "role": "lesion"}]


def evaluate(net, cases: list[BoxCase], device, context: int = 1, postprocess: bool = False) -> dict:
    """3D Dice of organ (organ + lesion voxels) and lesion on the slice grids: mean over cases ("_dice") and
    global over all voxels pooled ("_dice_global", the LiTS convention); lesion precision and recall pooled.
    `postprocess`: the deployed clean-up (largest organ component, hole filling, lesions outside the organ removed)
    first."""
    from ..postprocess import postprocess_labels

    from ... import distributed

    scores = {"organ": [], "lesion": []}
    pooled = {"organ": np.zeros(3), "lesion": np.zeros(3)}  # true positives, predicted, true voxels
    distributed.share_buffers(net)
    net.eval()
    for case in distributed.my_share(cases):  # under torchrun each process scores its share, gathered below
        labels = predict_box_case(net, case, device, context).argmax(0)
        if postprocess:
            labels = postprocess_labels(labels, ROLE_LABELS, case.grid.spacing)
        for name, pred, truth in (("organ", labels > 0, case.labels > 0), ("lesion", labels == 2, case.labels == 2)):
            scores[name].append(overlap_metrics(pred, truth)["dice"])
            pooled[name] += [(pred & truth).sum(), pred.sum(), truth.sum()]
    out = {f"{n}_dice": distributed.mean_over_processes(v, device) for n, v in scores.items()}
    overall = {n: overlap_from_counts(*distributed.sum_over_processes(list(p), device)) for n, p in pooled.items()}
    out.update({f"{n}_dice_global": m["dice"] for n, m in overall.items()})
    # is a low lesion Dice missed lesion or false alarm?
    out.update({"lesion_precision_global": overall["lesion"]["precision"], "lesion_recall_global": overall["lesion"]["recall"]})
    return out


def pseudo_label(teacher, case: BoxCase, device, context: int = 1, report=None,
                 fill_reference: float = DEFAULT_FILL) -> tuple[np.ndarray, float]:
    """(soft labels (3, K, J, I) float16, uncertainty 0..1): the teacher's softmax, and how likely its lesion
    label is wrong, from how it fills the lesion boxes (uncertainty.py; `fill_reference` from the teacher's
    card). The softmax entropy inside the boxes, the score before, ranked worse than random order in 2 of 3
    seeds (RESULTS.md)."""
    probs = predict_box_case(teacher, case, device, context, report=report)
    return probs.astype(np.float16), pseudo_label_uncertainty(probs.argmax(0) == 2, case.boxes, fill_reference)


def _optimiser(params, config: TeacherStudentConfig, role: str):
    lr = config.lr(role)
    if config.optimiser == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=config.weight_decay)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    warmup, total = max(1, config.iterations // 10), max(1, config.iterations)

    def one_cycle(step):  # linear warm-up over 10 %, then cosine to zero
        return (step + 1) / warmup if step < warmup else 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup)))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, one_cycle)


def _soft_dice(logits, target):
    probs = torch.softmax(logits, 1)[:, 1:]
    target = target[:, 1:]
    inter = (probs * target).sum((0, 2, 3))
    return 1 - ((2 * inter + 1e-5) / (probs.sum((0, 2, 3)) + target.sum((0, 2, 3)) + 1e-5)).mean()


def train_box_unet(role: str, cases: list[BoxCase], val: list[BoxCase], config: TeacherStudentConfig, device,
                   report: Callable = lambda *a: None, should_stop: Callable = lambda: False,
                   initial_state: dict | None = None):
    """Train the teacher (role "teacher") or the student ("student"); cases need labels or soft labels.
    `initial_state`: weights to start from (fine-tuning a previous version; a student's may lack the branch).
    Returns (net in eval mode, history, seconds); keeps the weights with the best validation Dice
    (mean of organ and lesion) when `val` is given. report(fraction, message, record) once per epoch."""
    from monai.utils import set_determinism

    from ... import distributed

    set_determinism(config.seed)
    distributed.check_batch_divides(config.batch_size)
    net = build_box_unet(config, role).to(device)
    if initial_state is not None:
        net.load_state_dict(initial_state, strict=False)
    # the same generator on every process (torchrun): each keeps its share of the same batch
    rng = np.random.default_rng(config.seed + (11 if role == "teacher" else 12))
    opt, sched = _optimiser(net.parameters(), config, role)
    loc_weights = torch.as_tensor(config.localisation_class_weights, dtype=torch.float32, device=device)
    student_branch = role == "student" and config.localisation
    model = distributed.wrap(distributed.Through(net, "forward_with_localisation") if student_branch else net, device)
    precision = resolve_precision(config.precision, device)
    history, losses, best = [], [], BestWeights()
    started = time.time()
    for it in range(config.iterations):
        net.train()
        x, boxes, target, boxmap = (None if t is None else t.to(device) for t in distributed.batch_share(*sample_batch(cases, rng, config)))
        with autocast(device, precision):
            if role == "teacher":
                seg = model(torch.cat([x, boxes], 1))
            elif student_branch:
                seg, loc = model(x)
            else:
                seg = model(x)
            seg = seg.float()
            loss = F.cross_entropy(seg, target)
            if config.dice:
                loss = loss + _soft_dice(seg, target)
            if student_branch:
                loss = loss + config.localisation_weight * F.cross_entropy(loc.float(), boxmap, weight=loc_weights)
        losses.append(optimiser_step(opt, sched, loss))
        last = it + 1 == config.iterations or distributed.any_process(should_stop(), device)
        if (it + 1) % config.iterations_per_epoch == 0 or last:
            record = {"role": role, "iteration": it + 1, "loss": distributed.mean_over_processes(losses, device)}
            if val:
                record.update(evaluate(net, val, device, config.context))
                best.offer((record["organ_dice"] + record["lesion_dice"]) / 2, net)
            history.append(record)
            report((it + 1) / config.iterations, f"{role} iteration {it + 1}/{config.iterations}: loss {record['loss']:.3f}"
                   + (f", validation Dice organ {record['organ_dice']:.3f} lesion {record['lesion_dice']:.3f}" if val else ""), record)
            losses = []
        if last:
            break
    best.restore(net)
    distributed.share_buffers(net)  # every process ends with the model the first one writes
    return net.eval(), history, time.time() - started
