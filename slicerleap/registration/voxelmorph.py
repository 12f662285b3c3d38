"""The VoxelMorph baseline: MONAI's VoxelMorph (U-Net backbone, optional scaling-and-squaring
integration), padded so any grid size works. forward(moving, fixed) -> (warped, ddf in voxels)."""
from __future__ import annotations

from typing import Sequence

import torch

from .tm_dca import pad_to_multiple


class PaddedVoxelMorph(torch.nn.Module):
    def __init__(self, channels: Sequence[int] = (16, 32, 32, 32), final_conv_channels: Sequence[int] = (16, 16),
                 unet_out_channels: int = 16, integration_steps: int = 0):
        super().__init__()
        from monai.networks.nets import VoxelMorph, VoxelMorphUNet

        backbone = VoxelMorphUNet(spatial_dims=3, in_channels=2, unet_out_channels=unet_out_channels,
                                  channels=tuple(channels), final_conv_channels=tuple(final_conv_channels))
        self.net = VoxelMorph(backbone=backbone, integration_steps=integration_steps)
        self.size_multiple = 2 ** (len(channels) // 2)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor):
        shape = moving.shape[2:]
        _, ddf = self.net(pad_to_multiple(moving, self.size_multiple), pad_to_multiple(fixed, self.size_multiple))
        ddf = ddf[:, :, : shape[0], : shape[1], : shape[2]]
        return self.net.warp(moving, ddf), ddf
