"""Mixed-scale dense network (MS-D; Pelt & Sethian, PNAS 2018), the 2D network SR4ZCT uses.

Every layer sees all earlier feature maps (and the input) and adds `width` maps from a 3x3 convolution
whose dilation cycles 1..max_dilation, so scale mixing happens inside one resolution. The output is a
1x1 convolution over everything. Few parameters, which suits per-scan training on a CPU.
"""
from __future__ import annotations

import torch
from torch import nn


class MSDNet(nn.Module):
    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 30, width: int = 1, max_dilation: int = 10):
        super().__init__()
        self.layers = nn.ModuleList()
        channels = in_channels
        for i in range(depth):
            dilation = i % max_dilation + 1
            self.layers.append(nn.Sequential(
                nn.Conv2d(channels, width, 3, padding=dilation, dilation=dilation, padding_mode="reflect"),
                nn.BatchNorm2d(width), nn.ReLU(inplace=True)))
            channels += width
        self.head = nn.Conv2d(channels, out_channels, 1)
        nn.init.zeros_(self.head.weight)  # with the residual connection, training starts from the identity
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        for layer in self.layers:
            features = torch.cat([features, layer(features)], dim=1)
        return x[:, : self.head.out_channels] + self.head(features)  # residual: learn the missing detail
