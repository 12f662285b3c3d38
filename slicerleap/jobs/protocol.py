"""The job protocol shared by the worker and the `Job` handle.

A job is a folder: job.json (task, params, inputs, model, device), inputs/, and when finished outputs/
plus result.json. The worker prints one JSON object per line on stdout; the last carries "status".
A file named CANCEL in the folder asks the worker to stop at its next checkpoint (nothing is kept);
a file named STOP asks an optimisation to finish early and return its result so far.
"""
from __future__ import annotations

import enum
import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

JOB_FILE = "job.json"
RESULT_FILE = "result.json"
CANCEL_FILE = "CANCEL"
STOP_FILE = "STOP"
LOG_FILE = "worker.log"


class ExitCode(enum.IntEnum):
    SUCCESS = 0
    INTERNAL_ERROR = 1  # also Python's own exit code for an uncaught exception
    BAD_INPUT = 2
    CANCELLED = 3
    MODEL_ERROR = 4

    @property
    def status(self) -> str:
        return {0: "succeeded", 1: "failed", 2: "bad-input", 3: "cancelled", 4: "model-error"}[int(self)]


@dataclass
class JobSpec:
    """What a worker runs. `inputs` maps names to file paths relative to the job folder."""

    task: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    device: str = "auto"
    processes: dict | None = None  # {"nproc_per_node", "nnodes", "rdzv_endpoint", "rdzv_id"}: run under torchrun
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @classmethod
    def load(cls, job_dir: Path) -> "JobSpec":
        data = json.loads((Path(job_dir) / JOB_FILE).read_text(encoding="utf-8"))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def worker_command(python: str, job_json: Path, processes: dict | None) -> list[str]:
    """The worker's command line: the worker itself, or torchrun starting one worker per process (`processes`).
    One node: --standalone; several: the c10d rendezvous at `rdzv_endpoint`, which every node's command names."""
    worker = ["-m", "slicerleap.worker", str(job_json)]
    if not processes:
        return [python, *worker]
    launcher = [python, "-m", "torch.distributed.run", f"--nproc-per-node={int(processes['nproc_per_node'])}"]
    if int(processes.get("nnodes", 1)) > 1:
        launcher += [f"--nnodes={int(processes['nnodes'])}", "--rdzv-backend=c10d", f"--rdzv-endpoint={processes['rdzv_endpoint']}",
                     f"--rdzv-id={processes.get('rdzv_id') or 'slicerleap'}"]
    else:
        launcher += ["--standalone"]
    return [*launcher, *worker]


def write_job(job_dir: str | Path, spec: JobSpec) -> Path:
    job_dir = Path(job_dir)
    (job_dir / "inputs").mkdir(parents=True, exist_ok=True)
    (job_dir / "outputs").mkdir(exist_ok=True)
    (job_dir / JOB_FILE).write_text(json.dumps(asdict(spec), indent=2), encoding="utf-8")
    return job_dir


def progress_line(progress: float | None = None, stage: str = "", message: str = "", **extra) -> str:
    record: dict[str, Any] = {"progress": None if progress is None else round(float(progress), 4), "stage": stage, "message": message}
    record.update(extra)
    return json.dumps(record)
