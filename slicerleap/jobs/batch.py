"""Many files, one job each: a failed file is reported and the others go on; a table of every file's status at the
end. Each item is one worker job (the `python -m slicerleap.worker` protocol); this module runs items one after
another, `dask_batch.py` submits the same items to a Dask cluster.

An item counts as done, and a rerun skips it, when its result record (`<output folder>/<name>.result.json`, written
last and atomically) says so for the same task, inputs, parameters and model, and every output it lists is still
there with the recorded size and sha256."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import SlicerLeapError
from ..io.file_digest import sha256_of
from ..json_files import write_json_atomically
from .job import JobFailed

RECORD_SUFFIX = ".result.json"


@dataclass
class BatchItem:
    """One job of a batch: what to run on which files, and where each output goes."""

    name: str
    task: str
    inputs: dict
    params: dict
    outputs: dict  # output name -> destination file
    record: str  # the result record's path
    model: str | None = None


@dataclass
class BatchRecord:
    name: str
    status: str  # "done", "skipped" (done by an earlier run), "bad-input", "failed", "cancelled"
    seconds: float
    message: str = ""
    metrics: dict = field(default_factory=dict)


def _what_was_asked(item: BatchItem) -> dict:
    """What makes two runs the same: task, input contents, parameters, model."""
    inputs = {k: [sha256_of(Path(p)) if Path(p).is_file() else str(Path(p).resolve()) for p in (v if isinstance(v, (list, tuple)) else [v])]
              for k, v in item.inputs.items()}
    return {"task": item.task, "inputs": inputs, "params": item.params, "model": item.model}


def item_is_done(item: BatchItem, asked: dict) -> bool:
    """`asked`: _what_was_asked(item) as JSON stores it."""
    try:
        record = json.loads(Path(item.record).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if record.get("status") != "done" or record.get("asked") != asked:
        return False
    for name, written in record.get("outputs", {}).items():
        path = Path(item.outputs.get(name) or "")
        if not path.is_file() or path.stat().st_size != written["bytes"] or sha256_of(path) != written["sha256"]:
            return False
    return True


def run_batch_item(item: BatchItem, device: str = "auto", env: dict | None = None, on_progress=None,
                   should_cancel: Callable[[], bool] = lambda: False) -> BatchRecord:
    """Run one item to its outputs and result record; errors the user can act on are returned, not raised."""
    from ..io.output_files import check_outputs
    from .files import export_output, run_task_on_files

    started = time.monotonic()
    asked = json.loads(json.dumps(_what_was_asked(item)))  # the inputs hashed once, as the record will hold them
    if item_is_done(item, asked):
        return BatchRecord(item.name, "skipped", 0.0, "done by an earlier run")
    try:
        check_outputs(item.inputs, item.outputs)
        result, job = run_task_on_files(item.task, item.inputs, item.params, item.model, device, False, on_progress,
                                        env=env, should_cancel=should_cancel)
        try:
            written = {}
            for name, destination in item.outputs.items():
                if destination and name in result["outputs"]:
                    path = export_output(job, result, name, destination)
                    written[name] = {"file": str(path), "bytes": path.stat().st_size, "sha256": sha256_of(path)}
        finally:
            job.cleanup()
        seconds = round(time.monotonic() - started, 1)
        write_json_atomically(item.record, {"status": "done", "name": item.name, "seconds": seconds, "asked": asked,
                                            "outputs": written, "metrics": result.get("metrics", {})})
        return BatchRecord(item.name, "done", seconds, metrics=result.get("metrics", {}))
    except SlicerLeapError as exc:
        return BatchRecord(item.name, "bad-input", round(time.monotonic() - started, 1), exc.user_message)
    except JobFailed as exc:
        status = exc.status if exc.status in ("bad-input", "cancelled") else "failed"
        return BatchRecord(item.name, status, round(time.monotonic() - started, 1), exc.message)


def check_batch(items: list[BatchItem]) -> None:
    """Before any work: no two items write the same file."""
    seen: dict = {}
    for item in items:
        for destination in [item.record, *item.outputs.values()]:
            if destination:
                resolved = Path(destination).resolve()
                if resolved in seen:
                    raise SlicerLeapError(f"'{seen[resolved]}' and '{item.name}' would both write '{destination}'.",
                                          "Give each input its own name (file names that differ before the suffix).")
                seen[resolved] = item.name


def run_serial_batch(items: list[BatchItem], device: str = "auto", log=lambda text: print(text, file=sys.stderr)) -> list[BatchRecord]:
    """Run each item in turn on this machine. Ctrl+C stops the batch (the running job is cancelled and cleaned up)."""
    from .files import print_progress

    check_batch(items)
    records = []
    for n, item in enumerate(items, 1):
        log(f"{files_bar(n - 1, len(items))}: {item.name}")
        record = run_batch_item(item, device, on_progress=print_progress)
        if record.message:
            log(f"  {record.status}: {record.message}")
        records.append(record)
    return records


def files_bar(done: int, total: int, width: int = 20) -> str:
    """`[######--------------] 6/20 files`: the batch's progress over files in a log line."""
    filled = round(width * done / max(total, 1))
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total} files"


def summary_table(records: list[BatchRecord]) -> str:
    width = max([len(r.name) for r in records] + [4])
    lines = [f"{'file':{width}s}  {'status':9s}  {'seconds':>7s}  message"]
    lines += [f"{r.name:{width}s}  {r.status:9s}  {r.seconds:7.1f}  {r.message}" for r in records]
    done = sum(r.status in ("done", "skipped") for r in records)
    lines.append(f"{done} of {len(records)} file(s) done" + ("" if done == len(records) else f", {len(records) - done} not"))
    return "\n".join(lines)


def batch_exit_code(records: list[BatchRecord]) -> int:
    """0 when every file is done; 2 when the failures are all the user's to fix (bad input); else 1."""
    failed = [r for r in records if r.status not in ("done", "skipped")]
    if not failed:
        return 0
    return 2 if all(r.status == "bad-input" for r in failed) else 1
