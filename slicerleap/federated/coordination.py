"""Coordinate a federation of remote sites: TLS, the sites' registered public keys, one run, its round log."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import SlicerLeapError
from .credentials import TlsFiles, make_tls_files
from .deployment import Coordinator, read_round_log


def coordinate(site_keys: list, out_dir: str | Path, run_config: dict, workdir: str | Path, host: str = "127.0.0.1",
               port: int | None = None, tls_dir: str | Path | None = None, tls_hosts: list[str] | None = None,
               on_ready: Callable[[str, Path], None] = lambda address, ca: None,
               on_round: Callable[[dict], None] = lambda entry: None, should_stop: Callable[[], bool] = lambda: False,
               timeout: float = 24 * 3600.0) -> list[dict]:
    """Serve until the run over the registered sites ends; returns the round log. TLS files are made in
    `tls_dir` (default <workdir>/tls) unless a server certificate is already there. `on_ready(address, ca_cert)`
    tells where sites connect and which CA file they need. min-sites defaults to every registered site."""
    out_dir, workdir = Path(out_dir).resolve(), Path(workdir).resolve()
    tls_dir = Path(tls_dir or workdir / "tls")
    tls = TlsFiles(tls_dir / "ca.crt", tls_dir / "server.crt", tls_dir / "server.key")
    if not tls.server_cert.exists():
        # the Flower CLI here talks to the SuperLink's loopback address, so the certificate names it too
        hosts = list(dict.fromkeys([*(tls_hosts or [host]), "127.0.0.1", "localhost"]))
        tls = make_tls_files(tls_dir, hosts=hosts)
    coordinator = Coordinator(workdir, tls, node_auth=True, host=host, port=port)
    try:
        coordinator.start()
        for key in site_keys:
            coordinator.register_site(key, Path(key).stem)
        on_ready(coordinator.address, tls.ca_cert)
        run = coordinator.submit({"min-sites": len(site_keys), **run_config, "sites": run_config.get("sites") or len(site_keys),
                                  "out-dir": str(out_dir)})
        status = coordinator.follow(run, out_dir / "rounds.jsonl", on_round, should_stop, timeout)
    finally:
        coordinator.stop()
    if status != "finished:completed" or not (out_dir / "card.json").exists():
        raise SlicerLeapError(f"The federated run ended with status '{status}'.", f"See the logs in {workdir / 'logs'}.")
    return read_round_log(out_dir / "rounds.jsonl")
