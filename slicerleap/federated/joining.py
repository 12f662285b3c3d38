"""Take part in a federation as one site: a SuperNode over this site's folder until the final global model arrives."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..errors import SlicerLeapError
from .deployment import CONNECT_TIMEOUT, Site, read_json_lines


def join_federation(data_dir: str | Path, server: str, ca_cert: str | Path, private_key: str | Path, workdir: str | Path,
                    model_dir: str | Path, index: int = 0, threads: int | None = None, audit_log: str | Path | None = None,
                    label_kind: str | None = None, connect_timeout: float = CONNECT_TIMEOUT,
                    on_reply: Callable[[dict], None] = lambda entry: None, should_stop: Callable[[], bool] = lambda: False,
                    timeout: float = 24 * 3600.0) -> Path:
    """Serve this site's data to the coordinator at `server` (host:port) until its run ends; returns the card of
    the final global model kept in `model_dir`. `on_reply` gets every message the site sent (the audit entry:
    message type, array shapes, metrics such as the round's training loss or Dice), so a caller can show
    rounds and check what left the site. A site process that dies, or a run that ends without a final
    model within `timeout`, is an error naming the site log; so is a coordinator that cannot be reached for
    `connect_timeout` s, at the start or later."""
    workdir, model_dir = Path(workdir).resolve(), Path(model_dir).resolve()
    audit_log = Path(audit_log or workdir / "audit.jsonl").resolve()
    site = Site(server, data_dir, workdir, index, ca_cert, private_key, audit_log, threads, model_dir, label_kind, connect_timeout)
    deadline, seen = time.time() + timeout, 0
    try:
        site.start()
        while not (model_dir / "card.json").exists():
            for entry in read_json_lines(audit_log)[seen:]:  # the replies this site sent since the last look
                seen += 1
                on_reply(entry)
            if should_stop():
                break
            if site.gave_up():  # the coordinator stopped answering for connect_timeout s
                raise site.unreachable()
            if not site.process.alive:
                raise SlicerLeapError(f"The site's SuperNode stopped: {site.process.log()[-600:]}",
                                      f"Check the coordinator address and certificate; see {site.process.log_path}.")
            if time.time() > deadline:
                raise SlicerLeapError(f"No final model arrived within {timeout:.0f} s.", f"Ask the coordinator; see {site.process.log_path}.")
            time.sleep(1.0)
        for entry in read_json_lines(audit_log)[seen:]:
            on_reply(entry)
    finally:
        site.stop()
    return model_dir / "card.json"
