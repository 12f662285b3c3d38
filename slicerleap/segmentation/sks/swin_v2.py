"""2D Swin Transformer V2 stages (Liu et al., CVPR 2022) on channels-last feature maps (B, H, W, C).

MONAI's `SwinTransformer(use_v2=True)` is SwinUNETR-V2 (extra conv blocks), not Swin V2; the SKS paper
uses Swin V2, so its three changes are written here: scaled cosine attention with a learnt temperature,
a log-spaced continuous relative position bias (an MLP, so any window size works), and res-post-norm.
Window partitioning, shift masks, patch merging and the MLP come from MONAI."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from monai.networks.blocks import MLPBlock
from monai.networks.layers import DropPath
from monai.networks.nets.swin_unetr import compute_mask, get_window_size, window_partition, window_reverse
from torch import nn


class CosineWindowAttention(nn.Module):
    """Multi-head self-attention inside one window: cos(q, k) / tau + B(Δ), B from an MLP on log-spaced offsets."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 256), nn.ReLU(inplace=True), nn.Linear(256, num_heads, bias=False))

    def relative_bias(self, window: tuple[int, int], device) -> torch.Tensor:
        """(heads, N, N) bias for a window of `window` tokens; 16·sigmoid keeps it bounded as in the paper."""
        h, w = window
        # the MLP runs on the (2h-1)(2w-1) distinct offsets, then is gathered to token pairs
        dy, dx = torch.meshgrid(torch.arange(1 - h, h, device=device), torch.arange(1 - w, w, device=device), indexing="ij")
        table = torch.stack([dy, dx], -1).reshape(-1, 2).float() / torch.tensor([max(h - 1, 1), max(w - 1, 1)], device=device) * 8
        table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)
        coords = torch.stack(torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :]  # (2, N, N)
        index = (rel[0] + h - 1) * (2 * w - 1) + rel[1] + w - 1
        return 16 * torch.sigmoid(self.cpb_mlp(table))[index].permute(2, 0, 1)

    def forward(self, x: torch.Tensor, window: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        scale = torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * scale
        attn = attn + self.relative_bias(window, x.device)[None]
        if mask is not None:  # shifted windows: tokens from different image regions do not attend
            nw = mask.shape[0]
            attn = attn.view(b // nw, nw, self.num_heads, n, n) + mask[None, :, None].to(attn.dtype)
            attn = attn.view(-1, self.num_heads, n, n)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class SwinV2Block(nn.Module):
    """(Shifted) window attention + MLP, each followed by LayerNorm before the residual add (res-post-norm)."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: bool, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.window, self.shift = (window, window), (window // 2, window // 2) if shift else (0, 0)
        self.attn = CosineWindowAttention(dim, num_heads)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio), dropout_rate=0.0, act="GELU", dropout_mode="swin")
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.norm1(self._attend(x)))
        return x + self.drop_path(self.norm2(self.mlp(x)))

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        window, shift = get_window_size((h, w), self.window, self.shift)
        pad_h, pad_w = (window[0] - h % window[0]) % window[0], (window[1] - w % window[1]) % window[1]
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        shifted = any(s > 0 for s in shift)
        if shifted:
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        mask = compute_mask((hp, wp), window, shift, x.device) if shifted else None
        out = self.attn(window_partition(x, window), window, mask)
        x = window_reverse(out.view(-1, *window, c), window, [b, hp, wp])
        if shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :h, :w].contiguous()


class SwinV2Stage(nn.Sequential):
    """`depth` blocks alternating regular and shifted windows."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, drop_path: float = 0.0):
        super().__init__(*[SwinV2Block(dim, num_heads, window, shift=i % 2 == 1, drop_path=drop_path) for i in range(depth)])


class PatchExpand(nn.Module):
    """Swin-Unet's patch expanding: a linear layer then a pixel shuffle, `scale`x up and `dim`→`out_dim` channels."""

    def __init__(self, dim: int, out_dim: int, scale: int = 2):
        super().__init__()
        self.scale = scale
        self.expand = nn.Linear(dim, out_dim * scale * scale, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        s = self.scale
        x = self.expand(x).view(b, h, w, s, s, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, -1)
        return self.norm(x)
