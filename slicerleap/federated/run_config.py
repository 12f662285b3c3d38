"""The federation's settings as Flower run config (one place: the Flower App's pyproject.toml declares
the same keys with their defaults) and the 2.5D training config and model card they define."""
from __future__ import annotations

# the training imports are in the functions: the settings alone are read where torch is not wanted (the Slicer GUI)

STRATEGIES = ("fedavg", "fedprox", "fedicra")
NORMS = ("auto", "batch", "instance")
PRIVACY = ("off", "central", "local")  # differential privacy: Flower's server-side wrapper, or each site's LocalDpMod

DEFAULTS = {  # key: default (type follows the default); mirrored in flower_app/pyproject.toml
    "num-server-rounds": 3,
    "strategy": "fedavg",
    "proximal-mu": 0.01,          # FedProx's mu (ignored by FedAvg)
    "local-iterations": 20,       # optimiser steps per site per round
    "min-sites": 2,               # sites that must be connected before a round starts
    "fraction-train": 1.0,
    "round-timeout": 600.0,       # s to wait for a round's replies; late or dead sites are left out
    "channels": "16,32,64,128",   # MONAI 2D U-Net feature channels
    # normalisation layers of every federation network (network_norm): "auto" is batch norm, which keeps the
    # absolute intensities tissue classes differ by (instance norm of each 64 px crop lost them: FedICRA's U-Net
    # 0.57 vs 0.88 Dice trained alone, RESULTS.md "Batch norm"; FedICRA's own U-Net, WSL4MIS's, is batch-normalised
    # too) — and instance norm under differential privacy, whose noise would make running variances negative
    # (the statistics of site data batch norm keeps are not protected by clipping weights either; Opacus refuses it)
    "norm": "auto",
    "in-plane-spacing": 1.5,      # mm, the slice grid every site resamples to
    "context": 1,                 # neighbour slices each side (2.5D input)
    "crop": 96,
    "batch-size": 8,
    "learning-rate": 0.002,
    "lr-power": 0.9,              # poly decay over rounds, lr (1 - (t-1)/T)^power in round t (FedICRA's; 0: constant)
    "label-value": 0,             # foreground value in the sites' labelmaps (0: any non-zero)
    "seed": 0,
    "out-dir": "",                # coordinator folder for the global model, card and round log
    "model-id": "fed-unet@1.0.0",
    # differential privacy of the model updates (Flower's own): "central" clips each site's update at the
    # coordinator and adds Gaussian noise to their sum (dp-noise-multiplier x dp-clipping-norm); "local":
    # each site clips its update and adds Gaussian noise itself before it leaves (Flower's LocalDpMod, std
    # dp-clipping-norm * sqrt(2 ln(1.25 / dp-delta)) / dp-epsilon per weight)
    # FedICRA: sites in the site code (0: min-sites), adaptive-aggregation steps per round and the first round
    # with AA (the paper: t > 2); each site's label kind is its own (node config label-kind: point, scribble,
    # box or full)
    "sites": 0,
    "aa-iterations": 10,
    "aa-from-round": 3,
    "personal-bn-stats": 0,       # FedICRA: 1 = each site's personalised model keeps its own batch-norm statistics
    "dp": "off",
    "dp-clipping-norm": 1.0,      # L2 bound of one site's update (all weights together)
    "dp-noise-multiplier": 1.0,   # central: noise std in units of the clipping norm
    "dp-epsilon": 10.0,           # local: privacy budget per update (smaller: more noise)
    "dp-delta": 1e-5,
}


