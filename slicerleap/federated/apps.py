"""The Flower ServerApp and ClientApp of SlicerLeap's federated segmentation training (Message API).

Server: builds the 2.5D U-Net (FedICRA: the SCR-calibrated U-Net) from the run config, runs Flower's FedAvg or
FedProx strategy (FedICRA: sample-weighted FedAvg of the whole model, each site personalising its decoder; optionally
inside Flower's central differential-privacy wrapper; sites can add local DP with Flower's LocalDpMod) for the
configured rounds, logs every round (participating sites, their loss and Dice, bytes on the wire) to
`<out-dir>/rounds.jsonl`, and writes the global model and its card to `out-dir`.
Client (one per site, inside that site's SuperNode): reads only the folder named in its node config
(`data-dir`), trains from the global weights, and answers with weights and scalar metrics; the
`audit_outgoing` mod records what left the site (the model's floating-point state: weights and, with batch norm,
its running feature means and variances) in `audit-log` when the node config names one; with a
`model-dir`, the site keeps the final global model (from the last round's evaluation) and its card there.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg, FedProx

from . import run_config as rc
from .deployment import read_round_log
from .model_update import load_update, update_state


def shared_arrays(net) -> ArrayRecord:
    """What a model update carries (model_update.update_state), as Flower arrays."""
    return ArrayRecord(update_state(net))


def _array_bytes(arrays: ArrayRecord) -> int:
    return int(sum(a.numpy().nbytes for a in arrays.values()))


class _RoundLog:
    """Mixed into a Flower strategy: one JSON line per round and phase with each site's reply."""

    log_path: Path | None = None
    model_bytes: int = 0

    def _write(self, record: dict) -> None:
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def _sites(self, replies: list[Message]) -> tuple[list[dict], list[str]]:
        """Each answering site's metrics, and the reasons of the replies that failed (a site that died or timed out)."""
        ok = [{"node": m.metadata.src_node_id, **{k: float(v) for k, v in m.content["metrics"].items()}}
              for m in replies if not m.has_error()]
        return ok, [str(m.error.reason) for m in replies if m.has_error()]

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        arrays, metrics = super().aggregate_train(server_round, replies)
        sites, failed = self._sites(replies)
        self._write({"round": server_round, "phase": "train", "time": time.time(), "sites": sites, "failures": failed,
                     "bytes_down": self.model_bytes * len(replies), "bytes_up": self.model_bytes * len(sites),
                     "mean_loss": float(metrics["loss"]) if metrics and "loss" in metrics else None})
        return arrays, metrics

    def aggregate_evaluate(self, server_round, replies):
        replies = list(replies)
        metrics = super().aggregate_evaluate(server_round, replies)
        sites, failed = self._sites(replies)
        self._write({"round": server_round, "phase": "evaluate", "time": time.time(), "sites": sites, "failures": failed,
                     "mean_dice": float(metrics["dice"]) if metrics and "dice" in metrics else None})
        return metrics


class LoggedFedAvg(_RoundLog, FedAvg):
    pass


class LoggedFedProx(_RoundLog, FedProx):
    pass


def make_strategy(s: dict, log_path: Path | None, model_bytes: int):
    common = dict(fraction_train=s["fraction-train"], fraction_evaluate=1.0, min_train_nodes=1, min_evaluate_nodes=1,
                  min_available_nodes=s["min-sites"])
    strategy = LoggedFedProx(proximal_mu=s["proximal-mu"], **common) if s["strategy"] == "fedprox" else LoggedFedAvg(**common)
    strategy.log_path, strategy.model_bytes = log_path, model_bytes
    if s["dp"] == "central":  # Flower's wrapper: clips every site's update, then noises the aggregate
        return DifferentialPrivacyServerSideFixedClipping(strategy, s["dp-noise-multiplier"], s["dp-clipping-norm"],
                                                          num_sampled_clients=s["min-sites"])
    return strategy


