"""`slicerleap fed ...`: a federation from the command line.

    slicerleap fed simulate --sites A/ B/ C/ --out fed-out/        # every site on this machine, loopback
    slicerleap fed keys --out site-keys/                            # at each site: a key pair; send the .pub
    slicerleap fed server --out fed-out/ --site-keys a.pub b.pub --host 0.0.0.0 --tls-hosts my.server.org
    slicerleap fed site --data A/ --server my.server.org:9092 --ca ca.crt --key site-keys/node
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import BadInputError


def _run_config(args) -> dict:
    config = {"num-server-rounds": args.rounds, "strategy": args.strategy, "proximal-mu": args.mu,
              "local-iterations": args.local_iterations, "model-id": args.id, "dp": args.dp}
    for pair in args.set or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise BadInputError(f"--set {pair!r} is not key=value.", "Write e.g. --set crop=64.")
        from ..federated.run_config import DEFAULTS

        if key not in DEFAULTS:
            raise BadInputError(f"Unknown federation setting '{key}'.", f"Known settings: {', '.join(DEFAULTS)}.")
        config[key] = type(DEFAULTS[key])(value)
    from ..federated.run_config import checked_settings

    checked_settings(config)  # refused here, not later inside every site's process
    return config


def _print_round(entry: dict) -> None:
    sites = ", ".join(f"site {int(s['site-index'])}: " + (f"Dice {s['dice']:.3f}" if "dice" in s else f"loss {s['loss']:.3f}")
                      for s in sorted(entry["sites"], key=lambda s: s["site-index"]))
    mean = f"mean Dice {entry['mean_dice']:.3f}" if entry.get("mean_dice") is not None else f"mean loss {entry.get('mean_loss') or 0:.3f}"
    failed = f"; {len(entry['failures'])} site(s) did not answer" if entry.get("failures") else ""
    print(json.dumps({"round": entry["round"], "phase": entry["phase"]}), f"{mean} ({sites}){failed}", flush=True)


def _register(out_dir: Path, no_register: bool) -> None:
    card = json.loads((out_dir / "card.json").read_text(encoding="utf-8"))
    if no_register:
        print(f"global model: {out_dir / 'model.safetensors'} (card {out_dir / 'card.json'})")
        return
    from ..models import get_catalog

    registered = get_catalog().register(out_dir / "model.safetensors", card)
    print(f"registered {registered['id']} (sha256 {registered['sha256'][:12]}…): use it with `slicerleap segment --model {registered['id']}`")


def cmd_simulate(args) -> int:
    from ..federated.local_federation import run_local_federation

    out = Path(args.out)
    if args.label_kinds and len(args.label_kinds) != len(args.sites):
        raise BadInputError(f"{len(args.label_kinds)} label kinds for {len(args.sites)} sites.", "Give one --label-kinds entry per site.")
    run_local_federation(args.sites, out, _run_config(args), workdir=args.workdir, tls=not args.no_tls, node_auth=not args.no_tls,
                         on_round=_print_round, timeout=args.timeout, label_kinds=args.label_kinds)
    _register(out, args.no_register)
    return 0


def cmd_keys(args) -> int:
    from ..federated.credentials import make_node_keys

    private, public = make_node_keys(args.out, args.name, overwrite=args.force)
    print(f"private key (stays at this site): {private}\npublic key (send to the coordinator): {public}")
    return 0


def cmd_server(args) -> int:
    from ..federated.coordination import coordinate

    out = Path(args.out)
    config = _run_config(args)
    if args.min_sites:
        config["min-sites"] = args.min_sites
    coordinate(args.site_keys, out, config, args.workdir or out / "coordinator", host=args.host, port=args.port,
               tls_dir=args.tls_dir, tls_hosts=args.tls_hosts, on_round=_print_round, timeout=args.timeout,
               on_ready=lambda address, ca: print(f"coordinator listening on {address}; sites need {ca} and their own private key",
                                                  flush=True))
    _register(out, args.no_register)
    return 0


def cmd_site(args) -> int:
    import signal
    import sys

    from ..federated.joining import join_federation

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a terminated site still stops its SuperNode (finally inside)
    workdir = Path(args.workdir or Path(args.data) / ".slicerleap-site")
    model_out = Path(args.model_out or workdir / "global-model")

    def on_reply(entry: dict) -> None:
        metrics = entry["metrics"].get("metrics", {})
        print(f"sent {entry['message_type']} reply: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()), flush=True)

    print(f"site {args.index} joining {args.server}; training runs when the coordinator starts a round (Ctrl-C leaves)", flush=True)
    try:
        join_federation(args.data, args.server, args.ca, args.key, workdir, model_out, args.index, args.threads, args.audit_log,
                        args.label_kind, connect_timeout=args.connect_timeout, on_reply=on_reply, timeout=args.timeout)
    except KeyboardInterrupt:
        return 130
    print(f"the federation finished; final global model: {model_out / 'model.safetensors'}", flush=True)
    _register(model_out, not args.register)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("fed", help="federated training across sites on Flower (only model weights leave a site)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fsub = p.add_subparsers(dest="fed_command", required=True)

    def run_options(q):
        q.add_argument("--out", required=True, help="folder for the global model, its card and rounds.jsonl")
        q.add_argument("--rounds", type=int, default=3, help="federated rounds (each: local training at every site, then aggregation)")
        q.add_argument("--strategy", default="fedavg", choices=["fedavg", "fedprox", "fedicra"],
                       help="fedicra: personalised decoders with adaptive aggregation, trained on each site's sparse labels")
        q.add_argument("--mu", type=float, default=0.01, help="FedProx proximal weight")
        q.add_argument("--local-iterations", type=int, default=20, help="optimiser steps per site per round")
        q.add_argument("--id", default="fed-unet@1.0.0", help="model id of the global model")
        q.add_argument("--dp", default="off", choices=["off", "central", "local"],
                       help="differential privacy of the updates (Flower's): central = clip at the coordinator + Gaussian "
                            "noise (--set dp-noise-multiplier=, dp-clipping-norm=); local = each site clips and adds noise "
                            "(--set dp-epsilon=, dp-delta=)")
        q.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="other settings (slicerleap.federated.run_config.DEFAULTS)")
        q.add_argument("--timeout", type=float, default=24 * 3600.0, help="s to wait for the whole run")
        q.add_argument("--workdir", default=None, help="logs and Flower state (default: a new folder)")
        q.add_argument("--no-register", action="store_true", help="do not add the global model to the catalog")

    q = fsub.add_parser("simulate", help="run every site on this machine (real Flower processes over loopback)")
    q.add_argument("--sites", nargs="+", required=True, help="one data folder per site (images/ + labels/)")
    q.add_argument("--no-tls", action="store_true", help="plain connections, no site authentication (trials only)")
    q.add_argument("--label-kinds", nargs="+", choices=["point", "scribble", "box", "full"], default=None,
                   help="fedicra: each site's label kind, simulated from its masks (default: full)")
    run_options(q)
    q.set_defaults(func=cmd_simulate)

    q = fsub.add_parser("keys", help="make this site's key pair (send the .pub file to the coordinator)")
    q.add_argument("--out", required=True, help="folder for the key pair (the private key never leaves this site)")
    q.add_argument("--name", default="node", help="the key files' name: NAME.key and NAME.pub")
    q.add_argument("--force", action="store_true", help="replace an existing key pair (the coordinator must register the new .pub)")
    q.set_defaults(func=cmd_keys)

    q = fsub.add_parser("server", help="coordinate a federation: SuperLink with TLS, registered sites only")
    q.add_argument("--site-keys", nargs="+", required=True, help="public keys of the sites allowed to join")
    q.add_argument("--min-sites", type=int, default=None, help="sites needed before a round starts (default: all)")
    q.add_argument("--host", default="127.0.0.1",
                   help="address the sites connect to (0.0.0.0: every interface); registration and run submission stay on 127.0.0.1")
    q.add_argument("--port", type=int, default=9092, help="the public port sites connect to (Fleet API only, TLS)")
    q.add_argument("--tls-dir", default=None, help="ca.crt/server.crt/server.key (made here when missing)")
    q.add_argument("--tls-hosts", nargs="*", help="names/IPs the server certificate is valid for (default: --host)")
    run_options(q)
    q.set_defaults(func=cmd_server)

    q = fsub.add_parser("site", help="join a federation with this site's data folder")
    q.add_argument("--data", required=True, help="this site's folder (images/ + labels/); nothing else is read")
    q.add_argument("--server", required=True, help="coordinator address host:port")
    q.add_argument("--ca", required=True, help="the coordinator's ca.crt")
    q.add_argument("--key", required=True, help="this site's private key (from `slicerleap fed keys`)")
    q.add_argument("--index", type=int, default=0, help="site number shown in the coordinator's round log")
    q.add_argument("--audit-log", default=None, help="record every message this site sends (JSON lines)")
    q.add_argument("--label-kind", default=None, choices=["point", "scribble", "box", "full"],
                   help="fedicra: the kind of sparse labels simulated from this site's masks (default: full)")
    q.add_argument("--threads", type=int, default=None, help="CPU threads for training")
    q.add_argument("--workdir", default=None, help="logs and Flower state (default: a new folder)")
    q.add_argument("--model-out", default=None, help="where the final global model arrives (default: WORKDIR/global-model)")
    q.add_argument("--register", action="store_true", help="add the final global model to this computer's catalog")
    q.add_argument("--timeout", type=float, default=24 * 3600.0, help="s to wait for the federation to finish")
    q.add_argument("--connect-timeout", type=float, default=120.0,
                   help="s to keep trying to reach the coordinator (at the start or after losing it) before giving up")
    q.set_defaults(func=cmd_site)
