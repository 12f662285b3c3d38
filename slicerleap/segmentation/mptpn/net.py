"""MPTPN (seed 001, METHODS.md §2): prior prompt encoder (CNN + text + U-shaped ViT), multiscale feature fusion,
two UpAttention blocks. 2D, one text prompt per image, one foreground logit out.

Where the paper is silent (widths, heads, depth, patch size) the defaults are CPU-sized and recorded in the card.
Text enters like LViT's: word vectors pass 4 Conv1d layers to the level-1 width, then a ConvBN1d whose channels
are token positions maps the prompt's L word positions to the N patch positions, so where a word is said can
matter for where a patch is. The ablation switches mirror the paper's Table 3.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from monai.networks.blocks import MLPBlock
from torch import nn


@dataclass
class MPTPNConfig:
    img_size: int = 128
    in_channels: int = 1
    channels: int = 16  # C: the three scales carry C, 2C, 4C
    text_width: int = 384  # the frozen encoder's token width (all-MiniLM-L6-v2)
    text_tokens: int = 32
    patch: int = 16  # level-1 patch; levels 2 and 3 use patch/2 and patch/4 so all levels have N tokens
    heads: int = 4
    down_vit: bool = True
    up_vit: bool = True
    msff: bool = True
    up_attention: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvBN1d(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout), nn.GELU())


class Transformer(nn.Module):
    """One pre-LN block: multi-head self-attention and a GELU MLP, each with a residual."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = MLPBlock(width, 4 * width, act="GELU")

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViTLevel(nn.Module):
    """Patch embedding of one CNN scale, plus the level above (ConvBN1d, concatenated) or the prompt, then a block."""

    def __init__(self, cin: int, width: int, patch: int, tokens: int, heads: int, previous: int | None, attend: bool):
        super().__init__()
        self.embed = nn.Conv2d(cin, width, patch, stride=patch)
        self.position = nn.Parameter(torch.zeros(1, tokens, width))
        self.previous = ConvBN1d(previous, width) if previous else None
        self.merge = nn.Linear(2 * width, width) if previous else None
        self.block = Transformer(width, heads) if attend else nn.Identity()

    def forward(self, image, previous=None, text=None):
        tokens = self.embed(image).flatten(2).transpose(1, 2) + self.position
        if text is not None:
            tokens = tokens + text
        if self.previous is not None:
            tokens = self.merge(torch.cat([tokens, self.previous(previous.transpose(1, 2)).transpose(1, 2)], -1))
        return self.block(tokens)


class UpViTLevel(nn.Module):
    def __init__(self, width: int, heads: int, deeper: int | None, attend: bool):
        super().__init__()
        self.deeper = ConvBN1d(deeper, width) if deeper else None
        self.block = Transformer(width, heads) if attend else nn.Identity()

    def forward(self, tokens, deeper=None):
        if self.deeper is not None:
            tokens = tokens + self.deeper(deeper.transpose(1, 2)).transpose(1, 2)
        return self.block(tokens)


class PatchMerging(nn.Module):
    """Swin's: 2x2 neighbours concatenated (4C), LayerNorm, linear to 2C — half the size."""

    def __init__(self, cin: int):
        super().__init__()
        self.norm, self.reduce = nn.LayerNorm(4 * cin), nn.Linear(4 * cin, 2 * cin, bias=False)

    def forward(self, x):  # B C H W
        x = F.pixel_unshuffle(x, 2).permute(0, 2, 3, 1)
        return self.reduce(self.norm(x)).permute(0, 3, 1, 2)


