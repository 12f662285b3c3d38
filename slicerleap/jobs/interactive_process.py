"""An interactive session whose model lives in a long-lived worker process: loaded once, then one request per click.

Protocol (JSON lines; the folder is a job folder, removed when the session closes):
- the parent writes `image.nrrd`, optionally `initial.nrrd` (the mask to correct) and `session.json`
  ({"model", "reach_mm"}), then starts `python -m slicerleap.session_worker <folder>`;
- the worker loads them, deletes the image files (the scan stays in its memory only) and prints {"ready": true,
  "model": ..., "seconds": ..., "warnings": [the model's domain warnings]};
- each request is one line on the worker's stdin: {"id": n, "op": "point", "ras": [r, a, s], "positive": true} |
  {"op": "box", "ras_min", "ras_max"} | {"op": "scribble", "ras_points", "positive"} | {"op": "undo"} |
  {"op": "reset"} | {"op": "close"};
- each reply is one line on its stdout with the same id: {"ok": true, "region": [[k0, k1], [j0, j1], [i0, i1]] or
  null, "bits": base64 of np.packbits of the region's new mask, "seconds"} or {"ok": false, "kind": "bad-input" |
  "internal", "problem", "fix"}. A bad input leaves the session as it was and it goes on.
- No reply within `timeout_s` (the worker hung) or the worker gone (crashed, killed): its process tree is killed,
  the folder removed (the log kept aside when asked) and JobFailed raised with what to do. The worker also ends
  when its stdin closes, so it never outlives its parent."""
from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

from ..errors import BadInputError
from ..io.image_io import write_volume
from ..volume import Volume
from .job import JobFailed, kill_process_tree, worker_environment
from .job_folders import new_job_folder
from .protocol import LOG_FILE

START_TIMEOUT_S = 120.0
REPLY_TIMEOUT_S = 60.0


def encode_mask(mask: np.ndarray) -> str:
    return base64.b64encode(np.packbits(np.asarray(mask, bool).ravel())).decode("ascii")


def decode_mask(bits: str, shape) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(bits), np.uint8), count=int(np.prod(shape))).reshape(shape).astype(bool)


def region_of(reply: dict):
    return None if reply.get("region") is None else tuple(slice(a, b) for a, b in reply["region"])


class InteractiveSessionProcess:
    """The InteractiveSession API (add_point, add_box, add_scribble, undo, reset, mask) over a worker process."""

    def __init__(self, volume: Volume, model: str | None = None, initial_mask: Volume | None = None,
                 reach_mm: float | None = None, timeout_s: float = REPLY_TIMEOUT_S, root=None, python: str | None = None):
        self.volume, self.timeout_s = volume, timeout_s
        self.folder = new_job_folder("interactive", root)
        self._ids = itertools.count(1)
        self._lines: queue.Queue = queue.Queue()
        self.process: subprocess.Popen | None = None
        try:
            write_volume(volume, self.folder / "image.nrrd", compress=False)
            if initial_mask is not None:
                write_volume(initial_mask, self.folder / "initial.nrrd", compress=False)
            spec = {"model": model, **({"reach_mm": reach_mm} if reach_mm is not None else {})}
            (self.folder / "session.json").write_text(json.dumps(spec), encoding="utf-8")
            self._start(python or sys.executable)
            self.ready = self._reply(None, START_TIMEOUT_S)
            if not self.ready.get("ready"):
                raise BadInputError(self.ready.get("problem", "The interactive session could not start."), self.ready.get("fix", ""))
        except BaseException:
            self.close()
            raise
        self.initial = (np.asarray(initial_mask.array) > 0) if initial_mask is not None else np.zeros(volume.array.shape[:3], bool)
        self._mask = self.initial.copy()
        self.clicks = 0

    def _start(self, python: str) -> None:
        env = worker_environment()
        with open(self.folder / LOG_FILE, "ab") as log:
            self.process = subprocess.Popen([python, "-m", "slicerleap.session_worker", str(self.folder)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=self.folder,
                                            env=env, start_new_session=(os.name != "nt"))
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout) -> None:
        for raw in stdout:
            self._lines.put(raw.decode("utf-8", "replace"))
        self._lines.put(None)

    # -- requests -------------------------------------------------------------------------------
    def _reply(self, request_id, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                self._fail(f"The interactive session did not answer within {timeout_s:g} s and was stopped.",
                           "Start the session again; if it keeps happening, use a smaller region (reach) or the classical model.")
            if line is None:
                self._fail("The interactive session's worker process ended unexpectedly.",
                           "Start the session again; the worker's log above says what happened.")
            try:
                reply = json.loads(line)
            except ValueError:
                continue  # not a protocol line (the worker keeps its stdout for the protocol; this is a guard)
            if not isinstance(reply, dict):
                continue
            if (request_id is None and "ready" in reply) or (request_id is not None and reply.get("id") == request_id):
                return reply

    def _fail(self, problem: str, fix: str) -> None:
        log = (self.folder / LOG_FILE).read_text(encoding="utf-8", errors="replace")[-2000:] if self.folder.exists() else ""
        self.close()
        raise JobFailed(f"{problem} Fix: {fix}" + (f"\nWorker log (end):\n{log}" if log.strip() else ""), None, "failed")

    def request(self, op: str, **fields) -> dict:
        if self.process is None or self.process.poll() is not None:
            self._fail("The interactive session is not running (closed, or its worker ended).", "Start a new session.")
        request_id = next(self._ids)
        try:
            self.process.stdin.write((json.dumps({"id": request_id, "op": op, **fields}) + "\n").encode("utf-8"))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self._fail("The interactive session's worker process ended unexpectedly.", "Start the session again.")
        reply = self._reply(request_id, self.timeout_s)
        if not reply.get("ok"):
            if reply.get("kind") == "bad-input":
                raise BadInputError(reply.get("problem", ""), reply.get("fix", ""))
            raise JobFailed(f"The interactive model failed on this interaction: {reply.get('problem', '')}", None, "failed")
        region = region_of(reply)
        if region is not None:
            self._mask[region] = decode_mask(reply["bits"], tuple(s.stop - s.start for s in region))
        self.clicks = reply.get("interactions", self.clicks)
        self.last_seconds = reply.get("seconds")
        return reply

    def add_point(self, ras, positive: bool = True):
        return region_of(self.request("point", ras=[float(v) for v in ras], positive=bool(positive)))

    def add_box(self, ras_min, ras_max):
        return region_of(self.request("box", ras_min=[float(v) for v in ras_min], ras_max=[float(v) for v in ras_max]))

    def add_scribble(self, ras_points, positive: bool = True):
        points = np.asarray(ras_points, dtype=float).tolist()
        return region_of(self.request("scribble", ras_points=points, positive=bool(positive)))

    def undo(self):
        return region_of(self.request("undo"))

    def reset(self) -> None:
        self.request("reset")
        self._mask = self.initial.copy()

    @property
    def mask_array(self) -> np.ndarray:
        return self._mask

    @property
    def mask(self) -> Volume:
        return self.volume.with_array(self._mask.astype(np.uint8), interactions=self.clicks)

    # -- end ------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        """Stop the worker (politely, then its whole process tree) and remove the folder with the copy of the scan."""
        if self.process is not None:
            if self.process.poll() is None:
                try:
                    self.process.stdin.write(b'{"op": "close"}\n')
                    self.process.stdin.flush()
                    self.process.wait(timeout=2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            kill_process_tree(self.process)
            for stream in (self.process.stdin, self.process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
