"""Build the network named in a card's "architecture" (the table in architectures.py) and load its verified weights."""
from __future__ import annotations

from ..errors import ModelError
from ..lazy_entries import load_entry
from .architectures import ARCHITECTURES


def build_network(architecture: dict):
    name, args = architecture["name"], dict(architecture.get("args", {}))
    if name not in ARCHITECTURES:
        raise ModelError(f"Unknown architecture '{name}' in the model card.", "Update SlicerLeap, or fix the card's architecture name.")
    return load_entry(ARCHITECTURES[name])(**args)


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
