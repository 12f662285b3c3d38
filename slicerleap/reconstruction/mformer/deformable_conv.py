"""MFormer's dynamic deformable convolution: a modulated deformable convolution (DCNv2: each kernel tap reads the input
at its place plus a predicted offset, scaled by a predicted modulation in [0, 1]) whose kernel is, per sample, a mix of
K = 4 kernels, sum_k pi_k w_k, with pi from a dynamic weight predictor (global average pooling -> linear + ReLU ->
linear -> softmax). The sampling is bilinear through `grid_sample` (zero outside the image), as torchvision's
deform_conv2d does (torchvision does not install beside the pinned torch here)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def deformable_sample(x: torch.Tensor, offsets: torch.Tensor, kernel_size: int, padding: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C * k * k, H, W): for each output pixel p and kernel tap t, x bilinearly at p + t + offset.
    `offsets` (B, 2 * k * k, H, W): (dy, dx) per tap, in pixels; stride 1, dilation 1."""
    b, c, h, w = x.shape
    k = kernel_size
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype, device=x.device), torch.arange(w, dtype=x.dtype, device=x.device), indexing="ij")
    taps = torch.stack(torch.meshgrid(torch.arange(k, dtype=x.dtype, device=x.device), torch.arange(k, dtype=x.dtype, device=x.device),
                                      indexing="ij"), -1).reshape(k * k, 2) - padding  # (k*k, 2): (ty, tx)
    offsets = offsets.reshape(b, k * k, 2, h, w)
    y = ys[None, None] + taps[None, :, 0, None, None] + offsets[:, :, 0]  # (B, k*k, H, W)
    xx = xs[None, None] + taps[None, :, 1, None, None] + offsets[:, :, 1]
    grid = torch.stack([2 * xx / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], -1)  # grid_sample wants (x, y) in [-1, 1]
    sampled = F.grid_sample(x, grid.reshape(b, k * k * h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=True)
    return sampled.reshape(b, c, k * k, h, w).reshape(b, c * k * k, h, w)  # channel-major, taps inner: as conv weights


class DynamicWeightPredictor(nn.Module):
    """pi (B, K): GAP -> linear + ReLU -> linear -> softmax."""

    def __init__(self, channels: int, kernels: int = 4, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(4, channels // 4)
        self.net = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, kernels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x.mean((2, 3))), dim=1)


class DynamicDeformableConv2d(nn.Module):
    """The DST module's alignment convolution. forward(x, guide): offsets and modulation are predicted from the
    concatenation of x and `guide` (MFormer: the target slice's and a neighbour's features), the kernel mix from x."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, kernels: int = 4, guide_channels: int | None = None):
        super().__init__()
        self.k, self.padding, self.kernels = kernel_size, kernel_size // 2, kernels
        self.weight = nn.Parameter(torch.empty(kernels, out_channels, in_channels * kernel_size ** 2))
        self.bias = nn.Parameter(torch.zeros(kernels, out_channels))
        for n in range(kernels):
            nn.init.kaiming_uniform_(self.weight[n], a=math.sqrt(5))
        guide = in_channels + (guide_channels if guide_channels is not None else in_channels)
        self.offset = nn.Conv2d(guide, 3 * kernel_size ** 2, kernel_size, padding=self.padding)
        nn.init.zeros_(self.offset.weight)  # DCNv2's start: no offset, modulation 0.5 everywhere
        nn.init.zeros_(self.offset.bias)
        self.mix = DynamicWeightPredictor(in_channels, kernels)

    def forward(self, x: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        taps = self.k ** 2
        predicted = self.offset(torch.cat([x, x if guide is None else guide], 1))
        offsets, modulation = predicted[:, :2 * taps], torch.sigmoid(predicted[:, 2 * taps:])
        columns = deformable_sample(x, offsets, self.k, self.padding)  # (B, C*k*k, H, W)
        b, _, h, w = columns.shape
        columns = (columns.reshape(b, -1, taps, h, w) * modulation[:, None]).reshape(b, -1, h, w)
        pi = self.mix(x)  # (B, K)
        weight = torch.einsum("bk,koi->boi", pi, self.weight)
        bias = pi @ self.bias
        return torch.einsum("boi,bihw->bohw", weight, columns) + bias[:, :, None, None]
