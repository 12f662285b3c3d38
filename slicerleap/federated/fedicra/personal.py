"""A FedICRA site's state between rounds: its personalised decoder theta_i, aggregation weights W_i and the batch-norm
running statistics of its last local training, kept in the site's own cache folder (Flower starts a ClientApp process
per message, and they must never leave the site)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model_update import load_update
from .adaptive_aggregation import blend, learn_aggregation_weights
from .losses import partial_cross_entropy
from .network import split_state
from .training import sample_sparse


def personal_path(cache_dir: str | Path, run_id: int, site: int) -> Path:
    return Path(cache_dir) / f"fedicra-run{run_id}-site{site}.safetensors"


def batch_norm_statistics(state: dict) -> dict:
    """The running means and variances of a state dict's batch-norm layers (none with instance norm)."""
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var"))}


def site_statistics(personal) -> dict:
    """Every batch-norm statistic of the site's last local training: the shared part's (saved as `statistics`) and
    its decoder's."""
    return {**personal[2], **batch_norm_statistics(personal[0])}


def save_personal(path: Path, decoder: dict, weights: dict | None, statistics: dict | None = None) -> None:
    """`statistics`: the batch-norm statistics of the shared part (the decoder's are in `decoder`)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"decoder.{k}": v.detach().contiguous().cpu() for k, v in decoder.items()}
    tensors.update({f"weight.{k}": v.detach().contiguous().cpu() for k, v in (weights or {}).items()})
    tensors.update({f"stats.{k}": v.detach().contiguous().cpu() for k, v in (statistics or {}).items()})
    save_file(tensors, str(path))


def load_personal(path: Path) -> tuple[dict, dict | None, dict] | None:
    """(decoder, weights or None, batch-norm statistics) saved by this site in an earlier round of the run, or None
    in its first round."""
    if not path.exists():
        return None
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    part = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return part("decoder."), part("weight.") or None, part("stats.")


def personalised_state(global_state: dict, personal, own_statistics: bool = False) -> dict:
    """phi_g with theta^_i = blend(theta_g, theta_i, W_i) once W_i exists, else the global model; with
    `own_statistics`, every batch-norm layer normalises with the site's own running statistics (FedBN's idea for
    sites whose scanners shift the features) instead of the sites' average."""
    state = global_state
    if personal is not None and personal[1] is not None:
        _, global_decoder = split_state(global_state)
        state = {**global_state, **blend(global_decoder, personal[0], personal[1])}
    if own_statistics and personal is not None:
        state = {**state, **{k: v.to(state[k].device) for k, v in site_statistics(personal).items()}}
    return state


def adapt(net, global_state: dict, personal, cases, site: int, config, device, steps: int, rng: np.random.Generator) -> dict | None:
    """Load the round's starting weights into `net`: the global model, or (with a local decoder from an earlier
    round) the adaptively aggregated one, W_i learned on this site's sparse labels for `steps` batches (pCE, the
    supervised term; W starts from last round's). Returns W_i, or None when there is no local decoder yet."""
    load_update(net, global_state)
    if personal is None:
        return None
    _, global_decoder = split_state({k: v.to(device) for k, v in global_state.items()})
    local_decoder = {k: v.to(device) for k, v in personal[0].items()}

    def batches():
        while True:
            x, sparse = sample_sparse(cases, rng, config)
            yield (x.to(device), site), sparse.to(device)

    previous = {k: v.to(device) for k, v in personal[1].items()} if personal[1] else None
    weights = learn_aggregation_weights(net, global_decoder, local_decoder, batches(), partial_cross_entropy, steps, weights=previous)
    net.load_state_dict({**net.state_dict(), **blend(global_decoder, local_decoder, weights)})
    return weights
