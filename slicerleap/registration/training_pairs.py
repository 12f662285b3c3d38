"""Training pairs for a registration network that must work out of the box without a training set
downloaded: (a) a real brain (image + tissue labels) deformed twice by independent smooth random
diffeomorphisms, and (b) SynthMorph-style synthetic label maps (argmax of smoothed noise inside a random
blob) with random per-label intensities. Each image of a pair gets its own intensity changes (gamma,
smooth bias field, noise), so the network cannot rely on identical grey values. Arrays are on the
working grid, intensities in [0, 1]; labels are integers (0 = background)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .random_deformation import random_displacement, warp


@dataclass
class PairSamplerConfig:
    shape: tuple = (64, 80, 64)
    max_displacement_voxels: float = 4.0
    synthetic_fraction: float = 0.5
    synthetic_labels: int = 8
    inter_subject_fraction: float = 0.5  # with two or more real images: pairs of two different subjects


def _smooth_noise(channels: int, shape, control: int, generator) -> torch.Tensor:
    coarse = torch.rand((1, channels) + (control,) * 3, generator=generator)
    return F.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)


def synthetic_label_map(shape, n_labels: int, generator: torch.Generator) -> torch.Tensor:
    """(1, 1, *shape) integer label map: a smooth random blob split into n_labels smooth regions."""
    regions = _smooth_noise(n_labels, shape, 6, generator).argmax(1, keepdim=True) + 1
    axes = [torch.linspace(-1, 1, n) for n in shape]
    r = sum(a ** 2 for a in torch.meshgrid(*axes, indexing="ij"))
    wobble = 0.25 * (_smooth_noise(1, shape, 4, generator)[0, 0] - 0.5)
    inside = (r + wobble) < 0.75
    return (regions * inside).to(torch.int64)


def _render(labels: torch.Tensor, means: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    image = means[labels]
    return image + 0.03 * torch.randn(image.shape, generator=generator)


def _intensity_augment(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    gamma = float(torch.empty(1).uniform_(0.7, 1.4, generator=generator))
    bias = 1.0 + 0.3 * (_smooth_noise(1, image.shape[2:], 3, generator) - 0.5)
    out = image.clamp(min=0) ** gamma * bias + 0.02 * torch.randn(image.shape, generator=generator)
    return (out / out.amax().clamp(min=1e-6)).clamp(0, 1)


def fit_to_shape(array: np.ndarray, shape) -> np.ndarray:
    """Centre-crop or zero-pad an array (k, j, i) to `shape`."""
    out = np.zeros(shape, dtype=array.dtype)
    src, dst = [], []
    for n, m in zip(array.shape, shape):
        if n >= m:
            start = (n - m) // 2
            src.append(slice(start, start + m))
            dst.append(slice(0, m))
        else:
            start = (m - n) // 2
            src.append(slice(0, n))
            dst.append(slice(start, start + n))
    out[tuple(dst)] = array[tuple(src)]
    return out


class PairSampler:
    """sample() -> moving, fixed (1, 1, *shape) float; moving_labels, fixed_labels (1, 1, *shape) int64."""

    def __init__(self, real: list[tuple[np.ndarray, np.ndarray]], config: PairSamplerConfig, seed: int = 0):
        self.config = config
        self.real = [(torch.from_numpy(fit_to_shape(i, config.shape).astype(np.float32))[None, None],
                      torch.from_numpy(fit_to_shape(l, config.shape).astype(np.int64))[None, None]) for i, l in real]
        self.generator = torch.Generator().manual_seed(seed)

    def _source(self):
        g, c = self.generator, self.config
        if not self.real or float(torch.rand(1, generator=g)) < c.synthetic_fraction:
            labels = synthetic_label_map(c.shape, c.synthetic_labels, g)
            means = torch.cat([torch.zeros(1), torch.rand(c.synthetic_labels, generator=g) * 0.9 + 0.1])
            return _render(labels, means, g), labels
        return self.real[int(torch.randint(len(self.real), (1,), generator=g))]

    def _sources(self):
        """Two (image, labels): one source twice, or — with co-aligned real images — two subjects."""
        g, c = self.generator, self.config
        if len(self.real) >= 2 and float(torch.rand(1, generator=g)) < c.inter_subject_fraction:
            a, b = torch.randperm(len(self.real), generator=g)[:2].tolist()
            return self.real[a], self.real[b]
        source = self._source()
        return source, source

    def sample(self):
        out = []
        for image, labels in self._sources():
            ddf = random_displacement(self.config.shape, self.config.max_displacement_voxels, generator=self.generator)
            out.append((_intensity_augment(warp(image, ddf), self.generator),
                        warp(labels.float(), ddf, mode="nearest").long()))
        (moving, moving_labels), (fixed, fixed_labels) = out
        return moving, fixed, moving_labels, fixed_labels


def prepare_training_image(image, labels, spacing_mm: float, margin_voxels: int = 2):
    """(image in [0, 1], integer labels) arrays on the working grid of `image` (RAS-ordered axes, isotropic
    `spacing_mm`), cropped to the labelled region plus a margin. `image`, `labels`: Volumes on one grid."""
    from ..transforms import normalise, resample_to_reference
    from .working_grid import NORMALISATION, working_grid

    work = working_grid(image, spacing_mm)
    lab = resample_to_reference(labels, work, "nearest").array.astype(np.int64)
    img = normalise(work.array, NORMALISATION)
    inside = np.argwhere(lab > 0)
    lo = np.maximum(inside.min(0) - margin_voxels, 0)
    hi = inside.max(0) + margin_voxels + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return img[box], lab[box]


def prepare_training_set(images, labels, spacing_mm: float, report=lambda *a, **k: None):
    """The user's images (and labelmaps, or None) co-aligned for inter-subject pairs: every image is
    affinely registered to the first and resampled on the first one's working grid, cropped to the
    union of the foreground. Returns [(image in [0, 1], integer labels)], all of one shape."""
    from ..transforms import normalise
    from .affine import affine_register
    from .working_grid import NORMALISATION, sample_affine, warp_volume, with_affine, working_grid

    grid = working_grid(images[0], spacing_mm)
    zero_step = np.zeros(grid.array.shape + (3,), np.float32)
    aligned = []
    for n, image in enumerate(images):
        affine = np.eye(4) if n == 0 else affine_register(images[0], image)
        report(None, "preparing", f"image {n + 1}/{len(images)} aligned to the first")
        img = normalise(sample_affine(image.with_array(image.array.astype(np.float32)), grid, affine), NORMALISATION)
        lab = (np.zeros(grid.array.shape, np.int64) if labels is None or labels[n] is None
               else warp_volume(labels[n], with_affine(grid, zero_step, affine), grid, labels=True).astype(np.int64))
        aligned.append((img, lab))
    foreground = np.argwhere(np.any([(img > 0.05) | (lab > 0) for img, lab in aligned], axis=0))
    lo, hi = foreground.min(0), foreground.max(0) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    shape = tuple(int(-(-(b - a) // 16) * 16) for a, b in zip(lo, hi))  # a multiple of the networks' stride
    return [(fit_to_shape(img[box], shape), fit_to_shape(lab[box], shape)) for img, lab in aligned]
