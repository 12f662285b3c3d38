"""TM-DCA (MLMI 2023 pp. 115-125): two parallel Swin-style encoders whose attention is deformable window
cross-attention — one path takes the moving image as base and the fixed image as reference, the other
the reverse — their per-stage features summed into the skips of a convolutional (TransMorph-style)
decoder that outputs a dense displacement field. CPU-sized defaults (METHODS.md §12 "small version").

Same interface as MONAI's VoxelMorph: forward(moving, fixed) -> (warped moving, ddf), the ddf in voxels
of the input grid, channel i = displacement along spatial axis i."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import DVF2DDF, Convolution, Warp
from monai.networks.nets.basic_unet import UpCat
from monai.networks.nets.swin_unetr import PatchMergingV2

from .deformable_cross_attention import DeformableWindowCrossAttention


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the spatial axes of (B, C, D, H, W) at their far end up to a multiple of `multiple`
    (the networks' total stride); crop the output back to x.shape[2:]."""
    pad = [(-n) % multiple for n in x.shape[2:]]
    return F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]))


class _DualStage(nn.Module):
    """`depth` DCA blocks per path, both paths updated from each other's previous features."""

    def __init__(self, dim: int, depth: int, heads: int, window: int, offset_range: float):
        super().__init__()
        make = lambda i: DeformableWindowCrossAttention(dim, heads, window, shift=bool(i % 2), offset_range=offset_range)  # noqa: E731
        self.moving_base = nn.ModuleList([make(i) for i in range(depth)])
        self.fixed_base = nn.ModuleList([make(i) for i in range(depth)])

    def forward(self, m: torch.Tensor, f: torch.Tensor):
        for on_moving, on_fixed in zip(self.moving_base, self.fixed_base):
            m, f = on_moving(m, f), on_fixed(f, m)
        return m, f


class TMDCA(nn.Module):
    def __init__(self, embed_dim: int = 24, depths: Sequence[int] = (2, 2, 2), heads: Sequence[int] = (2, 4, 8),
                 window: int = 4, patch: int = 4, offset_range: float = 2.0, skip_channels: int = 16,
                 integration_steps: int = 0, half_resolution_field: bool = True):
        super().__init__()
        if len(depths) != len(heads):
            raise ValueError("depths and heads need one entry per stage")
        self.patch, self.stages = patch, len(depths)
        dims = [embed_dim * 2 ** s for s in range(self.stages)]
        self.embed_moving = nn.Conv3d(1, embed_dim, patch, stride=patch)
        self.embed_fixed = nn.Conv3d(1, embed_dim, patch, stride=patch)
        self.encoder = nn.ModuleList([_DualStage(d, n, h, window, offset_range) for d, n, h in zip(dims, depths, heads)])
        self.merge_moving = nn.ModuleList([PatchMergingV2(d) for d in dims[:-1]])
        self.merge_fixed = nn.ModuleList([PatchMergingV2(d) for d in dims[:-1]])
        conv = lambda i, o: Convolution(3, i, o, act=("leakyrelu", {"negative_slope": 0.2}), norm="instance")  # noqa: E731
        # full- and half-resolution convolutional skips from the image pair (TransMorph's c1/c2)
        self.skip_full = None if half_resolution_field and patch == 4 else conv(2, skip_channels)
        self.skip_half = conv(2, 2 * skip_channels)
        ups, width = [], dims[-1]
        for d in reversed(dims[:-1]):
            ups.append(UpCat(3, width, d, d, "leakyrelu", "instance", True, upsample="nontrainable", halves=False))
            width = d
        if patch not in (2, 4):
            raise ValueError("patch must be 2 or 4 (the decoder climbs back with half- and full-resolution skips)")
        # the field is smooth: on CPU, predicting it at half resolution and upsampling it saves the costliest
        # convolutions (full-resolution decoder) at little cost in accuracy
        self.half_resolution_field = half_resolution_field and patch == 4
        cats = [2 * skip_channels, skip_channels] if patch == 4 else [skip_channels]
        cats = cats[:1] if self.half_resolution_field else cats
        for c in cats:
            ups.append(UpCat(3, width, c, c, "leakyrelu", "instance", True, upsample="nontrainable", halves=False))
            width = c
        self.decoder = nn.ModuleList(ups)
        self.flow = nn.Conv3d(width, 3, 3, padding=1)
        nn.init.normal_(self.flow.weight, std=1e-5)  # start near identity, as VoxelMorph does
        nn.init.zeros_(self.flow.bias)
        self.integrate = DVF2DDF(num_steps=integration_steps) if integration_steps > 0 else None
        self.warp = Warp(mode="bilinear", padding_mode="zeros")

    @property
    def size_multiple(self) -> int:
        return self.patch * 2 ** (self.stages - 1)

    def displacement(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        shape = moving.shape[2:]
        m, f = pad_to_multiple(moving, self.size_multiple), pad_to_multiple(fixed, self.size_multiple)
        pair = torch.cat([m, f], 1)
        skips = [] if self.half_resolution_field else [self.skip_full(pair)]
        if self.patch == 4:
            skips.append(self.skip_half(F.avg_pool3d(pair, 2)))
        a, b = self.embed_moving(m), self.embed_fixed(f)
        stage_features = []
        for s, stage in enumerate(self.encoder):
            a, b = stage(a, b)
            stage_features.append(a + b)
            if s < self.stages - 1:
                a = self.merge_moving[s](a.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
                b = self.merge_fixed[s](b.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        x = stage_features[-1]
        cat_features = stage_features[-2::-1] + skips[::-1][: len(self.decoder) - (self.stages - 1)]
        for up, skip in zip(self.decoder, cat_features):
            x = up(x, skip)
        ddf = self.flow(x)
        if self.half_resolution_field:
            ddf = 2.0 * F.interpolate(ddf, scale_factor=2.0, mode="trilinear", align_corners=False)
        ddf = ddf[:, :, : shape[0], : shape[1], : shape[2]]
        return self.integrate(ddf) if self.integrate is not None else ddf

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor):
        ddf = self.displacement(moving, fixed)
        return self.warp(moving, ddf), ddf