def settings(run_config) -> dict:
    """Run config completed with the defaults, each value cast to its default's type."""
    out = {}
    for key, default in DEFAULTS.items():
        value = run_config.get(key, default) if run_config is not None else default
        out[key] = type(default)(value)
    if out["strategy"] not in STRATEGIES:
        raise ValueError(f"unknown strategy {out['strategy']!r}; use one of {', '.join(STRATEGIES)}")
    if out["norm"] not in NORMS:
        raise ValueError(f"unknown normalisation {out['norm']!r}; use one of {', '.join(NORMS)}")
    if out["norm"] == "batch" and out["dp"] != "off":
        raise ValueError("batch norm cannot be combined with differential privacy (the noise would reach its running "
                         "statistics); use norm 'instance' or 'auto'")
    if out["dp"] not in PRIVACY:
        raise ValueError(f"unknown differential privacy mode {out['dp']!r}; use one of {', '.join(PRIVACY)}")
    return out


def checked_settings(run_config) -> dict:
    """settings(), with a refusal as the BadInputError a user sees before anything starts (CLI, FedTools panel)."""
    from ..errors import BadInputError

    try:
        return settings(run_config)
    except ValueError as error:
        raise BadInputError(f"Federation settings refused: {error}.", "Change the settings named.") from None


def network_norm(s: dict) -> str:
    """The normalisation layers the settings ask for: "auto" is batch norm, or instance norm under differential privacy."""
    if s["norm"] != "auto":
        return s["norm"]
    return "instance" if s["dp"] != "off" else "batch"


def round_learning_rate(s: dict, server_round: int) -> float:
    """The local learning rate of round `server_round` (1..T): poly decay over the rounds. Each site restarts its
    optimiser every round, so a constant rate kept kicking a converged global model (validation Dice fell in the
    last rounds, 2026-12-02 runs); round 0 or below (no round): the base rate."""
    rounds = max(1, s["num-server-rounds"])
    progress = min(max(server_round - 1, 0), rounds - 1) / rounds
    return s["learning-rate"] * (1.0 - progress) ** s["lr-power"]


def training_config(s: dict, server_round: int = 0):
    """The SliceTrainingConfig of the federation's 2.5D U-Net (at round `server_round`'s learning rate)."""
    from ..segmentation.slice_training import SliceTrainingConfig

    return SliceTrainingConfig(model="unet", unet_channels=tuple(int(c) for c in s["channels"].split(",")), unet_norm=network_norm(s),
                               context=s["context"], crop=s["crop"], batch_size=s["batch-size"],
                               learning_rate=round_learning_rate(s, server_round), seed=s["seed"])


def architecture(s: dict, site: int = 0) -> dict:
    """The network of the federation: the 2.5D U-Net, or for FedICRA the SCR-calibrated U-Net answering as `site`."""
    if s["strategy"] != "fedicra":
        return training_config(s).architecture()
    channels = [int(c) for c in s["channels"].split(",")]
    unet = (channels + [channels[-1]] * 5)[:5] + [channels[0]]  # BasicUNet's six feature counts
    return {"name": "slicerleap.FedICRAUNet", "args": {"in_channels": 2 * s["context"] + 1, "classes": 2,
                                                       "sites": s["sites"] or s["min-sites"], "channels": unet, "site": site,
                                                       "norm": network_norm(s)}}


def input_spec(s: dict) -> dict:
    from ..segmentation.slice_data import slice_input_spec

    return slice_input_spec(s["in-plane-spacing"], s["context"])


def model_card(s: dict, history: list[dict], n_sites: int) -> dict:
    """Catalog card of the federation's global model (a 2.5D U-Net, usable by SKSSegmentation at once)."""
    from ..models.cards import trained_model_card
    from ..segmentation.label_specs import LESION_LABEL

    return trained_model_card(
        {}, default_id=s["model-id"], default_title=f"{s['model-id'].split('@')[0]} (federated {s['strategy']}, {n_sites} sites)",
        task="segmentation", module="SKSSegmentation", architecture=architecture(s), input_spec=input_spec(s),
        labels=[{**LESION_LABEL, "value": 1}],
        training_data=f"federated training over {n_sites} site(s); the images never left their sites, only model weights did",
        training={"federated": {k: v for k, v in s.items() if k != "out-dir"}}, evaluation={"rounds": history})
