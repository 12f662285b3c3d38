"""Task "federated-train": federated training of the 2.5D U-Net, as a job with progress and cancel.

mode "simulate" (default): every site on this machine (slicerleap.federated.local_federation) — the
sites' cases come as inputs images/labels split by params["site_sizes"] (cases per site, in order), or
as existing site folders in params["site_folders"]. mode "coordinate": a coordinator for remote sites
whose public keys are params["site_keys"] (sites join with `slicerleap fed site` or the FedTools panel).
mode "site": join a remote coordinator (params "server", "ca_cert", "private_key", "site_index") with this
job's cases (one site) or params["site_folders"][0]; ends when the final global model reaches the site.
params["run_config"]: federation settings (slicerleap.federated.run_config.DEFAULTS; "model-id" names the model).
Progress lines carry each round's per-site record, so a panel can plot loss, Dice and participation."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import BadInputError


def _site_folders(ctx) -> list[Path]:
    p = ctx.params
    if p.get("site_folders"):
        return [Path(f) for f in p["site_folders"]]
    images, labels, sizes = ctx.input_paths("images"), ctx.input_paths("labels"), list(p.get("site_sizes") or [])
    if len(images) != len(labels) or sum(sizes) != len(images) or not sizes or min(sizes) < 1:
        raise BadInputError(f"{len(images)} volumes, {len(labels)} labelmaps and sites of {sizes} cases do not add up.",
                            "Give every site at least one (volume, segmentation) case.")
    folders, start = [], 0
    for n, size in enumerate(sizes):
        folder = ctx.job_dir / "sites" / f"site{n}"
        for kind, paths in (("images", images), ("labels", labels)):
            (folder / kind).mkdir(parents=True, exist_ok=True)
            for m, path in enumerate(paths[start:start + size]):
                shutil.copyfile(path, folder / kind / f"case{m:03d}.nrrd")  # images and labels paired by name
        folders.append(folder)
        start += size
    return folders


def _join(ctx, should_stop) -> dict:
    """mode "site": this scene's (or folder's) cases as one site of a remote federation, until its final model arrives."""
    from ..federated.joining import join_federation

    p = ctx.params
    folder = _site_folders(ctx)[0]
    rounds = {"train": 0, "evaluate": 0}

    def on_reply(entry: dict) -> None:
        phase = "train" if entry["message_type"] == "train" else "evaluate"
        rounds[phase] += 1
        metrics = entry["metrics"].get("metrics", {})
        value = f"loss {metrics['loss']:.3f}" if "loss" in metrics else f"Dice {metrics.get('dice', float('nan')):.3f}"
        ctx.report(None, "federated round", f"sent {phase} reply {rounds[phase]}: {value}",
                   site_log={"phase": phase, "count": rounds[phase], **metrics})

    ctx.report(0.02, "joining", f"connecting to the coordinator at {p['server']}")
    join_federation(folder, p["server"], p["ca_cert"], p["private_key"], ctx.job_dir / "site-work",
                    ctx.output_path("federation"), int(p.get("site_index", 0)), on_reply=on_reply,
                    should_stop=should_stop, timeout=float(p.get("timeout", 24 * 3600)))
    return {"outputs": {"model": {"kind": "model", "file": "outputs/federation/model.safetensors", "card": "outputs/federation/card.json"}},
            "metrics": {"train_replies": rounds["train"], "evaluate_replies": rounds["evaluate"]}}


def run(ctx) -> dict:
    from ..federated.deployment import read_round_log
    from ..federated.local_federation import run_local_federation
    from ..federated.run_config import settings

    p = ctx.params
    config = dict(p.get("run_config") or {})
    rounds = settings(config)["num-server-rounds"]
    out = ctx.output_path("federation")

    def on_round(entry: dict) -> None:
        done = entry["round"] + (1 if entry["phase"] == "evaluate" else 0.5)
        metric = f"mean Dice {entry['mean_dice']:.3f}" if entry.get("mean_dice") is not None else f"mean loss {entry.get('mean_loss') or 0:.3f}"
        ctx.report(0.05 + 0.9 * min(1.0, done / (rounds + 1)), "federated round",
                   f"round {entry['round']}/{rounds} {entry['phase']}: {metric}, {len(entry['sites'])} site(s) answered", round_log=entry)

    should_stop = lambda: ctx.check_cancelled() or False  # cancel raises in the worker; Flower processes are stopped
    mode = p.get("mode", "simulate")
    if mode == "simulate":
        folders = _site_folders(ctx)
        ctx.report(0.02, "starting", f"coordinator and {len(folders)} site(s) on this machine")
        run_local_federation(folders, out, config, workdir=ctx.job_dir / "federation-work", on_round=on_round,
                             should_stop=should_stop, timeout=float(p.get("timeout", 24 * 3600)))
    elif mode == "coordinate":
        from ..federated.coordination import coordinate

        coordinate(p["site_keys"], out, config, ctx.job_dir / "federation-work", host=p.get("host", "127.0.0.1"),
                   port=p.get("port"), tls_dir=p.get("tls_dir"), on_round=on_round, should_stop=should_stop,
                   on_ready=lambda address, ca: ctx.report(0.03, "waiting for sites", f"listening on {address}; sites need {ca}",
                                                          address=address, ca_cert=str(ca)),
                   timeout=float(p.get("timeout", 24 * 3600)))
    elif mode == "site":
        return _join(ctx, should_stop)
    else:
        raise BadInputError(f"Unknown federation mode '{mode}'.", "Use 'simulate', 'coordinate' or 'site'.")
    log = read_round_log(out / "rounds.jsonl")
    final = [e for e in log if e["phase"] == "evaluate"]
    return {"outputs": {"model": {"kind": "model", "file": "outputs/federation/model.safetensors", "card": "outputs/federation/card.json"}},
            "metrics": {"rounds": rounds, "initial_mean_dice": final[0]["mean_dice"] if final else None,
                        "final_mean_dice": final[-1]["mean_dice"] if final else None}}
