"""The interactive network, CPU-sized, in 3D: PE-MED's inputs (image, previous mask, positive and negative click
maps) and self-loop (the first pass's mask fed back once, no new click), with SPPNet's light local branch (LLSIE:
3x3 conv to more channels, a depthwise-separable conv, a residual) beside a MONAI U-Net backbone, their features
concatenated before the 1x1 output conv. Not built: PE-MED's prompt attention learner (PALM) and temporal series
information propagation (TSIP), SPPNet's SAM / Tiny-ViT parts (pretrained weights are not available offline).

It works on the interaction's region resampled to WORKING_MM isotropic voxels (each side a multiple of 8), the
region's intensities normalised by its own 1st/99th percentiles; click maps are balls of CLICK_RADIUS_MM."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

IN_CHANNELS = 4  # image, previous mask, positive clicks, negative clicks
WORKING_MM = 1.25
CLICK_RADIUS_MM = 2.5


class LocalBranch(nn.Module):
    """SPPNet's low-level local semantic information extractor, in 3D."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.raise_channels = nn.Sequential(nn.Conv3d(in_channels, channels, 3, padding=1), nn.InstanceNorm3d(channels), nn.LeakyReLU(0.1))
        self.separable = nn.Sequential(nn.Conv3d(channels, channels, 3, padding=1, groups=channels), nn.Conv3d(channels, channels, 1),
                                       nn.InstanceNorm3d(channels), nn.LeakyReLU(0.1))

    def forward(self, x):
        y = self.raise_channels(x)
        return y + self.separable(y)


class ClickNet(nn.Module):
    def __init__(self, channels=(16, 32, 64, 128), local_channels: int = 8, num_res_units: int = 1):
        super().__init__()
        from monai.networks.nets import UNet

        self.backbone = UNet(spatial_dims=3, in_channels=IN_CHANNELS, out_channels=channels[0], channels=list(channels),
                             strides=[2] * (len(channels) - 1), num_res_units=num_res_units, norm="instance")
        self.local = LocalBranch(IN_CHANNELS, local_channels)
        self.head = nn.Conv3d(channels[0] + local_channels, 1, 1)

    def forward(self, x):
        return self.head(torch.cat([self.backbone(x), self.local(x)], dim=1))


def click_net_from_card_args(**args) -> ClickNet:
    return ClickNet(**args)


def working_shape(crop_shape, spacing_kji) -> tuple[int, int, int]:
    """The region's shape at WORKING_MM, each side rounded up to a multiple of 8 (the U-Net halves it three times)."""
    extent = np.asarray(crop_shape) * np.asarray(spacing_kji)
    return tuple(int(max(8, np.ceil(e / WORKING_MM / 8) * 8)) for e in extent)


def click_maps(shape, clicks, crop_shape) -> np.ndarray:
    """(2, *shape) balls around each click (positive, negative); `clicks`: [(kji in the crop, positive)]."""
    maps = np.zeros((2, *shape), np.float32)
    scale = np.asarray(shape) / np.asarray(crop_shape)
    grid = np.indices(shape, dtype=np.float32)
    radius = CLICK_RADIUS_MM / WORKING_MM
    for kji, positive in clicks:
        centre = (np.asarray(kji) + 0.5) * scale - 0.5
        ball = sum((grid[a] - centre[a]) ** 2 for a in range(3)) <= radius ** 2
        maps[0 if positive else 1][ball] = 1.0
    return maps


def normalise_region(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, [1, 99])
    return ((image - low) / max(high - low, 1e-6)).astype(np.float32)


def network_input(image: np.ndarray, mask: np.ndarray, clicks, spacing_kji) -> torch.Tensor:
    """(1, 4, *working shape) from the crop's image and mask (its own grid) and the clicks in it."""
    import torch.nn.functional as F

    shape = working_shape(image.shape, spacing_kji)
    both = torch.from_numpy(np.stack([normalise_region(image), mask.astype(np.float32)]))[None]
    both = F.interpolate(both, size=shape, mode="trilinear", align_corners=False)
    both[:, 1] = (both[:, 1] >= 0.5).float()  # a mask, as in training, not its blurred resampling
    return torch.cat([both, torch.from_numpy(click_maps(shape, clicks, image.shape))[None]], dim=1)


def back_to_crop(logits: torch.Tensor, crop_shape) -> np.ndarray:
    import torch.nn.functional as F

    return F.interpolate(logits.float(), size=tuple(crop_shape), mode="trilinear", align_corners=False)[0, 0].numpy()
