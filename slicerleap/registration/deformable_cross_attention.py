"""Deformable window cross-attention (DW-MCA, TM-DCA paper, MLMI 2023 pp. 115-125): the base stream's
features are split into windows that give keys and values; the queries come from the reference
stream, sampled (trilinearly, per head) at the window positions moved by a learned offset field
computed from both streams. Successive blocks shift the windows by half a window."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import MLPBlock
from monai.networks.nets.swin_unetr import window_partition, window_reverse


def _relative_position_index(window: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(*[torch.arange(window)] * 3, indexing="ij")).flatten(1)  # 3, N
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # N, N, 3 in [0, 2w-2]
    return (rel[..., 0] * (2 * window - 1) + rel[..., 1]) * (2 * window - 1) + rel[..., 2]


def _pads(shape, window: int, shift: int) -> list[tuple[int, int]]:
    """Padding per axis so that windows start `shift` tokens before the volume and tile it."""
    return [(shift, (-(n + shift)) % window) for n in shape]


def _pad(x: torch.Tensor, pads) -> torch.Tensor:
    """x: (B, D, H, W, C) padded with zeros per axis."""
    return F.pad(x, (0, 0, *pads[2], *pads[1], *pads[0]))


class DeformableWindowCrossAttention(nn.Module):
    """One DCA block on channel-first features (B, C, D, H, W): returns the updated base features.

    `offset_range`: the largest query offset, in tokens of this stage (tanh-bounded); the offset
    network's last layer starts at zero, so a new block begins as plain window cross-attention."""

    def __init__(self, dim: int, heads: int, window: int = 4, shift: bool = False, offset_range: float = 2.0,
                 mlp_ratio: float = 2.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"feature width {dim} is not divisible by {heads} heads")
        self.dim, self.heads, self.window = dim, heads, window
        self.shift = window // 2 if shift else 0
        self.offset_range = offset_range
        self.norm_base, self.norm_ref = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.offsets = nn.Sequential(nn.Conv3d(dim, dim, 3, padding=1, groups=dim), nn.GELU(), nn.Conv3d(dim, 3 * heads, 1))
        nn.init.zeros_(self.offsets[-1].weight)
        nn.init.zeros_(self.offsets[-1].bias)
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.position_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 3, heads))
        nn.init.trunc_normal_(self.position_bias, std=0.02)
        self.register_buffer("position_index", _relative_position_index(window), persistent=False)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio), dropout_rate=0.0, act="GELU")

    def _sampled_queries(self, base: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Queries from the reference at p + Δp, one offset field per head. In/out: (B, D, H, W, C)."""
        b, d, h, w, c = ref.shape
        offsets = self.offsets((base + ref).permute(0, 4, 1, 2, 3))  # B, 3*heads, D, H, W (tokens, order d, h, w)
        offsets = self.offset_range * torch.tanh(offsets).reshape(b * self.heads, 3, d, h, w)
        queries = self.query(ref).permute(0, 4, 1, 2, 3).reshape(b * self.heads, c // self.heads, d, h, w)
        axes = [torch.arange(n, device=ref.device, dtype=ref.dtype) for n in (d, h, w)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))[None] + offsets  # positions in tokens
        sizes = torch.tensor([d, h, w], device=ref.device, dtype=ref.dtype).view(1, 3, 1, 1, 1)
        grid = 2.0 * grid / (sizes - 1).clamp(min=1) - 1.0
        grid = grid.permute(0, 2, 3, 4, 1).flip(-1)  # grid_sample wants (x=w, y=h, z=d)
        sampled = F.grid_sample(queries, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return sampled.reshape(b, c, d, h, w).permute(0, 2, 3, 4, 1)

    def forward(self, base_features: torch.Tensor, ref_features: torch.Tensor) -> torch.Tensor:
        x = base_features.permute(0, 2, 3, 4, 1)  # B, D, H, W, C
        base, ref = self.norm_base(x), self.norm_ref(ref_features.permute(0, 2, 3, 4, 1))
        queries = self._sampled_queries(base, ref)
        keys, values = self.key_value(base).chunk(2, dim=-1)
        shape = x.shape[1:4]
        pads = _pads(shape, self.window, self.shift)
        win = (self.window,) * 3
        q, k, v = (window_partition(_pad(t, pads), win) for t in (queries, keys, values))  # B*nW, N, C
        valid = window_partition(_pad(torch.ones((1, *shape, 1), device=x.device, dtype=x.dtype), pads), win)[..., 0] > 0
        n = q.shape[1]
        key_mask = torch.zeros(valid.shape, device=x.device, dtype=x.dtype).masked_fill(~valid, float("-inf"))
        key_mask = key_mask.repeat(x.shape[0], 1)[:, None, None, :]  # padded keys never attended
        bias = self.position_bias[self.position_index.reshape(-1)].reshape(n, n, self.heads).permute(2, 0, 1)[None]
        split = lambda t: t.reshape(t.shape[0], n, self.heads, -1).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=bias + key_mask)
        out = out.transpose(1, 2).reshape(-1, n, self.dim)
        padded = [s + sum(p) for s, p in zip(shape, pads)]
        out = window_reverse(out.reshape(-1, *win, self.dim), win, [x.shape[0], *padded])
        out = out[:, pads[0][0]:pads[0][0] + shape[0], pads[1][0]:pads[1][0] + shape[1], pads[2][0]:pads[2][0] + shape[2]]
        x = x + self.proj(out)
        x = x + self.mlp(self.norm_mlp(x))
        return x.permute(0, 4, 1, 2, 3)

