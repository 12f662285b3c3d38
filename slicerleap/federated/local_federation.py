"""A whole federation on this machine: one coordinator and one SuperNode per site folder, over loopback.

The same Flower programs, protocol, TLS and node authentication as a deployment across hospitals, so
what runs here (method development, benchmarks, tests) is what runs there; each site process reads only
its own folder. Every site gets its own key pair, registered with the coordinator before it connects."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable

from ..errors import BadInputError, SlicerLeapError
from .credentials import make_node_keys, make_tls_files
from .deployment import Coordinator, Site, read_round_log


def run_local_federation(site_dirs: list, out_dir: str | Path, run_config: dict, workdir: str | Path | None = None,
                         tls: bool = True, node_auth: bool = True, audit: bool = True, threads_per_site: int | None = 1,
                         timeout: float = 3600.0, on_round: Callable[[dict], None] | None = None,
                         should_stop: Callable[[], bool] = lambda: False, label_kinds: list[str] | None = None,
                         model_dirs: list | None = None) -> dict:
    """Run SlicerLeap's Flower App over `site_dirs` and wait for it. `run_config`: keys of run_config.DEFAULTS
    (out-dir is set here). `label_kinds`: each site's sparse-label kind for FedICRA (point, scribble, box, full);
    `model_dirs`: where each site keeps the final model it receives (FedICRA: its personalised model). `on_round(entry)` is called for each new line of the round log. With `audit`, each
    site's outgoing messages are recorded in <workdir>/site<N>-audit.jsonl.

    Returns {"status", "rounds", "weights", "card", "audit_logs"}; weights/card are None when the run failed."""
    if not site_dirs:
        raise BadInputError("No site folders were given.", "Give one data folder (images/ + labels/) per site.")
    out_dir = Path(out_dir).resolve()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="slicerleap-fed-")).resolve()
    tls_files = make_tls_files(workdir / "tls") if tls else None
    coordinator = Coordinator(workdir, tls_files, node_auth=node_auth)
    sites, audits = [], []
    log_path = out_dir / "rounds.jsonl"
    if log_path.exists():
        log_path.unlink()  # a new run: the log describes this run only
    try:
        coordinator.start()
        for index, folder in enumerate(site_dirs):
            key = None
            if node_auth:
                key, public = make_node_keys(workdir / f"site{index}-keys", "node", overwrite=True)  # this run's own
                coordinator.register_site(public, f"site{index}")
            audits.append(workdir / f"site{index}-audit.jsonl" if audit else None)
            sites.append(Site(coordinator.address, folder, workdir, index, tls_files.ca_cert if tls_files else None, key,
                              audits[-1], threads_per_site, model_dirs[index] if model_dirs else None,
                              label_kinds[index] if label_kinds else None).start())
        # FedICRA's site code needs every site: unless set, "sites" is the number of site folders
        run_id = coordinator.submit({"min-sites": len(sites), **run_config, "sites": run_config.get("sites") or len(sites),
                                     "out-dir": str(out_dir)})
        status = coordinator.follow(run_id, log_path, on_round, should_stop, timeout)
    finally:
        for site in sites:
            site.stop()
        coordinator.stop()
    done = status == "finished:completed" and (out_dir / "card.json").exists()
    if not done:
        tail = "".join(p.read_text(errors="replace", encoding="utf-8")[-600:] for p in sorted((workdir / "logs").glob("*.log")))
        raise SlicerLeapError(f"The federated run ended with status '{status}'. Logs: {workdir / 'logs'}\n{tail[-1500:]}",
                              "Check that every site folder holds images/ and labels/, and see the logs.")
    return {"status": status, "rounds": read_round_log(log_path), "weights": out_dir / "model.safetensors",
            "card": json.loads((out_dir / "card.json").read_text(encoding="utf-8")), "audit_logs": [a for a in audits if a], "workdir": workdir}
