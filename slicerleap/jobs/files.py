"""Run a task on files (CLI, scripts): inputs copied into a job folder, outputs written where asked.
The same worker and tasks as the Slicer modules use."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..io import read_volume, write_volume
from .job import Job
from .job_folders import new_job_folder
from .protocol import JobSpec, write_job


def stage_input(job_dir: Path, name: str, path: Path, n: int | None = None) -> str:
    """Copy one input file into the job folder: a volume (any readable format, DICOM too) as NRRD, raw k-space as it is."""
    from ..io.kspace_files import KSPACE_SUFFIXES, sidecar_of

    if path.suffix.lower() in KSPACE_SUFFIXES:  # raw k-space: the file as it is, with the .json beside a .npy
        relative = f"inputs/{name}{'' if n is None else f'_{n}'}{path.suffix.lower()}"
        (job_dir / "inputs").mkdir(exist_ok=True)
        shutil.copyfile(path, job_dir / relative)
        if sidecar_of(path).exists():
            shutil.copyfile(sidecar_of(path), sidecar_of(job_dir / relative))
        return relative
    relative = f"inputs/{name}{'' if n is None else f'_{n}'}.nrrd"
    write_volume(read_volume(path), job_dir / relative, compress=False)  # any readable format (incl. DICOM) -> NRRD
    return relative


def run_task_on_files(task: str, inputs: dict, params: dict | None = None, model: str | None = None, device: str = "auto",
                      keep_files: bool = False, on_progress=None, env: dict | None = None,
                      should_cancel=lambda: False, processes: dict | None = None) -> tuple[dict, Job]:
    """Run `task` to completion. Returns (result, job); the caller copies outputs then calls job.cleanup().
    Raises JobFailed with the user-facing message on failure. `env`: extra environment of the worker (e.g. its
    thread count); `should_cancel()`, asked every second, cancels the job (a batch stopped from elsewhere);
    `processes`: train on several processes under torchrun (protocol.worker_command)."""
    job_dir = new_job_folder(task)
    spec = JobSpec(task=task, params=dict(params or {}), model=model, device=device, processes=processes)
    try:
        for name, value in inputs.items():
            if isinstance(value, (list, tuple)):
                spec.inputs[name] = [stage_input(job_dir, name, Path(v), n) for n, v in enumerate(value)]
            else:
                spec.inputs[name] = stage_input(job_dir, name, Path(value))
        write_job(job_dir, spec)
        job = Job(job_dir, keep_files=keep_files, env=env).start()
    except BaseException:  # bad input, Ctrl+C or SIGTERM while staging: no copy of the scan stays behind
        shutil.rmtree(job_dir, ignore_errors=True)
        raise
    try:
        while job.wait(timeout=1.0, on_progress=on_progress) == "running":
            if should_cancel():
                job.cancel()
                break
    except BaseException:  # KeyboardInterrupt, or SIGTERM/SIGHUP turned into one by the CLI
        job.cancel()
        job.cleanup()
        raise
    try:
        return job.result(), job
    except Exception:
        job.cleanup()
        raise


def export_output(job: Job, result: dict, name: str, destination: str | Path) -> Path:
    """Copy one output to `destination`, converting the format by its suffix (geometry unchanged)."""
    spec = result["outputs"][name]
    source = job.output_path(spec["file"])
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if spec["kind"] == "displacement":  # .h5/.tfm -> ITK transform file, else a vector volume
        from ..io import read_displacement, write_displacement_transform

        write_displacement_transform(read_displacement(source), destination)
    else:  # rewritten, not copied: job files are uncompressed, exported files compressed
        write_volume(read_volume(source, scalar=False), destination)
    return destination


def print_progress(record: dict) -> None:
    if record.get("message"):
        pct = "" if record.get("progress") is None else f"{100 * record['progress']:5.1f}% "
        print(f"{pct}{record.get('stage', '')}: {record['message']}", file=sys.stderr, flush=True)
