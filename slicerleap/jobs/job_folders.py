"""Job folders hold copies of patient scans, so none may outlive its job.

Each folder records the process that owns it (pid and start time, so a reused pid is not mistaken for the
owner). Signals the owner can catch clean up through its own `finally`; a SIGKILL cannot be caught, so every
new job first removes the folders whose owner is gone."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

OWNER_FILE = "owner.json"
PREFIX = "slicerleap-job-"


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def new_job_folder(task: str, root: str | Path | None = None) -> Path:
    """A fresh private folder for one job (mode 0700), owned by this process; stale ones are swept first."""
    sweep_stale_job_folders(root)
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{task}-", dir=root))
    (folder / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "started": _process_start(os.getpid())}),
                                     encoding="utf-8")
    return folder


def owner_alive(folder: Path) -> bool:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # being created right now, or not ours to judge
    started = _process_start(int(owner["pid"]))
    return started is not None and (owner.get("started") is None or abs(started - owner["started"]) < 1.0)


def sweep_stale_job_folders(root: str | Path | None = None) -> list[Path]:
    """Remove job folders (in `root`, default the system temp folder) whose owning process has died."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        if folder.is_dir() and (folder / OWNER_FILE).exists() and not owner_alive(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
