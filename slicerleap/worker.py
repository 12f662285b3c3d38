"""The only worker entry point: `python -m slicerleap.worker <job.json>`.

Runs one task from the registry, prints progress as JSON lines, writes result.json, and exits with
an ExitCode that separates success, cancel, bad input, model errors and internal errors.
"""
from __future__ import annotations

import json
import platform
import sys
import time
import traceback
from pathlib import Path

from .errors import BadInputError, JobCancelled, MissingDependencyError, ModelError
from .jobs.protocol import CANCEL_FILE, RESULT_FILE, STOP_FILE, ExitCode, JobSpec, progress_line


class TaskContext:
    """What a task sees: its parameters, input paths, device, a progress reporter and a cancel check."""

    def __init__(self, job_dir: Path, spec: JobSpec, out=sys.stdout):
        self.job_dir = job_dir
        self.spec = spec
        self.params = spec.params
        self._out = out
        self._device = None
        self.timings: dict[str, float] = {}
        self.extra_result: dict = {}

    @property
    def device(self):
        if self._device is None:
            from . import distributed
            from .device import select_device

            self._device = distributed.local_device(select_device(self.spec.device))
            distributed.start(self._device)  # several processes (torchrun): join their group
        return self._device

    def input_path(self, name: str) -> Path:
        try:
            value = self.spec.inputs[name]
        except KeyError:
            raise BadInputError(f"The job has no input named '{name}'.", "Select that input before running.") from None
        return self.job_dir / value

    def input_paths(self, name: str) -> list[Path]:
        value = self.spec.inputs.get(name, [])
        return [self.job_dir / v for v in (value if isinstance(value, list) else [value])]

    def output_path(self, filename: str) -> Path:
        path = self.job_dir / _outputs_folder() / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_output(self, volume, filename: str) -> str:
        """Write an output volume into outputs/ (uncompressed: job files are temporary, and gzip costs
        ~15x the write time, see benchmarks/RESULTS.md); returns its path relative to the job folder."""
        from .io import write_volume

        write_volume(volume, self.output_path(filename), compress=False)
        return f"outputs/{filename}"

    def report(self, progress: float | None = None, stage: str = "", message: str = "", **extra) -> None:
        """Print one progress line and honour a pending cancel (tasks call this at checkpoints)."""
        self.check_cancelled()
        print(progress_line(progress, stage, message, **extra), file=self._out, flush=True)

    def stop_requested(self) -> bool:
        """True once the user asked an optimisation to stop early and keep its result so far."""
        return (self.job_dir / STOP_FILE).exists()

    def check_cancelled(self) -> None:
        if (self.job_dir / CANCEL_FILE).exists():
            raise JobCancelled()


def _outputs_folder() -> str:
    """Under torchrun only the first process's outputs are the job's; the others write theirs aside (removed at exit)."""
    from . import distributed

    return "outputs" if distributed.is_main() else f"rank{distributed.rank()}/outputs"


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in ("torch", "monai", "SimpleITK", "numpy"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", getattr(module, "Version", lambda: "?")() if name == "SimpleITK" else "?")
    from . import __version__

    versions["slicerleap"] = __version__
    return versions


def _exit_when_orphaned(interval_s: float = 1.0) -> None:
    """A worker whose parent died (killed CLI, crashed Slicer) stops: nobody will collect its outputs, and
    the next job sweeps its folder (jobs/job_folders.py)."""
    import os
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(int(ExitCode.CANCELLED))

    threading.Thread(target=watch, daemon=True, name="orphan-watch").start()


def run_job(job_json: Path) -> int:
    from . import distributed
    from .tasks import get_task

    _exit_when_orphaned()
    job_dir = job_json.parent
    started = time.time()
    result: dict = {}
    main_process = distributed.is_main()
    try:
        spec = JobSpec.load(job_dir)
        ctx = TaskContext(job_dir, spec, out=sys.stdout if main_process else sys.stderr)  # one progress stream
        ctx.report(0.0, "starting", f"task {spec.task}")
        task = get_task(spec.task)
        outputs = task(ctx) or {}
        result = {"status": "succeeded", "task": spec.task, "outputs": outputs.get("outputs", {}),
                  "metrics": outputs.get("metrics", {}), **ctx.extra_result}
        code = ExitCode.SUCCESS
    except JobCancelled:
        code, result = ExitCode.CANCELLED, {"status": "cancelled"}
    except (BadInputError, MissingDependencyError) as exc:
        code, result = ExitCode.BAD_INPUT, {"status": "bad-input", "error": exc.user_message}
    except ModelError as exc:
        code, result = ExitCode.MODEL_ERROR, {"status": "model-error", "error": exc.user_message}
    except MemoryError:
        code, result = ExitCode.BAD_INPUT, {"status": "bad-input", "error": (
            "Not enough memory for this volume. Fix: crop the volume to the region of interest "
            "(Crop Volume module), resample it coarser, or use a machine with more memory.")}
    except Exception as exc:  # noqa: BLE001 - any other failure is an internal error, reported with its trace
        traceback.print_exc(file=sys.stderr)
        code, result = ExitCode.INTERNAL_ERROR, {"status": "failed", "error": (
            f"Internal error: {type(exc).__name__}: {exc}. Fix: report this with the worker log "
            f"({job_dir / 'worker.log'}).")}
    distributed.stop()
    if not main_process:  # the first process reports for all
        import shutil

        shutil.rmtree(job_dir / f"rank{distributed.rank()}", ignore_errors=True)
        return int(code)
    result.setdefault("timings", {})["total_s"] = round(time.time() - started, 3)
    result["versions"] = _versions()
    if code == ExitCode.SUCCESS:
        result["device"] = str(ctx.device) if ctx._device is not None else None
    (job_dir / RESULT_FILE).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    final = {"progress": 1.0 if code == ExitCode.SUCCESS else None, "status": result["status"]}
    if "error" in result:
        final["error"] = result["error"]
    print(json.dumps(final), flush=True)
    return int(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m slicerleap.worker <job.json>", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    return run_job(Path(argv[0]).resolve())


if __name__ == "__main__":
    sys.exit(main())
