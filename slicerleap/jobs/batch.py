"""Many files, one job each: a failed file is reported and the others go on; a table of every file's status
at the end. Serial here; the scale-out runner (Dask) submits the same per-file jobs."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import SlicerLeapError
from .job import JobFailed


@dataclass
class BatchRecord:
    name: str
    status: str  # "done", "bad-input", "failed", "cancelled"
    seconds: float
    message: str = ""


def run_serial_batch(items: list[tuple[str, Callable[[], None]]], log=lambda text: print(text, file=sys.stderr)) -> list[BatchRecord]:
    """Run each (name, work) in turn; errors the user can act on are recorded, not raised. Ctrl+C stops the batch."""
    records = []
    for n, (name, work) in enumerate(items, 1):
        log(f"[{n}/{len(items)}] {name}")
        started = time.monotonic()
        try:
            work()
            record = BatchRecord(name, "done", 0.0)
        except SlicerLeapError as exc:
            record = BatchRecord(name, "bad-input", 0.0, exc.user_message)
        except JobFailed as exc:
            record = BatchRecord(name, exc.status if exc.status in ("bad-input", "cancelled") else "failed", 0.0, exc.message)
        record.seconds = round(time.monotonic() - started, 1)
        if record.message:
            log(f"  {record.status}: {record.message}")
        records.append(record)
    return records


def summary_table(records: list[BatchRecord]) -> str:
    width = max([len(r.name) for r in records] + [4])
    lines = [f"{'file':{width}s}  {'status':9s}  {'seconds':>7s}  message"]
    lines += [f"{r.name:{width}s}  {r.status:9s}  {r.seconds:7.1f}  {r.message}" for r in records]
    done = sum(r.status == "done" for r in records)
    lines.append(f"{done} of {len(records)} file(s) done" + ("" if done == len(records) else f", {len(records) - done} not"))
    return "\n".join(lines)


def batch_exit_code(records: list[BatchRecord]) -> int:
    """0 when every file is done; 2 when the failures are all the user's to fix (bad input); else 1."""
    failed = [r for r in records if r.status != "done"]
    if not failed:
        return 0
    return 2 if all(r.status == "bad-input" for r in failed) else 1