server_app = ServerApp()


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    import torch

    from ..models.networks import build_network
    from ..models.weights import save_weights

    s = rc.settings(context.run_config)
    out = Path(s["out-dir"]) if s["out-dir"] else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(s["seed"])
    net = build_network(rc.architecture(s))
    arrays = shared_arrays(net)
    strategy = make_strategy(s, out / "rounds.jsonl" if out else None, _array_bytes(arrays))
    # round 0: every site scores the initial weights, the baseline the rounds are measured against
    strategy.aggregate_evaluate(0, grid.send_and_receive(strategy.configure_evaluate(0, arrays, ConfigRecord(), grid),
                                                         timeout=s["round-timeout"]))
    result = strategy.start(grid=grid, initial_arrays=arrays, num_rounds=s["num-server-rounds"], timeout=s["round-timeout"],
                            train_config=ConfigRecord({"local-iterations": s["local-iterations"]}))
    if out is None:
        return
    load_update(net, result.arrays.to_torch_state_dict())
    save_weights(net, out / "model.safetensors")
    history = read_round_log(out / "rounds.jsonl")
    n_sites = len({site["node"] for r in history for site in r["sites"]})
    (out / "card.json").write_text(json.dumps(rc.model_card(s, history, n_sites), indent=2), encoding="utf-8")


def _site(context: Context):
    """(settings, train cases, validation cases, site index) of this node. Flower starts a ClientApp process
    per message, so the prepared cases come from the node's `cache-dir` after the first round."""
    from .site_data import load_site_cases, split_validation

    s = rc.settings(context.run_config)
    cases = load_site_cases(str(context.node_config["data-dir"]), rc.input_spec(s), s["label-value"],
                            context.node_config.get("cache-dir") or None)
    train, val = split_validation(cases)
    return s, train, val, int(context.node_config.get("site-index", 0))


def _network(s: dict, arrays: ArrayRecord, site: int = 0):
    from ..device import select_device
    from ..models.networks import build_network

    device = select_device("auto")
    net = build_network(rc.architecture(s, site))
    load_update(net, arrays.to_torch_state_dict())
    return net.to(device), device


def _fedicra_site(context: Context, s: dict):
    """FedICRA: (training cases, validation cases with full masks, site, personal-state path)."""
    import tempfile

    from .fedicra.personal import personal_path

    _, train, val, site = _site(context)
    sites = s["sites"] or s["min-sites"]
    if not 0 <= site < sites:
        raise ValueError(f"site-index {site} is outside the federation's {sites} site codes: set the run config 'sites' "
                         "to the number of sites, and number the sites 0..sites-1")
    cache = context.node_config.get("cache-dir") or Path(tempfile.gettempdir()) / "slicerleap-fedicra"
    return train, val or train, site, personal_path(str(cache), context.run_id, site)


def _fedicra_train(msg: Message, context: Context, s: dict) -> Message:
    """Adaptive aggregation of the decoder (from round aa-from-round), then local training on the sparse labels;
    the site's decoder and W stay in its cache folder, the whole model goes to the coordinator (theta_g is the
    sites' average decoder)."""
    from .fedicra.network import split_state
    from .fedicra.personal import adapt, batch_norm_statistics, load_personal, save_personal, site_statistics
    from .fedicra.training import sparsify, train_fedicra_round

    train, _, site, path = _fedicra_site(context, s)
    # the site's label kind (node config label-kind), simulated from its masks with a fixed seed: the same every round
    kind, label_rng = str(context.node_config.get("label-kind", "full")), np.random.default_rng([s["seed"], site])
    sparse = [sparsify(c, kind, label_rng) for c in train]
    net, device = _network(s, msg.content["arrays"], site)
    config = msg.content["config"]
    server_round = int(config.get("server-round", 0))
    rng = np.random.default_rng([s["seed"], site, server_round])
    cfg = rc.training_config(s, server_round)
    stored = load_personal(path)
    personal = stored if server_round >= s["aa-from-round"] else None
    weights = adapt(net, msg.content["arrays"].to_torch_state_dict(), personal, sparse, site, cfg, device, s["aa-iterations"], rng)
    if s["personal-bn-stats"] and stored is not None:  # start from the site's own normalisation, not the sites' average
        net.load_state_dict({**net.state_dict(), **{k: v.to(device) for k, v in site_statistics(stored).items()}})
    loss = train_fedicra_round(net, sparse, site, cfg, device, int(config.get("local-iterations", s["local-iterations"])), rng)
    shared, decoder = split_state(net.state_dict())
    save_personal(path, decoder, weights, batch_norm_statistics(shared))
    metrics = MetricRecord({"loss": loss, "num-examples": int(sum(c.case.image.shape[0] for c in sparse)), "site-index": site})
    return Message(RecordDict({"arrays": shared_arrays(net), "metrics": metrics}), reply_to=msg)


