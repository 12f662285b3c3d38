"""SKSNet: "Skip and Skip" segmentation with image-level label prompts (METHODS.md §1).

Two Swin V2 pyramid encoders read the same 2.5D input (a slice and its two neighbours):
- the coarse guidance branch, trained first on slice-level labels ("this slice has a lesion") through a
  classification head;
- the fine student branch, whose features are fused with the coarse ones at every level,
  f_fuse = W·(f_fine ⊕ f_coarse) + b  (feature-share skip, FSS).
A Swin-Unet decoder (patch expanding) receives the fused features as U-Net skips (resolution-compensation
skip, RCS) and the coarse features directly (prompt skip); a full-resolution conv stem joins at the end
(added here, see below). Switches reproduce the paper's ablations.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from monai.networks.blocks import UnetrBasicBlock
from monai.networks.nets.swin_unetr import PatchMergingV2
from torch import nn

from .swin_v2 import PatchExpand, SwinV2Stage


@dataclass
class SKSConfig:
    in_channels: int = 3          # slice k-1, k, k+1
    out_channels: int = 2         # background + lesion (softmax)
    embed_dim: int = 32           # C; level λ has C·2^λ channels
    depths: tuple = (2, 2, 2)     # Swin V2 blocks per level (the paper's "three-layer pyramid")
    num_heads: tuple = (2, 4, 8)
    window: int = 8
    patch: int = 4
    decoder_depth: int = 1        # Swin V2 blocks after each patch-expanding step
    drop_path: float = 0.1
    coarse_branch: bool = True    # False: "w/o coarse-grain branch" (fine branch + decoder = Swin-Unet)
    prompt_skip: bool = True      # False: "w/o prompt skip"
    rcs: bool = True              # False: "w/o RCS"
    conv_norm: str = "instance"   # the full-resolution conv blocks; "batch" when training crops are smaller than
                                  # the slices inferred on (instance statistics of a crop differ from a whole slice's)

    def to_args(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def multiple(self) -> int:
        """Input height/width must be a multiple of this (patch size times the merges)."""
        return self.patch * 2 ** (len(self.depths) - 1)


class SwinV2Pyramid(nn.Module):
    """Patch embedding then Swin V2 stages with patch merging in between; features per level, channels-last."""

    def __init__(self, cfg: SKSConfig):
        super().__init__()
        c = cfg.embed_dim
        self.embed = nn.Conv2d(cfg.in_channels, c, cfg.patch, stride=cfg.patch)
        self.embed_norm = nn.LayerNorm(c)
        self.stages = nn.ModuleList(SwinV2Stage(c * 2**i, d, h, cfg.window, cfg.drop_path)
                                    for i, (d, h) in enumerate(zip(cfg.depths, cfg.num_heads)))
        self.merges = nn.ModuleList(PatchMergingV2(c * 2**i, spatial_dims=2) for i in range(len(cfg.depths) - 1))

    def forward(self, x: torch.Tensor, fuse=None) -> list[torch.Tensor]:
        """`fuse(level, features)` may replace each level's output before merging (the FSS path)."""
        h = self.embed_norm(self.embed(x).permute(0, 2, 3, 1))
        levels = []
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if fuse is not None:
                h = fuse(i, h)
            levels.append(h)
            if i < len(self.merges):
                h = self.merges[i](h)
        return levels


class SliceClassifierHead(nn.Module):
    """Slice-level "contains lesion" logit from the deepest coarse features (the paper leaves the head open)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 1)

    def forward(self, deepest: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(deepest).mean(dim=(1, 2)))[:, 0]


class SKSNet(nn.Module):
    """Forward: (B, 3, H, W) → logits (B, out_channels, H, W); H, W padded internally to `cfg.multiple`."""

    def __init__(self, **kwargs):
        super().__init__()
        self.cfg = cfg = SKSConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
        levels = len(cfg.depths)
        dims = [cfg.embed_dim * 2**i for i in range(levels)]
        self.fine = SwinV2Pyramid(cfg)
        if cfg.coarse_branch:
            self.coarse = SwinV2Pyramid(cfg)
            self.classifier = SliceClassifierHead(dims[-1])
            self.fusers = nn.ModuleList(nn.Linear(2 * d, d) for d in dims)  # W·(f_i ⊕ f_k) + b
        self.expands = nn.ModuleList(PatchExpand(dims[i + 1], dims[i]) for i in range(levels - 1))
        n_skips = int(cfg.rcs) + int(cfg.coarse_branch and cfg.prompt_skip)
        self.skip_merges = nn.ModuleList(nn.Linear((1 + n_skips) * d, d) if n_skips else nn.Identity() for d in dims[:-1])
        self.decoders = nn.ModuleList(SwinV2Stage(d, cfg.decoder_depth, h, cfg.window) for d, h in zip(dims[:-1], cfg.num_heads))
        self.final_expand = PatchExpand(dims[0], dims[0], scale=cfg.patch)
        # full-resolution convolutional skip (as SwinUNETR's encoder0/decoder1): the 4x4 patches alone lose
        # the few-pixel boundaries of small lesions, and without it the network barely fits one batch
        half = max(1, dims[0] // 2)  # thin: it runs at full resolution
        self.stem = UnetrBasicBlock(2, cfg.in_channels, half, 3, 1, cfg.conv_norm, res_block=True)
        self.refine = UnetrBasicBlock(2, dims[0] + half, half, 3, 1, cfg.conv_norm, res_block=True)
        self.head = nn.Conv2d(half, cfg.out_channels, 1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Slice-level lesion logits (B,), the stage-1 objective."""
        x, _ = self._pad(x)
        return self.classifier(self.coarse(x)[-1])

    def forward(self, x: torch.Tensor, return_slice_logits: bool = False):
        x, (h, w) = self._pad(x)
        cfg = self.cfg
        coarse = self.coarse(x) if cfg.coarse_branch else None
        fuse = (lambda i, f: self.fusers[i](torch.cat([f, coarse[i]], dim=-1))) if coarse is not None else None
        fine = self.fine(x, fuse)  # fused features when the coarse branch exists (FSS)
        d = fine[-1]
        for i in reversed(range(len(self.decoders))):
            d = self.expands[i](d)
            skips = ([fine[i]] if cfg.rcs else []) + ([coarse[i]] if coarse is not None and cfg.prompt_skip else [])
            d = self.skip_merges[i](torch.cat([d, *skips], dim=-1)) if skips else d
            d = self.decoders[i](d)
        full = self.final_expand(d).permute(0, 3, 1, 2)
        logits = self.head(self.refine(torch.cat([full, self.stem(x)], dim=1)))[:, :, :h, :w]
        if return_slice_logits:
            return logits, (self.classifier(coarse[-1]) if coarse is not None else None)
        return logits

    def _pad(self, x: torch.Tensor):
        h, w = x.shape[-2:]
        m = self.cfg.multiple
        return F.pad(x, (0, (m - w % m) % m, 0, (m - h % m) % m)), (h, w)
