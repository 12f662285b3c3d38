"""The teacher annotator and the student segmentor of the mixed-supervision teacher–student method
(METHODS.md §3): one 2D U-Net (MONAI BasicUNet blocks, 4 shortcut scales + bottleneck) and
- the teacher's hierarchical organ-to-lesion (O2L) residual attention on every encoder shortcut,
  conditioned on the organ and lesion box maps (eq. 1–2);
- the student's localisation branch: decoder features of every scale brought to full resolution by
  sub-pixel convolution (pixel shuffle), concatenated, and classified into the box-derived
  background / organ / lesion map; used in training only, dropped from the saved inference model.

Input of both: (B, C, H, W) with C = image slices (slice ± context), and for the teacher 2 more channels:
the organ box (union of organ and lesion boxes) and the lesion box, 0/1. H, W multiples of 16."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets.basic_unet import Down, TwoConv, UpCat
from torch import nn

BOX_CONDITIONING = ("o2l", "o2l-no-shortcut", "multichannel", "none")
_ACT, _NORM = ("LeakyReLU", {"negative_slope": 0.1, "inplace": True}), ("batch", {})  # instance norm fails on empty slices


class O2LAttention(nn.Module):
    """f_og = f + σ(BN(conv_og(b_og))) ⊙ f;  f_out = f_og + σ(BN(conv_out(b_le))) ⊙ f_og.
    Boxes are bilinearly resampled to the feature map's size. `shortcut=False` drops the identity terms."""

    def __init__(self, channels: int, shortcut: bool = True):
        super().__init__()
        self.organ = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels))
        self.lesion = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels))
        self.shortcut = shortcut

    def forward(self, f: torch.Tensor, organ_box: torch.Tensor, lesion_box: torch.Tensor) -> torch.Tensor:
        size = f.shape[-2:]
        if organ_box.shape[-2:] != size:  # antialiased bilinear: a box's area survives downsampling
            organ_box = F.interpolate(organ_box, size=size, mode="bilinear", antialias=True, align_corners=False)
            lesion_box = F.interpolate(lesion_box, size=size, mode="bilinear", antialias=True, align_corners=False)
        w = torch.sigmoid(self.organ(organ_box)) * f
        f_og = f + w if self.shortcut else w
        w = torch.sigmoid(self.lesion(lesion_box)) * f_og
        return f_og + w if self.shortcut else w


class BoxUNet(nn.Module):
    """2D U-Net; `box_conditioning` makes it the teacher ("o2l" = the paper's, "o2l-no-shortcut",
    "multichannel" = boxes as extra input channels like SCN, "none" = a plain U-Net that ignores the
    box channels), `localisation` gives it the student's training branch."""

    def __init__(self, image_channels: int = 3, out_channels: int = 3, features=(16, 32, 64, 128, 256),
                 box_conditioning: str | None = None, localisation: bool = False, localisation_features: int = 8,
                 dropout: float = 0.0):
        super().__init__()
        if box_conditioning not in (None, *BOX_CONDITIONING):
            raise ValueError(f"box_conditioning must be one of {BOX_CONDITIONING} or None")
        f = list(features)
        self.image_channels, self.box_conditioning = image_channels, box_conditioning
        encoder_in = image_channels + (2 if box_conditioning == "multichannel" else 0)
        self.encoder = nn.ModuleList([TwoConv(2, encoder_in, f[0], _ACT, _NORM, True, dropout)]
                                     + [Down(2, f[n], f[n + 1], _ACT, _NORM, True, dropout) for n in range(len(f) - 1)])
        self.attention = nn.ModuleList([O2LAttention(c, shortcut=box_conditioning == "o2l") for c in f[:-1]]) \
            if box_conditioning in ("o2l", "o2l-no-shortcut") else None
        ups = list(range(len(f) - 1))[::-1]  # 3, 2, 1, 0: upsample into scale n
        self.decoder = nn.ModuleList([UpCat(2, f[n + 1], f[n], f[n] if n else f[0], _ACT, _NORM, True, dropout, halves=n > 0)
                                      for n in ups])
        self.head = nn.Conv2d(f[0], out_channels, 1)
        self.localisation = None
        if localisation:  # one sub-pixel convolution per decoder scale (scale n has stride 2**n)
            self.localisation = nn.ModuleList([nn.Sequential(nn.Conv2d(f[n], localisation_features * 4 ** n, 3, padding=1),
                                                             nn.PixelShuffle(2 ** n)) for n in ups])
            self.localisation_head = nn.Sequential(nn.Conv2d(localisation_features * len(ups), localisation_features, 3, padding=1),
                                                   nn.LeakyReLU(0.1), nn.Conv2d(localisation_features, out_channels, 1))

    @property
    def in_channels(self) -> int:
        return self.image_channels + (2 if self.box_conditioning else 0)

    def _features(self, x: torch.Tensor):
        image, boxes = (x[:, :self.image_channels], x[:, self.image_channels:self.image_channels + 2]) if self.box_conditioning \
            else (x, None)
        h = torch.cat([image, boxes], 1) if self.box_conditioning == "multichannel" else image
        skips = []
        for n, block in enumerate(self.encoder):
            h = block(h)
            if n < len(self.encoder) - 1:
                skips.append(self.attention[n](h, boxes[:, :1], boxes[:, 1:]) if self.attention is not None else h)
        decoded = []
        for block, skip in zip(self.decoder, reversed(skips)):
            h = block(h, skip)
            decoded.append(h)
        return decoded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segmentation logits (B, out_channels, H, W)."""
        return self.head(self._features(x)[-1])

    def forward_with_localisation(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(segmentation logits, localisation logits), both (B, out_channels, H, W); training only."""
        decoded = self._features(x)
        loc = torch.cat([up(d) for up, d in zip(self.localisation, decoded)], 1)
        return self.head(decoded[-1]), self.localisation_head(loc)


def inference_state(net: BoxUNet) -> dict:
    """The weights without the localisation branch (the student's deployed model)."""
    return {k: v for k, v in net.state_dict().items() if not k.startswith(("localisation", "localisation_head"))}