class PatchExpanding(nn.Module):
    """Swin-Unet's inverse: C -> 2x2 x C/4 rearranged, LayerNorm, linear to C/2 — twice the size."""

    def __init__(self, cin: int):
        super().__init__()
        self.norm, self.expand = nn.LayerNorm(cin // 4), nn.Linear(cin // 4, cin // 2, bias=False)

    def forward(self, x):
        x = F.pixel_shuffle(x, 2).permute(0, 2, 3, 1)
        return self.expand(self.norm(x)).permute(0, 3, 1, 2)


def _resample(module_factory, steps: int, cin: int, grow: bool) -> nn.Sequential:
    layers, c = [], cin
    for _ in range(steps):
        layers.append(module_factory(c))
        c = 2 * c if grow else c // 2
    return nn.Sequential(*layers)


class MSFF(nn.Module):
    """Every scale mapped to every scale (merging down, expanding up) and same-size results concatenated:
    (C, 2C, 4C) -> (3C, 6C, 12C)."""

    def __init__(self, c: int):
        super().__init__()
        widths = (c, 2 * c, 4 * c)
        self.paths = nn.ModuleList(nn.ModuleList(
            _resample(PatchMerging, target - source, widths[source], True) if target > source else
            _resample(PatchExpanding, source - target, widths[source], False) for source in range(3))
            for target in range(3))

    def forward(self, features):
        return [torch.cat([path(f) for path, f in zip(paths, features)], 1) for paths in self.paths]


class UpAttention(nn.Module):
    """CBAM-like merge of a deeper tensor into a shallower one: the deeper one upsampled; GAP+GMP of both give a
    channel weighting (linear + ReLU) of the shallower one; concatenation; ConvBN. Off (ablation): no weighting."""

    def __init__(self, deep: int, skip: int, attend: bool):
        super().__init__()
        self.weights = nn.Sequential(nn.Linear(deep + skip, skip), nn.ReLU()) if attend else None
        self.fuse = conv_bn(deep + skip, skip)

    def forward(self, deep, skip):
        deep = F.interpolate(deep, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        if self.weights is not None:
            pooled = lambda t: (F.adaptive_avg_pool2d(t, 1) + F.adaptive_max_pool2d(t, 1)).flatten(1)  # noqa: E731 (amax's backward is slow)
            skip = skip * self.weights(torch.cat([pooled(skip), pooled(deep)], 1))[..., None, None]
        return self.fuse(torch.cat([skip, deep], 1))


class MPTPN(nn.Module):
    def __init__(self, config: MPTPNConfig | None = None):
        super().__init__()
        cfg = self.config = config or MPTPNConfig()
        if cfg.img_size % (4 * cfg.patch) or cfg.patch % 4 or cfg.channels % 4:
            raise ValueError("MPTPN needs img_size divisible by 4 x patch, patch by 4 and channels by 4")
        c, n = cfg.channels, (cfg.img_size // cfg.patch) ** 2
        self.x1 = conv_bn(cfg.in_channels, c)
        self.x2 = nn.Sequential(nn.MaxPool2d(2), conv_bn(c, 2 * c))
        self.x3 = nn.Sequential(nn.MaxPool2d(2), conv_bn(2 * c, 4 * c))
        text_widths = (cfg.text_width, 256, 128, 64, c)
        self.text = nn.Sequential(*(nn.Sequential(nn.Conv1d(a, b, 3, padding=1), nn.GELU())
                                    for a, b in zip(text_widths[:-1], text_widths[1:])))
        self.text_to_patches = ConvBN1d(cfg.text_tokens, n)
        self.down = nn.ModuleList([ViTLevel(c, c, cfg.patch, n, cfg.heads, None, cfg.down_vit),
                                   ViTLevel(2 * c, 2 * c, cfg.patch // 2, n, cfg.heads, c, cfg.down_vit),
                                   ViTLevel(4 * c, 4 * c, cfg.patch // 4, n, cfg.heads, 2 * c, cfg.down_vit)])
        self.up = nn.ModuleList([UpViTLevel(c, cfg.heads, 2 * c, cfg.up_vit),
                                 UpViTLevel(2 * c, cfg.heads, 4 * c, cfg.up_vit),
                                 UpViTLevel(4 * c, cfg.heads, None, cfg.up_vit)])
        self.reconstruct = nn.ModuleList([conv_bn(w, w) for w in (c, 2 * c, 4 * c)])
        self.msff = MSFF(c) if cfg.msff else None
        widths = (3 * c, 6 * c, 12 * c) if cfg.msff else (c, 2 * c, 4 * c)
        self.up_attention = nn.ModuleList([UpAttention(widths[2], widths[1], cfg.up_attention),
                                           UpAttention(widths[1], widths[0], cfg.up_attention)])
        self.head = nn.Conv2d(widths[0], 1, 1)

    def prior(self, image: torch.Tensor, words: torch.Tensor) -> list[torch.Tensor]:
        """The prior prompt encoder (PPE): the three single-scale fused features (C, 2C, 4C channels at S, S/2, S/4)."""
        features = [self.x1(image)]
        features += [self.x2(features[0])]
        features += [self.x3(features[1])]
        text = self.text_to_patches(self.text(words.transpose(1, 2)).transpose(1, 2))  # B N C
        tokens, previous = [], None
        for level, (vit, f) in enumerate(zip(self.down, features)):
            previous = vit(f, previous, text if level == 0 else None)
            tokens.append(previous)
        deeper = None
        for level in (2, 1, 0):
            deeper = tokens[level] = self.up[level](tokens[level], deeper)
        side = self.config.img_size // self.config.patch
        fused = []
        for f, t, conv in zip(features, tokens, self.reconstruct):
            grid = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], side, side)
            fused.append(conv(F.interpolate(grid, size=f.shape[-2:], mode="bilinear", align_corners=False)) + f)
        return fused

    def forward(self, image: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """image (B, in_channels, S, S), words (B, text_tokens, text_width) -> logits (B, 1, S, S)."""
        fused = self.prior(image, words)
        if self.msff is not None:
            fused = self.msff(fused)
        out = self.up_attention[0](fused[2], fused[1])
        return self.head(self.up_attention[1](out, fused[0]))


class ImageOnly(nn.Module):
    """The prompt-free baseline behind MPTPN's call signature: a network of the image alone, the words ignored."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(image)


def mptpn_from_card_args(**args) -> MPTPN:
    """The network a model card's "architecture" args describe (models/architectures.py)."""
    return MPTPN(MPTPNConfig(**args))


def mptpn_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-12) -> torch.Tensor:
    """The paper's 0.5 WBCE + 0.5 WDice (Eqs. 9-11, w1 = w2 = 0.5, smooth 1e-12). WBCE is class-balanced: the mean
    BCE over the batch's lesion pixels and the mean over its background pixels, weighted 0.5 each — what lets
    small lesions pull against a sea of background. WDice is the per-image soft Dice with squared terms (LViT's),
    the 0.5 weights cancelling inside it."""
    from monai.losses import DiceLoss

    from ..balanced_loss import class_balanced_mean

    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    wbce = class_balanced_mean(bce, (target > 0.5).long(), 2, smooth)
    wdice = DiceLoss(sigmoid=True, squared_pred=True, smooth_nr=smooth, smooth_dr=smooth)(logits, target)
    return 0.5 * wbce + 0.5 * wdice
