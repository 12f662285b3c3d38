"""Background jobs: a folder (job.json + inputs), a worker process, progress as JSON lines."""
from .protocol import ExitCode, JobSpec, write_job
from .job import Job, JobFailed, JobWasCancelled

__all__ = ["ExitCode", "JobSpec", "write_job", "Job", "JobFailed", "JobWasCancelled"]
