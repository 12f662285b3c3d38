"""A batch on a Dask cluster: every item (batch.py) is one Dask task that runs one worker job. A `LocalCluster` of
N single-threaded worker processes on this machine by default, or the scheduler at `cluster` (e.g.
tcp://host:8786), whose workers must see the input and output folders at the same paths (a shared filesystem)
and have this package installed. Dask schedules; nothing here does.

Progress of the running jobs comes back as Dask worker events; Ctrl+C sets a Dask event that every running job
polls, so each cancels its worker process and removes its job folder before the cluster closes."""
from __future__ import annotations

import sys
import time
import uuid

from ..device import threads_per_process
from .batch import BatchItem, BatchRecord, check_batch, files_bar, run_batch_item

PROGRESS_TOPIC = "slicerleap-batch-progress"


def _run_on_dask_worker(item: BatchItem, device: str, env: dict, cancel_event: str) -> BatchRecord:
    from distributed import Event, get_worker

    worker = get_worker()
    cancel = Event(cancel_event)
    last = [0.0]

    def publish(record: dict) -> None:  # at most twice a second per job: the scheduler relays every event
        now = time.monotonic()
        if record.get("message") and now - last[0] > 0.5:
            last[0] = now
            worker.log_event(PROGRESS_TOPIC, {"name": item.name, "progress": record.get("progress"), "stage": record.get("stage", ""),
                                              "message": record["message"]})

    if cancel.is_set():
        return BatchRecord(item.name, "cancelled", 0.0, "the batch was stopped before this file started")
    return run_batch_item(item, device, env=env, on_progress=publish, should_cancel=cancel.is_set)


def run_dask_batch(items: list[BatchItem], workers: int | None = None, cluster: str | None = None, device: str = "auto",
                   log=lambda text: print(text, file=sys.stderr)) -> list[BatchRecord]:
    """Run the items on Dask; records in the items' order. `workers` (local cluster) or `cluster` (an address)."""
    from distributed import Client, Event, LocalCluster, as_completed, wait

    check_batch(items)
    local = None
    if cluster:
        client, env = Client(cluster), {}
    else:
        workers = workers or 1
        local = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(local)
        env = {"OMP_NUM_THREADS": str(threads_per_process(workers))}  # N jobs at once share the cores
    cancel_name = f"slicerleap-cancel-{uuid.uuid4().hex[:8]}"

    def show(event) -> None:
        _, info = event
        percent = "" if info["progress"] is None else f"{100 * info['progress']:.0f}% "
        log(f"  {info['name']}: {percent}{info['stage']}: {info['message']}")

    records: dict[int, BatchRecord] = {}
    try:
        client.subscribe_topic(PROGRESS_TOPIC, show)
        futures = {client.submit(_run_on_dask_worker, item, device, env, cancel_name, key=f"slicerleap-{n}-{uuid.uuid4().hex[:6]}",
                                 pure=False, retries=0): n for n, item in enumerate(items)}
        log(f"{len(items)} job(s) on {'the cluster at ' + cluster if cluster else f'{workers} local Dask worker(s)'}")
        try:
            for done, future in enumerate(as_completed(futures), 1):
                n = futures[future]
                try:
                    record = future.result()
                except Exception as exc:  # the Dask worker itself died (killed, out of memory)
                    record = BatchRecord(items[n].name, "failed", 0.0, f"the Dask worker running it failed: {exc}")
                records[n] = record
                log(f"{files_bar(done, len(items))}: {record.name} {record.status} ({record.seconds:.1f} s)"
                    + (f" — {record.message}" if record.message else ""))
        except KeyboardInterrupt:
            log("stopping: the running jobs cancel their workers and remove their job folders ...")
            Event(cancel_name, client=client).set()
            wait(list(futures), timeout=60)  # jobs not started yet see the event and end at once
            raise
    finally:
        client.unsubscribe_topic(PROGRESS_TOPIC)
        client.close()
        if local is not None:
            local.close()
    return [records[n] for n in range(len(items))]
