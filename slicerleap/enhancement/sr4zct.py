"""SR4ZCT: self-supervised through-plane super-resolution of one volume (Shi, Pelt & Batenburg, MLMI 2023).

A 2D network learns, on the volume's own high-resolution axial slices, to undo the *virtual*
through-plane degradation F_up(F_down(.)) applied vertically and (rotated) horizontally; it is then
applied to the linearly upsampled coronal and sagittal slices and the two results are averaged.

CPU default: a small 2D U-Net instead of the paper's 100-layer MS-D net (`network="msd"` keeps the
paper's architecture): width-1 MS-D layers run at a small fraction of CPU throughput (20 layers took
7x longer than a 16-32-64 U-Net on the same slices here), and the budget matters more than the net.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..transforms.intensity import robust_range
from ..volume import Volume, move_axis_first, restore_axis
from .slice_profile import check_thick_slices, degrade, upsample_matrix, upsampled_length


@dataclass
class SR4ZCTConfig:
    thickness_mm: float | None = None  # slice thickness r; None: equal to the spacing (no overlap)
    network: str = "unet"  # "unet" (CPU default) or "msd" (the paper's)
    iterations: int = 400
    time_budget_s: float | None = None  # stop training when this runs out, whatever `iterations` says
    batch_size: int = 8
    crop: int = 96
    learning_rate: float = 1e-3
    points: int = 8  # interpolation points inside each virtual slice (F_down)
    seed: int = 0


class ResidualUNet(torch.nn.Module):
    """MONAI 2D U-Net predicting the detail linear upsampling lost: output = input + head(U-Net(input)),
    with the 1x1 head zero-initialised so training starts from the identity and only adds detail."""

    def __init__(self, features: int = 16):
        super().__init__()
        from monai.networks.nets import UNet

        self.unet = UNet(2, 1, features, (16, 32, 64), (2, 2), num_res_units=1)
        self.head = torch.nn.Conv2d(features, 1, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, x):
        return x + self.head(torch.relu(self.unet(x)))


def build_network(name: str) -> torch.nn.Module:
    if name == "msd":
        from .msd_net import MSDNet

        return MSDNet(depth=30)
    if name == "unet":
        return ResidualUNet()
    raise ValueError(f"unknown SR4ZCT network {name!r}")


def _training_pairs(slices: np.ndarray, pixel_mm: float, thickness: float, spacing: float, points: int):
    """(inputs, targets), both (2Z, H, W) when H == W: vertical pairs, then 90-degree-rotated horizontal pairs."""
    ver = degrade(slices, 1, pixel_mm, thickness, spacing, points)
    hor = degrade(slices, 2, pixel_mm, thickness, spacing, points)
    return [(ver, slices), (np.rot90(hor, 1, axes=(1, 2)), np.rot90(slices, 1, axes=(1, 2)))]


def _pad_to(x: torch.Tensor, multiple: int = 4) -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def train_sr4zct(thick: np.ndarray, pixel_mm: float, spacing_mm: float, config: SR4ZCTConfig, device,
                 report: Callable = lambda *a, **k: None, should_stop: Callable[[], bool] = lambda: False,
                 initial_state: dict | None = None) -> tuple[torch.nn.Module, list[float]]:
    """Train on the axial slices of `thick` (Z, H, W; already intensity-scaled). `should_stop` ends
    training early (the user's "stop and keep the result so far"); `initial_state` resumes from a network
    trained before on the same volume."""
    thickness = config.thickness_mm or spacing_mm
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    pairs = _training_pairs(thick.astype(np.float32), pixel_mm, thickness, spacing_mm, config.points)
    net = build_network(config.network)
    if initial_state is not None:
        net.load_state_dict(initial_state)
    net = net.to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(1, config.iterations))
    started, losses = time.monotonic(), []
    for it in range(config.iterations):
        xs, ys = [], []
        for _ in range(config.batch_size):
            inputs, targets = pairs[int(rng.integers(2))]
            z = int(rng.integers(inputs.shape[0]))
            h, w = inputs.shape[1:]
            ch, cw = min(config.crop, h), min(config.crop, w)
            r0, c0 = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
            xs.append(np.ascontiguousarray(inputs[z, r0:r0 + ch, c0:c0 + cw]))
            ys.append(np.ascontiguousarray(targets[z, r0:r0 + ch, c0:c0 + cw]))
        x = torch.from_numpy(np.stack(xs))[:, None].to(device)
        y = torch.from_numpy(np.stack(ys))[:, None].to(device)
        x, size = _pad_to(x)
        optimiser.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(x)[..., : size[0], : size[1]], y)  # L2, as the paper
        loss.backward()
        optimiser.step()
        scheduler.step()
        losses.append(loss.item())
        if (it + 1) % 10 == 0 or it + 1 == config.iterations:
            report(0.05 + 0.75 * (it + 1) / config.iterations, "training",
                   f"iteration {it + 1}/{config.iterations}: L2 loss {np.mean(losses[-10:]):.3g}", loss=float(np.mean(losses[-10:])))
        if config.time_budget_s and time.monotonic() - started > config.time_budget_s:  # 0/None: no limit
            report(0.8, "training", f"time budget of {config.time_budget_s:g} s reached after {it + 1} iterations")
            break
        if should_stop():
            report(0.8, "training", f"stopped early by the user after {it + 1} iterations; applying the network so far")
            break
    return net.eval(), losses


@torch.inference_mode()
def apply_sr4zct(net: torch.nn.Module, upsampled: np.ndarray, device, batch: int = 8,
                 report: Callable = lambda *a, **k: None) -> np.ndarray:
    """Enhance (Z', Y, X) through coronal (fixed Y) and sagittal (fixed X) slices; average the two."""
    z, ny, nx = upsampled.shape
    volume = torch.from_numpy(np.ascontiguousarray(upsampled, dtype=np.float32))
    coronal = torch.empty_like(volume)
    sagittal = torch.empty_like(volume)
    total, done = ny + nx, 0
    for view, count in (("coronal", ny), ("sagittal", nx)):
        for start in range(0, count, batch):
            stop = min(count, start + batch)
            if view == "coronal":
                x = volume[:, start:stop, :].permute(1, 0, 2)[:, None]  # (b, 1, Z', X): z vertical, as trained
            else:
                x = volume[:, :, start:stop].permute(2, 0, 1)[:, None]  # (b, 1, Z', Y)
            x, size = _pad_to(x.to(device))
            y = net(x)[:, 0, : size[0], : size[1]].float().cpu()
            if view == "coronal":
                coronal[:, start:stop, :] = y.permute(1, 0, 2)
            else:
                sagittal[:, :, start:stop] = y.permute(1, 2, 0)
            done += stop - start
            report(0.8 + 0.18 * done / total, "inference", f"{view} slices {stop}/{count}")
    return ((coronal + sagittal) / 2).numpy()


def thick_axis(volume: Volume) -> int:
    """The voxel axis (0=i, 1=j, 2=k) with the largest spacing: the through-plane direction. On ties
    (e.g. overlapping thick slices whose spacing equals the pixel size) the slice axis k wins."""
    return 2 - int(np.argmax(volume.spacing[::-1]))


def linear_upsample(volume: Volume, thickness_mm: float | None = None) -> tuple[Volume, int]:
    """F_up of the whole volume along its thick axis to the in-plane pixel size (the grid SR4ZCT
    outputs on), plus that axis. Voxel 0 of the output covers the start of the first thick slice."""
    axis = thick_axis(volume)
    moved = move_axis_first(volume, axis)  # thick axis is now k (array axis 0)
    spacing = moved.spacing
    pixel = float(min(spacing[0], spacing[1]))
    d = float(spacing[2])
    r = float(thickness_mm or d)
    n_low = moved.array.shape[0]
    n_high = upsampled_length(n_low, pixel, r, d)
    up = upsample_matrix(n_low, n_high, pixel, r, d).astype(np.float32)
    array = np.tensordot(up, moved.array.astype(np.float32), axes=(1, 0))
    matrix = moved.ijk_to_ras.copy()
    k_dir = moved.ijk_to_ras[:3, 2] / d
    matrix[:3, 2] = k_dir * pixel
    matrix[:3, 3] = moved.ijk_to_ras[:3, 3] + k_dir * (pixel / 2.0 - r / 2.0)
    return Volume(array, matrix, dict(volume.metadata)), axis


def sr4zct_with_network(volume: Volume, config: SR4ZCTConfig, device, report: Callable = lambda *a, **k: None,
                        should_stop: Callable[[], bool] = lambda: False, initial_state: dict | None = None
                        ) -> tuple[Volume, torch.nn.Module, int]:
    """Enhanced volume on the linear-upsampling grid (through-plane spacing = in-plane pixel size),
    in the input's orientation and physical extent; plus the trained network and the iterations run
    (fewer than asked when stopped early or out of time). `initial_state` continues an earlier training."""
    check_thick_slices(volume.spacing, config.thickness_mm, volume.metadata.get("name", "volume"))
    axis = thick_axis(volume)
    moved = move_axis_first(volume, axis)
    pixel = float(min(moved.spacing[:2]))
    low, scale = robust_range(moved.array, moved.array.shape[0] // 32)
    normalised = moved.with_array((moved.array.astype(np.float32) - low) / scale)
    report(0.03, "training", f"training on {normalised.array.shape[0]} axial slices ({config.network})")
    net, losses = train_sr4zct(normalised.array, pixel, float(moved.spacing[2]), config, device, report, should_stop, initial_state)
    upsampled, _ = linear_upsample(normalised, config.thickness_mm)
    enhanced = apply_sr4zct(net, upsampled.array, device, report=report)
    out = upsampled.with_array(enhanced * scale + low)
    return restore_axis(out, axis), net, len(losses)


def sr4zct(volume: Volume, config: SR4ZCTConfig, device, report: Callable = lambda *a, **k: None,
           should_stop: Callable[[], bool] = lambda: False) -> Volume:
    """The enhanced volume only (see sr4zct_with_network)."""
    return sr4zct_with_network(volume, config, device, report, should_stop)[0]
