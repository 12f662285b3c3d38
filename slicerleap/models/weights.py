"""Weights are safetensors only, and only after their sha256 matches the catalog."""
from __future__ import annotations

from ..io.file_digest import sha256_of
from pathlib import Path

from ..errors import ModelError


def save_weights(net, path: str | Path) -> Path:
    """The network's state dict (or a state dict) as a safetensors file (contiguous CPU tensors, as safetensors requires)."""
    from safetensors.torch import save_file

    state = net if isinstance(net, dict) else net.state_dict()
    save_file({k: v.contiguous().cpu() for k, v in state.items()}, str(path))
    return Path(path)


def load_verified_state_dict(card: dict, device="cpu") -> dict:
    """Load the card's safetensors weights after checking the file's sha256 against the card."""
    from safetensors.torch import load_file

    path = Path(card["_path"])
    if not path.is_file():
        raise ModelError(f"The weights of model '{card['id']}' are missing ({path}).",
                         "Reinstall the extension, or re-import the model with `slicerleap models import`.")
    actual = sha256_of(path)
    if actual != card["sha256"]:
        raise ModelError(
            f"The weights of model '{card['id']}' failed verification: sha256 {actual[:12]}… differs from the catalog's "
            f"{card['sha256'][:12]}… (the file was modified or is corrupt). It was not loaded.",
            "Restore the original file (reinstall the extension) or re-import the model with its card.")
    return load_file(str(path), device=str(device))
