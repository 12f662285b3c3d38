"""FedICRA's network: a U-Net (MONAI BasicUNet's blocks) whose bottleneck passes through the site-code
calibration (SCR) module, split into the part every site shares (encoder + SCR, FedAvg) and the decoder
each site personalises."""
from __future__ import annotations

import torch
from torch import nn

SHARED_PREFIXES = ("conv_0.", "down_1.", "down_2.", "down_3.", "down_4.", "scr.")  # phi: averaged over all sites


class SiteCodeCalibration(nn.Module):
    """SCR: the one-hot site code c_k -> two FC layers -> length C; concatenated with GAP(f_k); FC + sigmoid -> the
    calibrated code c^_k; f'_k = f_k + f_k * c^_k (channel-wise)."""

    def __init__(self, sites: int, channels: int):
        super().__init__()
        self.sites = sites
        self.code = nn.Sequential(nn.Linear(sites, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))
        self.calibrate = nn.Linear(2 * channels, channels)

    def calibrated_code(self, features: torch.Tensor, site: torch.Tensor) -> torch.Tensor:
        one_hot = nn.functional.one_hot(site, self.sites).to(features.dtype)
        pooled = features.mean(dim=tuple(range(2, features.ndim)))
        return torch.sigmoid(self.calibrate(torch.cat([self.code(one_hot), pooled], dim=1)))

    def forward(self, features: torch.Tensor, site: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.calibrated_code(features, site)
        return features + features * code.view(*code.shape, *([1] * (features.ndim - 2))), code


class FedICRAUNet(nn.Module):
    """2D U-Net with SCR at the bottleneck. forward(x, site) -> logits; `site` is the site index per sample, or
    `site` given at construction (the site a model was personalised for: forward(x) answers as that site, so
    inference code can call net(x)). channels: BasicUNet's six feature counts; norm: "batch" (the paper's WSL4MIS
    U-Net) or "instance" (models saved before 2026-12-05 say nothing and were instance-normalised)."""

    def __init__(self, in_channels: int, classes: int, sites: int, channels=(16, 32, 64, 128, 256, 16), site: int = 0,
                 norm: str = "instance"):
        super().__init__()
        from monai.networks.nets import BasicUNet

        unet = BasicUNet(2, in_channels, classes, tuple(channels), norm=norm)
        for name in ("conv_0", "down_1", "down_2", "down_3", "down_4", "upcat_4", "upcat_3", "upcat_2", "upcat_1", "final_conv"):
            setattr(self, name, getattr(unet, name))
        self.scr = SiteCodeCalibration(sites, channels[4])
        self.sites, self.site = sites, site

    def forward(self, x: torch.Tensor, site: torch.Tensor | int | None = None, return_code: bool = False):
        site = self.site if site is None else site
        if isinstance(site, int):
            site = torch.full((x.shape[0],), site, dtype=torch.long, device=x.device)
        x0 = self.conv_0(x)
        x1 = self.down_1(x0)
        x2 = self.down_2(x1)
        x3 = self.down_3(x2)
        x4, code = self.scr(self.down_4(x3), site)
        logits = self.final_conv(self.upcat_1(self.upcat_2(self.upcat_3(self.upcat_4(x4, x3), x2), x1), x0))
        return (logits, code) if return_code else logits

    def site_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Every site's calibrated code for the same batch (K, C), for L_con."""
        features = self.down_4(self.down_3(self.down_2(self.down_1(self.conv_0(x)))))
        return torch.stack([self.scr.calibrated_code(features, torch.full((x.shape[0],), k, dtype=torch.long, device=x.device)).mean(0)
                            for k in range(self.sites)])


def is_shared(name: str) -> bool:
    return name.startswith(SHARED_PREFIXES)


def split_state(state: dict) -> tuple[dict, dict]:
    """(shared encoder + SCR, personalised decoder) parts of a FedICRAUNet state dict."""
    shared = {k: v for k, v in state.items() if is_shared(k)}
    return shared, {k: v for k, v in state.items() if not is_shared(k)}