def audit_outgoing(msg: Message, context: Context, call_next) -> Message:
    """Flower mod: append the shape of every reply leaving this site (array names, shapes, dtypes; metric
    names and values) to the node config's `audit-log` file, so a site can check what it shared."""
    reply = call_next(msg, context)
    path = context.node_config.get("audit-log")
    if path and not reply.has_error():
        content = reply.content
        entry = {"time": time.time(), "message_type": reply.metadata.message_type,
                 "arrays": {name: {k: [list(a.shape), str(a.dtype)] for k, a in record.items()} for name, record in content.array_records.items()},
                 "metrics": {name: dict(record) for name, record in content.metric_records.items()},
                 "configs": {name: dict(record) for name, record in content.config_records.items()}}
        with open(str(path), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=float) + "\n")
    return reply


def local_privacy(msg: Message, context: Context, call_next) -> Message:
    """Flower's LocalDpMod on training replies when the run config asks for local differential privacy: the
    site clips its update and adds noise before the reply leaves (inside `audit_outgoing`, which so records
    what really left)."""
    s = rc.settings(context.run_config)
    if s["dp"] != "local":
        return call_next(msg, context)
    from flwr.clientapp.mod import LocalDpMod

    return LocalDpMod(s["dp-clipping-norm"], s["dp-clipping-norm"], s["dp-epsilon"], s["dp-delta"])(msg, context, call_next)


client_app = ClientApp(mods=[audit_outgoing])


@client_app.train(mods=[local_privacy])
def client_train(msg: Message, context: Context) -> Message:
    from .local_round import train_local_round

    s = rc.settings(context.run_config)
    if s["strategy"] == "fedicra":
        return _fedicra_train(msg, context, s)
    s, train, _, site = _site(context)
    net, device = _network(s, msg.content["arrays"])
    config = msg.content["config"]
    server_round = int(config.get("server-round", 0))
    rng = np.random.default_rng([s["seed"], site, server_round])
    loss = train_local_round(net, train, rc.training_config(s, server_round), device, int(config.get("local-iterations", s["local-iterations"])),
                             rng, float(config.get("proximal-mu", 0.0)))
    metrics = MetricRecord({"loss": loss, "num-examples": int(sum(c.image.shape[0] for c in train)), "site-index": site})
    return Message(RecordDict({"arrays": shared_arrays(net), "metrics": metrics}), reply_to=msg)


@client_app.evaluate()
def client_evaluate(msg: Message, context: Context) -> Message:
    from ..segmentation.slice_training import mean_dice

    s = rc.settings(context.run_config)
    if s["strategy"] == "fedicra":  # the site's personalised model: phi_g + blend(theta_g, theta_i, W_i)
        from .fedicra.personal import load_personal, personalised_state

        _, cases, site, path = _fedicra_site(context, s)
        net, device = _network(s, msg.content["arrays"], site)
        load_update(net, personalised_state(msg.content["arrays"].to_torch_state_dict(), load_personal(path), bool(s["personal-bn-stats"])))
    else:
        s, train, val, site = _site(context)
        net, device = _network(s, msg.content["arrays"])
        cases = val or train  # a one-case site can only report how well the global model fits its own case
    metrics = MetricRecord({"dice": mean_dice(net, cases, device, s["context"]), "num-examples": len(cases), "site-index": site})
    model_dir = context.node_config.get("model-dir")
    if model_dir and int(msg.content["config"].get("server-round", 0)) == s["num-server-rounds"]:
        _keep_final_model(net, s, site, Path(str(model_dir)))  # the last evaluation carries the final global weights
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


def _keep_final_model(net, s: dict, site: int, folder: Path) -> None:
    """The site's copy of the final global model with its card (card.json last: it marks the copy complete)."""
    from ..models.weights import save_weights

    folder.mkdir(parents=True, exist_ok=True)
    save_weights(net, folder / "model.safetensors")
    card = rc.model_card(s, [], 0)
    card["title"] = f"{s['model-id'].split('@')[0]} (federated {s['strategy']}, received at site {site})"
    if s["strategy"] == "fedicra":  # this site's personalised model
        name, version = s["model-id"].split("@")
        card.update(id=f"{name}-site{site}@{version}", architecture=rc.architecture(s, site),
                    title=f"{name} (FedICRA, personalised for site {site})")
    card["training_data"] = "federated training; this site's images never left it, only model weights did"
    (folder / "card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
