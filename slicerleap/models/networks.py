"""Build the network named in a card's "architecture" (MONAI networks first; seed methods add theirs)."""
from __future__ import annotations

from ..errors import ModelError


def build_network(architecture: dict):
    name, args = architecture["name"], dict(architecture.get("args", {}))
    if name == "monai.UNet":
        from monai.networks.nets import UNet

        return UNet(**args)
    if name == "slicerleap.SKSNet":
        from ..segmentation.sks_net import SKSNet

        return SKSNet(**args)
    if name == "slicerleap.BoxUNet":
        from ..segmentation.teacher_student_nets import BoxUNet

        return BoxUNet(**args)
    if name == "slicerleap.MPTPN":
        from ..segmentation.mptpn_net import MPTPN, MPTPNConfig

        return MPTPN(MPTPNConfig(**args))
    if name == "slicerleap.FedICRAUNet":
        from ..federated.fedicra.network import FedICRAUNet

        return FedICRAUNet(**args)
    if name == "slicerleap.TMDCA":
        from ..registration.tm_dca import TMDCA

        return TMDCA(**args)
    if name == "slicerleap.VoxelMorph":
        from ..registration.voxelmorph import PaddedVoxelMorph

        return PaddedVoxelMorph(**args)
    raise ModelError(f"Unknown architecture '{name}' in the model card.", "Update SlicerLeap, or fix the card's architecture name.")


def load_model(card: dict, device):
    """Network from the card with verified weights, in eval mode on `device`."""
    from .weights import load_verified_state_dict

    net = build_network(card["architecture"])
    state = load_verified_state_dict(card)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"The weights of '{card['id']}' do not fit its architecture: {str(exc).splitlines()[0]}",
                         "Re-export the weights from the same architecture the card describes.") from None
    return net.to(device).eval()
