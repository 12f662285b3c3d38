"""The card of a model trained in SlicerLeap, built in one place, and the one way such a model reaches the catalog.

Every trainer (the train_* tasks, teacher–student) gives what it knows (architecture, input, labels, what it was
trained on, its history); the user's choices (model_id, title, modality, licence, training_data) are read from the
job's parameters here, once. `register_job_model` registers a finished job's model (the scene's job runner and the
CLI's train commands); the catalog computes the weights' sha256 at registration."""
from __future__ import annotations

import json
from typing import Any

WEIGHTS_FILE = "model.safetensors"


def trained_model_card(params: dict, *, default_id: str, default_title: str, task: str, module: str, architecture: dict,
                       input_spec: dict, labels: list, training_data: str, training: dict | None = None,
                       evaluation: dict | None = None, **extra: Any) -> dict:
    card = {"id": params.get("model_id", default_id), "title": params.get("title", default_title), "task": task,
            "module": params.get("module", module), "modality": params.get("modality", "any"), "architecture": architecture,
            "input": input_spec, "labels": labels, "licence": params.get("licence", "user-owned"),
            "training_data": params.get("training_data", training_data), **extra}
    if training is not None:
        card["training"] = training
    if evaluation is not None:
        card["evaluation"] = evaluation
    card["file"] = WEIGHTS_FILE
    return card


def model_output(ctx, card: dict) -> dict:
    """Write the card next to the weights the task saved at outputs/model.safetensors; the job's "model" output."""
    ctx.output_path("card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
    return {"kind": "model", "file": f"outputs/{WEIGHTS_FILE}", "card": "outputs/card.json"}


def register_job_model(job, spec: dict) -> dict:
    """Register the model a finished job wrote (its "model" output `spec`); returns the registered card."""
    from . import get_catalog

    card = json.loads(job.output_path(spec["card"]).read_text(encoding="utf-8"))
    return get_catalog().register(job.output_path(spec["file"]), card)
