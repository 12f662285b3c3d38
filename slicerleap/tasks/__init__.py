"""Task registry: job.json's "task" -> the function a worker runs. Imported lazily so a worker only
loads what its task needs."""
from __future__ import annotations

from ..errors import BadInputError
from ..lazy_entries import load_entry

TASKS = {
    "segment": "slicerleap.tasks.segment:run",
    "train-segmentation": "slicerleap.tasks.train_segmentation:run",
    "train-interactive": "slicerleap.tasks.train_interactive:run",
    "train-sks": "slicerleap.tasks.train_sks:run",
    "segment-text": "slicerleap.tasks.segment_text:run",
    "train-mptpn": "slicerleap.tasks.train_mptpn:run",
    "train-teacher": "slicerleap.tasks.teacher_student:run_train_teacher",
    "pseudolabel": "slicerleap.tasks.teacher_student:run_pseudolabel",
    "train-student": "slicerleap.tasks.teacher_student:run_train_student",
    "register": "slicerleap.tasks.register:run",
    "train-registration": "slicerleap.tasks.train_registration:run",
    "superres": "slicerleap.tasks.superres:run",
    "reconstruct": "slicerleap.tasks.reconstruct:run",
    "train-recon": "slicerleap.tasks.train_recon:run",
    "federated-train": "slicerleap.tasks.federated_train:run",
}


def get_task(name: str):
    if name not in TASKS:
        raise BadInputError(f"Unknown task '{name}'.", f"Use one of: {', '.join(sorted(TASKS))}.")
    return load_entry(TASKS[name])
