"""JSON files that several processes may write: catalogs, benchmark results."""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomically(path: str | Path, content, indent: int = 1) -> Path:
    """Write `content` as JSON to `path` through a temporary file renamed over it: a reader never sees half a file,
    a process killed mid-write leaves the old file, and processes writing at once do not share a temporary file."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(content, indent=indent), encoding="utf-8")
    tmp.replace(path)
    return path
