"""`Job`: start a worker process on a job folder, follow its progress, cancel it, collect its result."""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .job_folders import OWNER_FILE
from .protocol import CANCEL_FILE, LOG_FILE, RESULT_FILE, STOP_FILE, ExitCode, JobSpec, worker_command


class JobFailed(RuntimeError):
    """The worker ended without success; `message` is meant for the user."""

    def __init__(self, message: str, exit_code: int | None, status: str):
        super().__init__(message)
        self.message, self.exit_code, self.status = message, exit_code, status


class JobWasCancelled(JobFailed):
    pass


def engine_pythonpath() -> str:
    """The folder holding the `slicerleap` package, so the worker imports the same engine as its parent."""
    return str(Path(__file__).resolve().parents[2])


def worker_environment(extra: dict | None = None) -> dict:
    """A worker process's environment: ours (plus `extra`), the engine importable, output unbuffered and UTF-8 (worker
    messages may carry non-ASCII text whatever the locale)."""
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (engine_pythonpath(), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def kill_process_tree(process: subprocess.Popen) -> None:
    """SIGKILL a worker started with start_new_session and every descendant it started."""
    import psutil  # imported here so the scene layer loads before Slicer has installed psutil

    try:
        victims = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        victims = []
    if os.name != "nt":
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in victims:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    process.kill()
    # the worker itself is reaped by Popen (psutil would steal its exit status); descendants here
    psutil.wait_procs(victims, timeout=5)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class Job:
    """Handle on one worker process. Non-blocking use: `poll()` from a timer; blocking use: `wait()`."""

    def __init__(self, job_dir: str | Path, keep_files: bool = False, python: str | None = None, env: dict | None = None):
        self.job_dir = Path(job_dir)
        self.keep_files = keep_files
        self.python = python or sys.executable
        self.extra_env = env or {}
        self.process: subprocess.Popen | None = None
        self.progress: float = 0.0
        self.stage: str = ""
        self.log: list[str] = []
        self.records: list[dict] = []
        self.exit_code: int | None = None
        self.final: dict = {}
        self._lines: queue.Queue = queue.Queue()
        self._reader: threading.Thread | None = None
        self._cancel_requested = False
        self._kill_at: float | None = None
        self._started_at = 0.0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Job":
        env = worker_environment(self.extra_env)
        log = open(self.job_dir / LOG_FILE, "ab")
        try:
            processes = JobSpec.load(self.job_dir).processes
        except (OSError, ValueError, TypeError):  # one worker reads the file again and says in its log what is wrong
            processes = None
        self._started_at = time.monotonic()
        self.process = subprocess.Popen(
            worker_command(self.python, self.job_dir / "job.json", processes),
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, cwd=self.job_dir,
            env=env, start_new_session=(os.name != "nt"),
        )
        log.close()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        return self

    def _read_stdout(self) -> None:
        assert self.process and self.process.stdout
        for raw in self.process.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)

    @property
    def running(self) -> bool:
        return self.process is not None and self.exit_code is None

    @property
    def status(self) -> str:
        if self.exit_code is None:
            return "running" if self.process else "not-started"
        if self._cancel_requested and self.exit_code != ExitCode.SUCCESS:
            return "cancelled"
        if self.exit_code != ExitCode.SUCCESS and self.final.get("status") in ("bad-input", "model-error", "cancelled", "failed"):
            return self.final["status"]  # the worker's own word: torchrun turns every failure into exit code 1
        try:
            return ExitCode(self.exit_code).status
        except ValueError:
            return "crashed"

    def poll(self) -> list[dict]:
        """Consume progress lines that arrived since the last call (never blocks)."""
        new: list[dict] = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._finish()
                break
            new.append(self._parse(line))
        if self.exit_code is None and self.process is not None and self.process.poll() is not None and self._reader and not self._reader.is_alive():
            new.extend(self.poll())
        if self.exit_code is None and self._kill_at is not None and time.monotonic() >= self._kill_at:
            self._kill_at = None
            self.kill_tree()  # the worker ignored the cancel request past its grace period
        return new

    def _parse(self, line: str) -> dict:
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError
        except ValueError:
            record = {"message": line}  # stray print from a library: keep it in the log
        if record.get("progress") is not None:
            self.progress = float(record["progress"])
        if record.get("stage"):
            self.stage = record["stage"]
        if record.get("message"):
            self.log.append(record["message"])
        if "status" in record:
            self.final = record
        self.records.append(record)
        return record

    def _finish(self) -> None:
        assert self.process
        self.exit_code = self.process.wait()

    def wait(self, timeout: float | None = None, on_progress=None) -> str:
        """Block until the worker ends (or `timeout` s pass); returns the status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.exit_code is None:
            for record in self.poll():
                if on_progress:
                    on_progress(record)
            if self.exit_code is None:
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        return self.status

    def request_early_stop(self) -> None:
        """Ask a per-scan optimisation (SR4ZCT training, registration) to finish now with its result so
        far; unlike cancel, the job still succeeds and its outputs are loaded."""
        if self.process is not None and self.exit_code is None:
            (self.job_dir / STOP_FILE).touch()

    def request_cancel(self, grace_s: float = 2.0) -> None:
        """Non-blocking cancel (for GUI timers): the worker stops at its next checkpoint; if it is
        still running `grace_s` later, the next poll() kills its whole process tree."""
        if self.process is None or self.exit_code is not None:
            return
        self._cancel_requested = True
        try:
            (self.job_dir / CANCEL_FILE).touch()
        except OSError:
            pass
        self._kill_at = time.monotonic() + grace_s

    def cancel(self, grace_s: float = 2.0) -> None:
        """Blocking cancel: request it, wait up to `grace_s`, then kill the process tree. Never touches the scene."""
        self.request_cancel(grace_s)
        if self.process is None or self.exit_code is not None:
            return
        self.wait(timeout=grace_s + 10)

    def kill_tree(self) -> None:
        """SIGKILL the worker and every descendant (data loaders, solvers) it started."""
        if self.process is not None:
            kill_process_tree(self.process)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started_at if self._started_at else 0.0

    # -- results -------------------------------------------------------------------------------
    def result(self) -> dict:
        """The worker's result.json; raises JobFailed (or JobWasCancelled) with the user-facing message."""
        if self.exit_code is None:
            raise RuntimeError("the job is still running; call wait() first")
        status = self.status
        if status == "succeeded":
            return json.loads((self.job_dir / RESULT_FILE).read_text(encoding="utf-8"))
        if status == "cancelled":
            raise JobWasCancelled("Cancelled by the user. Nothing was changed.", self.exit_code, status)
        message = self.final.get("error")
        if not message and (self.job_dir / RESULT_FILE).exists():
            message = json.loads((self.job_dir / RESULT_FILE).read_text(encoding="utf-8")).get("error")
        if not message:
            message = (
                f"The worker process stopped unexpectedly (exit code {self.exit_code}), for example out of memory. "
                f"Fix: try a smaller input or region, close other programs, or see {self.job_dir / LOG_FILE}."
            )
        if str(self.job_dir / LOG_FILE) in message:
            message = message.replace(str(self.job_dir / LOG_FILE), str(self._kept_log()))
        raise JobFailed(message, self.exit_code, status)

    def _kept_log(self) -> Path:
        """The worker log where a message can point: the job folder goes with cleanup(), so a copy is kept in the
        user's home (tracebacks and progress lines; no image data)."""
        if self.keep_files:
            return self.job_dir / LOG_FILE
        from ..resources import user_home

        kept = user_home() / "logs" / f"{self.job_dir.name}-{LOG_FILE}"
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.job_dir / LOG_FILE, kept)
        except OSError:
            return self.job_dir / LOG_FILE
        return kept

    def output_path(self, relative: str) -> Path:
        return self.job_dir / relative

    def cleanup(self) -> None:
        """Remove the job folder unless the user asked to keep it (a kept folder is the user's: the sweep of
        dead jobs' folders leaves it alone)."""
        if self.exit_code is None:
            return
        if self.keep_files:
            (self.job_dir / OWNER_FILE).unlink(missing_ok=True)
        else:
            shutil.rmtree(self.job_dir, ignore_errors=True)
