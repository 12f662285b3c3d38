"""Hard data consistency (MFormer's cascades, Eq. 3 of the paper): the acquired k-space lines replace the network's
prediction there, the rest is the prediction — so a fully sampled input comes back exactly as it went in. Tensors in
MONAI's layout: k-space (B, C, H, W, 2) real/imaginary, mask (1, 1, 1, W, 1) bool along the width."""
from __future__ import annotations

import torch


def data_consistency(predicted: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, measured, predicted)


def image_to_kspace(image: torch.Tensor, sensitivities: torch.Tensor) -> torch.Tensor:
    """Coil-combined complex image (B, 1, H, W, 2) -> multi-coil k-space (B, C, H, W, 2) through the sensitivities."""
    from monai.apps.reconstruction.networks.nets.utils import sensitivity_map_expand

    return sensitivity_map_expand(image, sensitivities, spatial_dims=2)


def kspace_to_image(kspace: torch.Tensor, sensitivities: torch.Tensor) -> torch.Tensor:
    """Multi-coil k-space -> the coil-combined complex image (sum over coils of conj(S) x coil image)."""
    from monai.apps.reconstruction.networks.nets.utils import sensitivity_map_reduce

    return sensitivity_map_reduce(kspace, sensitivities, spatial_dims=2)


def consistent_image(image: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor, sensitivities: torch.Tensor) -> torch.Tensor:
    """A cascade's image estimate made consistent with the measured lines, back in image space."""
    return kspace_to_image(data_consistency(image_to_kspace(image, sensitivities), measured, mask), sensitivities)
