"""Dual-modal deep image prior (dmDIP; Bi, Yang, ... MLMI 2023, "Robust Unsupervised Super-Resolution of
Infant MRI via Dual-Modal Deep Image Prior"): per-scan, no training set.

A shared trunk f1 maps fixed random noise z to features; one head per contrast (f2: T1w, f3: T2w) maps
them to high-resolution images. The loss compares each output, degraded by k-space truncation d(.),
with the acquired low-resolution image: sum_m ||x_m - d(f_m(f1(z)))||^2. After optimisation the
central k-space of each output is replaced by the acquired one (k-space replacement, KR), so the
result never contradicts the measured data. Single-modal use keeps one head (plain DIP + KR).

Adaptation to thick-slice volumes: the paper works on 2D in-plane k-space; here the degradation is
1D along the thick (through-plane) axis of coronal slices, and a slab of neighbouring coronal slices
is optimised together (one network per slab) so a CPU finishes a volume in minutes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import BadInputError
from ..transforms.intensity import robust_range
from ..volume import Volume, move_axis_first, restore_axis
from .slice_profile import DEGRADATIONS, check_thick_slices, downsample_matrix

PRIOR_INPUTS = ("upsampled", "noise")


@dataclass
class DMDIPConfig:
    iterations: int = 300  # per slab (the paper: 7000 per slice on a GPU; KR makes early stopping safe)
    learning_rate: float = 0.01  # Adam, as the paper
    channels: int = 32
    noise_channels: int = 8
    slab: int = 16  # coronal slices optimised together
    time_budget_s: float | None = None  # for the whole volume, split evenly over the slabs
    seed: int = 0
    thickness_mm: float | None = None  # slice thickness r; None: equal to the spacing (no overlap)
    # "slice-profile": thick slices are box averages (2D multi-slice acquisitions, SR4ZCT's model);
    # "kspace": the paper's central-k-space truncation (3D acquisitions with low through-plane resolution)
    degradation: str = "slice-profile"
    # "upsampled": the prior's input is the cubic upsampling of every contrast (plus DIP noise) and each head
    # adds a residual, so a CPU budget starts from cubic quality; "noise": the paper's pure-noise input
    prior_input: str = "upsampled"
    # weight of a total-variation term on each data-consistent output (k-space replacement inside the gradient
    # path, TV as in DIP-TV, Liu et al. 2019; not in the dmDIP paper): the data term does not constrain the
    # frequencies the acquisition lost, so without it they stay as cubic left them and KR brings back Gibbs
    # ringing. On MNI slabs it lifted dmDIP from below cubic SSIM under k-space truncation to above it
    # (benchmarks/RESULTS.md); 0.1 was worse than 0.5 there. 0 gives the paper's objective.
    tv_weight: float = 0.5


def _shifted_spectrum(x: torch.Tensor, shift: float) -> torch.Tensor:
    """FFT along the last axis, centred, with a sub-pixel shift (in samples) applied as a phase ramp."""
    n = x.shape[-1]
    spectrum = torch.fft.fft(x, dim=-1, norm="ortho")
    freqs = torch.fft.fftfreq(n, device=x.device)
    spectrum = spectrum * torch.exp(2j * math.pi * freqs * shift)
    return torch.fft.fftshift(spectrum, dim=-1)


def _centre(n_high: int, n_low: int) -> slice:
    start = n_high // 2 - n_low // 2
    return slice(start, start + n_low)


def kspace_truncate(x: torch.Tensor, n_low: int) -> torch.Tensor:
    """d(.): keep the central n_low k-space samples along the last axis. The output sample j sits at
    the centre of high-resolution pixels [j f, (j + 1) f) (f = n_high / n_low), as a thick slice does.
    For even n_low the unpaired Nyquist bin is dropped so the result is exactly real."""
    n_high = x.shape[-1]
    factor = n_high / n_low
    spectrum = _shifted_spectrum(x, (factor - 1) / 2.0)[..., _centre(n_high, n_low)]
    if n_low % 2 == 0:
        spectrum = torch.cat([torch.zeros_like(spectrum[..., :1]), spectrum[..., 1:]], dim=-1)
    low = torch.fft.ifft(torch.fft.ifftshift(spectrum, dim=-1), dim=-1, norm="ortho")
    return low.real * math.sqrt(n_low / n_high)


def kspace_replace(x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """KR: the high-resolution output with its central k-space replaced by the acquired low-resolution data."""
    n_high, n_low = x.shape[-1], low.shape[-1]
    shift = (n_high / n_low - 1) / 2.0
    spectrum = _shifted_spectrum(x, shift)
    acquired = torch.fft.fftshift(torch.fft.fft(low.to(spectrum.real.dtype), dim=-1, norm="ortho"), dim=-1)
    window = _centre(n_high, n_low)
    skip = 1 if n_low % 2 == 0 else 0  # the unpaired Nyquist bin stays the network's (see kspace_truncate)
    spectrum[..., window.start + skip:window.stop] = acquired[..., skip:] * math.sqrt(n_high / n_low)
    spectrum = torch.fft.ifftshift(spectrum, dim=-1)
    freqs = torch.fft.fftfreq(n_high, device=x.device)
    return torch.fft.ifft(spectrum * torch.exp(-2j * math.pi * freqs * shift), dim=-1, norm="ortho").real


class SliceProfile:
    """Thick-slice acquisition along the last axis: the SR4ZCT box slice profile F_down (thickness r every
    d mm) as a matrix A. `consistent` is the exact analogue of k-space replacement for this model: the
    smallest change to x with A x = y (x + A^T (A A^T)^-1 (y - A x)), so the output never contradicts the
    measured slices."""

    def __init__(self, n_high: int, pixel_mm: float, thickness_mm: float, spacing_mm: float, device, n_low: int | None = None):
        a = downsample_matrix(n_high, pixel_mm, thickness_mm, spacing_mm, n_low=n_low)
        self.a = torch.from_numpy(a.astype(np.float32)).to(device)
        self.correction = torch.from_numpy((a.T @ np.linalg.pinv(a @ a.T)).astype(np.float32)).to(device)

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.a.T

    def consistent(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return x + (low - self.degrade(x)) @ self.correction.T


class KSpaceTruncation:
    """The dmDIP paper's degradation d(.) (central k-space kept) and its k-space replacement."""

    def __init__(self, n_low: int):
        self.n_low = n_low

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        return kspace_truncate(x, self.n_low)

    def consistent(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return kspace_replace(x, low)


class DualModalDIP(nn.Module):
    """Shared trunk f1 and one head per contrast: MONAI BasicUNets as DIP skip networks. Upsampling is
    bilinear, as in DIP's skip network: transposed convolutions put checkerboard energy into the
    frequencies k-space truncation does not see, which wrecked the output (mean squared error 50-100x
    that of cubic interpolation on MNI slices, against 0.6x with bilinear upsampling).

    `residual`: each head adds to a starting image (the cubic upsampling of its contrast, which is also
    part of the input), its last layer zero-initialised so optimisation starts from cubic interpolation."""

    def __init__(self, modalities: int, channels: int = 32, input_channels: int = 8, residual: bool = False):
        super().__init__()
        from monai.networks.nets import BasicUNet

        c = channels
        kw = dict(act=("LeakyReLU", {"negative_slope": 0.1, "inplace": True}), norm="instance", upsample="nontrainable")
        self.trunk = BasicUNet(2, input_channels, c, (c // 2, c // 2, c, c, c, c // 2), **kw)
        self.heads = nn.ModuleList(BasicUNet(2, c, 1, (c // 2, c, c, c, 2 * c, c // 2), **kw) for _ in range(modalities))
        self.residual = residual
        if residual:
            for head in self.heads:
                nn.init.zeros_(head.final_conv.weight)
                nn.init.zeros_(head.final_conv.bias)

    def forward(self, z: torch.Tensor, starts: torch.Tensor | None = None) -> list[torch.Tensor]:
        features = self.trunk(z)
        outputs = [head(features) for head in self.heads]
        if self.residual:
            outputs = [o + starts[:, m:m + 1] for m, o in enumerate(outputs)]
        return outputs


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean isotropic TV over the last two axes (a coronal slice: in-plane x through-plane, both at the
    in-plane pixel size), smoothed at 1e-2 so its gradient exists at flat regions."""
    dw = x[..., 1:, :-1] - x[..., :-1, :-1]
    dk = x[..., :-1, 1:] - x[..., :-1, :-1]
    return torch.sqrt(dw ** 2 + dk ** 2 + 1e-4).mean()


def _pad16(n: int) -> int:
    return -(-n // 16) * 16  # BasicUNet halves the size four times


def dmdip_slab(lows: list[np.ndarray], n_high: int, config: DMDIPConfig, device, operator,
               starts: list[np.ndarray] | None = None, report=lambda *a, **k: None,
               should_stop: Callable[[], bool] = lambda: False, budget_s: float | None = None) -> list[np.ndarray]:
    """lows: per contrast, (B, W, n_low) slabs with the thick axis last; starts: per contrast, (B, W, n_high)
    cubic upsamplings (the prior's input when config.prior_input == "upsampled"). Returns (B, W, n_high)
    per contrast, made consistent with the measured slices by `operator`."""
    generator = torch.Generator().manual_seed(config.seed)
    b, w, n_low = lows[0].shape
    hh, ww = _pad16(w), _pad16(n_high)
    noise = torch.rand((b, config.noise_channels, hh, ww), generator=generator) * 0.1  # fixed input, U(0, 0.1) as DIP
    upsampled = config.prior_input == "upsampled"
    start = None
    if upsampled:  # replicate-padded to the network's size; the noise channels keep DIP's random input
        start = torch.from_numpy(np.stack(starts, axis=1).astype(np.float32))
        start = nn.functional.pad(start, (0, ww - n_high, 0, hh - w), mode="replicate")
        z = torch.cat([start, noise], dim=1)
        start = start.to(device)
    else:
        z = noise
    net = DualModalDIP(len(lows), config.channels, z.shape[1], residual=upsampled).to(device)
    z = z.to(device)
    targets = [torch.from_numpy(np.ascontiguousarray(low, dtype=np.float32)).to(device) for low in lows]
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    started = time.monotonic()
    for it in range(config.iterations):
        optimiser.zero_grad(set_to_none=True)
        outputs = [o[:, 0, :w, :n_high] for o in net(z, start)]
        loss = sum(torch.mean((operator.degrade(o) - t) ** 2) for o, t in zip(outputs, targets))
        if config.tv_weight:
            loss = loss + config.tv_weight * sum(total_variation(operator.consistent(o, t)) for o, t in zip(outputs, targets))
        loss.backward()
        optimiser.step()
        if (it + 1) % 25 == 0:
            report(None, "optimisation", f"iteration {it + 1}/{config.iterations}: loss {loss.item():.3g}", loss=loss.item())
        if should_stop() or (budget_s and time.monotonic() - started > budget_s):
            break
    with torch.no_grad():
        outputs = [o[:, 0, :w, :n_high] for o in net(z, start)]
        return [operator.consistent(o, t).cpu().numpy() for o, t in zip(outputs, targets)]


@dataclass
class ThickSliceProblem:
    """One or more co-registered thick-slice volumes with the thick axis first, scaled to about [0, 1], and
    what restoring them needs: the high-resolution grid (SR4ZCT's: voxel 0 covers the start of the first thick
    slice), the degradation operator along the thick axis and, when asked, the cubic upsampling of each."""
    axis: int
    thick_matrix: np.ndarray  # ijk_to_ras of the inputs with the thick axis first
    grid: Volume
    operator: object
    scaled: list
    scales: list
    starts: list

    def restored(self, outputs: list[np.ndarray]) -> list[Volume]:
        """Scaled (n_high, J, I) arrays back to volumes in the input's intensities and orientation."""
        return [restore_axis(self.grid.with_array(out * scale + low), self.axis) for out, (low, scale) in zip(outputs, self.scales)]


def thick_slice_problem(volumes: list[Volume], thickness_mm: float | None, degradation: str, device,
                        cubic_starts: bool) -> ThickSliceProblem:
    from ..transforms import resample_to_reference
    from .sr4zct import linear_upsample, thick_axis

    if degradation not in DEGRADATIONS:
        raise BadInputError(f"Unknown degradation model '{degradation}'.", f"Use one of: {', '.join(DEGRADATIONS)}.")
    first = volumes[0]
    check_thick_slices(first.spacing, thickness_mm, first.metadata.get("name", "volume"))
    axis = thick_axis(first)
    moved = [move_axis_first(v, axis) for v in volumes]
    grid, _ = linear_upsample(moved[0], thickness_mm)
    n_high, n_low = grid.array.shape[0], moved[0].array.shape[0]
    pixel, spacing = float(min(moved[0].spacing[:2])), float(moved[0].spacing[2])
    if degradation == "kspace":
        operator = KSpaceTruncation(n_low)
    else:
        operator = SliceProfile(n_high, pixel, thickness_mm or spacing, spacing, device, n_low)
    scaled, scales, starts = [], [], []
    for v in moved:
        scales.append(robust_range(v.array, v.array.shape[0] // 16))
        scaled.append((v.array.astype(np.float32) - scales[-1][0]) / scales[-1][1])
        if cubic_starts:
            starts.append(resample_to_reference(v.with_array(scaled[-1]), grid, "bspline", extrapolate=True).array)
    return ThickSliceProblem(axis, moved[0].ijk_to_ras, grid, operator, scaled, scales, starts)


def dmdip(volumes: list[Volume], config: DMDIPConfig, device, report=lambda *a, **k: None,
          should_stop: Callable[[], bool] = lambda: False) -> list[Volume]:
    """Super-resolve one or two co-registered thick-slice volumes (same grid) to the in-plane pixel
    size along the thick axis. Returns one Volume per input, on the same high-resolution grid
    (SR4ZCT's: voxel 0 covers the start of the first thick slice)."""
    from .sr4zct import linear_upsample

    if config.prior_input not in PRIOR_INPUTS:
        raise BadInputError(f"Unknown dmDIP prior input '{config.prior_input}'.", f"Use one of: {', '.join(PRIOR_INPUTS)}.")
    problem = thick_slice_problem(volumes, config.thickness_mm, config.degradation, device, config.prior_input == "upsampled")
    grid, operator, scaled, starts = problem.grid, problem.operator, problem.scaled, problem.starts
    n_high = grid.array.shape[0]
    j, i = scaled[0].shape[1:]
    outputs = [np.zeros((n_high, j, i), np.float32) for _ in volumes]
    slabs = list(range(0, j, config.slab))
    budget = config.time_budget_s / len(slabs) if config.time_budget_s else None
    torch.manual_seed(config.seed)
    for n, begin in enumerate(slabs):
        stop = min(j, begin + config.slab)
        lows = [a[:, begin:stop, :].transpose(1, 2, 0) for a in scaled]  # (B=coronal slices, W=i, n_low=k)
        slab_starts = [s[:, begin:stop, :].transpose(1, 2, 0) for s in starts] or None
        highs = dmdip_slab(lows, n_high, config, device, operator, slab_starts, report, should_stop, budget)
        for out, high in zip(outputs, highs):
            out[:, begin:stop, :] = high.transpose(2, 0, 1)
        report(0.05 + 0.9 * (n + 1) / len(slabs), "optimisation", f"coronal slab {n + 1}/{len(slabs)} done")
        if should_stop():
            report(None, "optimisation", "stopped early by the user: remaining slabs use linear upsampling")
            if stop < j:
                for out, a in zip(outputs, scaled):
                    out[:, stop:, :] = linear_upsample(Volume(a[:, stop:, :], problem.thick_matrix), config.thickness_mm)[0].array
            break
    return problem.restored(outputs)
