"""Per-scan networks kept after a job so the optimisation can be resumed later (SR4ZCT's "continue training").

A checkpoint is a safetensors file in $SLICERLEAP_HOME/checkpoints plus a reference {"id", "sha256", ...}
that travels with the result (a volume node attribute, saved with the scene). It loads only when the file's
sha256 matches the reference, like catalog weights."""
from __future__ import annotations

import uuid

from ..errors import BadInputError
from ..models.weights import save_weights, sha256_of
from ..resources import user_home

CHECKPOINT_ATTRIBUTE = "SlicerLeap.SR4ZCT.checkpoint"  # on a restored volume node: the reference to its network


def _folder():
    folder = user_home() / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_checkpoint(net, info: dict) -> dict:
    """Write the network's weights; return the reference to keep with the result (`info` included)."""
    checkpoint_id = uuid.uuid4().hex
    path = save_weights(net, _folder() / f"{checkpoint_id}.safetensors")
    return {"id": checkpoint_id, "sha256": sha256_of(path), **info}


def load_checkpoint(reference: dict, device="cpu") -> dict:
    """The state dict a reference points to, after checking its sha256."""
    from safetensors.torch import load_file

    checkpoint_id = str(reference.get("id", ""))
    if not checkpoint_id.isalnum():
        raise BadInputError("The saved network reference of this result is malformed.", "Run the method from scratch instead of resuming.")
    path = _folder() / f"{checkpoint_id}.safetensors"
    if not path.is_file():
        raise BadInputError(f"The network saved with this result is gone ({path}).",
                            "Run the method from scratch instead of resuming (the result was made on another computer, "
                            "or the checkpoints folder was cleared).")
    if sha256_of(path) != reference.get("sha256"):
        raise BadInputError(f"The network saved with this result failed verification ({path} was modified or is corrupt); it was not loaded.",
                            "Run the method from scratch instead of resuming.")
    return load_file(str(path), device=str(device))
