"""The registration training objective: image similarity (MONAI LNCC, MSE or global mutual information
for cross-contrast pairs) + a regulariser on the displacement (MONAI diffusion or bending energy, or
the implicitly solved regulariser) + optional Dice of warped labels (weak supervision, labels in the
loss only). Displacements are in voxels of the working grid."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .implicit_regularisation import KINDS as IMPLICIT_KINDS
from .implicit_regularisation import ImplicitRegulariser

SIMILARITIES = ("lncc", "mse", "mi")
REGULARISERS = ("diffusion", "bending", "none") + tuple(f"implicit-{k}" for k in IMPLICIT_KINDS)


@dataclass
class RegistrationLossConfig:
    similarity: str = "lncc"
    lncc_kernel: int = 7
    regulariser: str = "diffusion"
    regulariser_weight: float = 1.0  # α for an explicit regulariser, σ for an implicit one
    implicit_gamma: float = 2.0
    label_weight: float = 1.0  # weight of the Dice of warped labels, when labels are given

    def to_dict(self) -> dict:
        return asdict(self)


class RegistrationLoss(torch.nn.Module):
    def __init__(self, config: RegistrationLossConfig):
        super().__init__()
        from monai.losses import (BendingEnergyLoss, DiceLoss, DiffusionLoss, GlobalMutualInformationLoss,
                                  LocalNormalizedCrossCorrelationLoss)

        if config.similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity '{config.similarity}' (choose from {', '.join(SIMILARITIES)})")
        if config.regulariser not in REGULARISERS:
            raise ValueError(f"unknown regulariser '{config.regulariser}' (choose from {', '.join(REGULARISERS)})")
        self.config = config
        self.similarity = {"lncc": lambda: LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=config.lncc_kernel),
                           "mse": lambda: torch.nn.MSELoss(),
                           "mi": lambda: GlobalMutualInformationLoss(num_bins=32)}[config.similarity]()
        if config.regulariser.startswith("implicit-"):
            self.regulariser = ImplicitRegulariser(config.regulariser.split("-", 1)[1], sigma=1.0, gamma=config.implicit_gamma)
        else:
            self.regulariser = {"diffusion": DiffusionLoss, "bending": BendingEnergyLoss, "none": lambda: None}[config.regulariser]()
        self.dice = DiceLoss(include_background=False)

    def forward(self, fixed: torch.Tensor, warped: torch.Tensor, ddf: torch.Tensor,
                fixed_labels: torch.Tensor | None = None, warped_labels: torch.Tensor | None = None):
        """Total loss and its parts (floats). Labels are one-hot (B, classes, ...), the warped ones
        warped linearly so that Dice has a gradient."""
        parts = {"similarity": self.similarity(warped, fixed)}
        if self.regulariser is not None:
            parts["regulariser"] = self.config.regulariser_weight * self.regulariser(ddf)
        if fixed_labels is not None and warped_labels is not None and self.config.label_weight > 0:
            parts["dice"] = self.config.label_weight * self.dice(warped_labels, fixed_labels)
        total = sum(parts.values())
        return total, {k: float(v.detach()) for k, v in parts.items()}
