"""Scene <-> job: nodes -> job folder -> worker -> result -> nodes.

The scene is touched only after the worker succeeded, and then transactionally: if loading any
output fails, every node added so far is removed. A failed or cancelled job leaves the scene exactly
as it was, and its temporary folder is removed unless the user asked to keep it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..io import read_displacement, read_volume, write_volume
from ..jobs import Job, JobSpec, write_job
from ..jobs.job_folders import new_job_folder
from .context import SceneContext, python_for_jobs
from .segmentations import labels_to_segmentation_node, segmentation_node_to_labels
from .transforms import displacement_to_grid_transform_node
from .volumes import node_to_volume, place_next_to, volume_to_node


class SceneJob:
    """One background job fed from and returning to the scene. Non-blocking: start(), poll(), finish();
    blocking: run().

    inputs: name -> a volume node, or a tuple (segmentation node, reference volume node[, {segment
    name: label value}]) written as a labelmap on the reference grid, or a file path (raw k-space), or a list of them."""

    def __init__(self, ctx: SceneContext, task: str, inputs: dict, params: dict | None = None, model: str | None = None,
                 device: str = "auto", keep_files: bool = False, work_root: str | Path | None = None):
        self.ctx = ctx
        self.inputs = inputs
        self.spec = JobSpec(task=task, params=dict(params or {}), model=model, device=device)
        self.keep_files = keep_files
        self.work_root = work_root
        self.job: Job | None = None
        self.result: dict | None = None
        self.output_nodes: dict = {}

    # -- nodes -> files -----------------------------------------------------------------------
    def _write_input(self, job_dir: Path, name: str, value, n: int | None = None) -> str:
        if isinstance(value, (str, Path)):  # a file, not a node (raw k-space): staged as the CLI stages it
            from ..jobs.files import stage_input

            return stage_input(job_dir, name, Path(value), n)
        suffix = "" if n is None else f"_{n}"
        relative = f"inputs/{name}{suffix}.nrrd"
        if isinstance(value, tuple):  # (segmentation node, reference volume node) -> labelmap on the reference grid
            volume = segmentation_node_to_labels(*value)
        else:
            volume = node_to_volume(value)
        if volume.array.dtype == np.float64:
            volume.array = volume.array.astype(np.float32)
        write_volume(volume, job_dir / relative, compress=False)  # temporary: speed over size
        return relative

    def start(self) -> "SceneJob":
        job_dir = new_job_folder(self.spec.task, self.work_root)
        try:
            for name, value in self.inputs.items():
                if isinstance(value, list):
                    self.spec.inputs[name] = [self._write_input(job_dir, name, v, n) for n, v in enumerate(value)]
                else:
                    self.spec.inputs[name] = self._write_input(job_dir, name, value)
            write_job(job_dir, self.spec)
            self.job = Job(job_dir, keep_files=self.keep_files, python=python_for_jobs()).start()
        except BaseException:  # a node that cannot be written: no copy of the scan stays behind
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        return self

    def poll(self) -> list[dict]:
        return self.job.poll() if self.job else []

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def stop_early(self) -> None:
        """Finish the optimisation now and keep the result so far (the job still succeeds)."""
        if self.job:
            self.job.request_early_stop()

    def cancel(self, wait: bool = True) -> None:
        """Stop the worker. wait=False returns at once (GUI): keep polling until `running` is False,
        then call finish(), which raises JobWasCancelled and removes the job folder."""
        if not self.job:
            return
        if wait:
            self.job.cancel()
            self.job.cleanup()
        else:
            self.job.request_cancel()

    # -- files -> nodes -------------------------------------------------------------------------
    def finish(self) -> dict:
        """After the worker ended: load its outputs into the scene (all or nothing); returns name -> node."""
        try:
            self.result = self.job.result()  # raises JobFailed / JobWasCancelled with the user-facing message
            self.output_nodes = self._apply_outputs(self.result)
            return self.output_nodes
        finally:
            self.job.cleanup()

    def run(self, on_progress=None, timeout: float | None = None) -> dict:
        self.start()
        try:
            status = self.job.wait(timeout=timeout, on_progress=on_progress)
        except BaseException:  # Ctrl+C or a failing callback: never leave a worker behind
            self.cancel()
            raise
        if status == "running":
            self.cancel()
        return self.finish()

    def _apply_outputs(self, result: dict) -> dict:
        scene = self.ctx.scene
        before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
        try:
            return {name: self._apply_one(spec) for name, spec in result.get("outputs", {}).items()}
        except Exception:
            added = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
            for node in reversed([n for n in added if n.GetID() not in before]):
                scene.RemoveNode(node)
            raise

    def _input_node(self, name, index=None):
        """The input node an output refers to; `index` picks one of a list input."""
        node = self.inputs.get(name)
        return node[index] if isinstance(node, list) and index is not None else node

    def _apply_one(self, spec: dict):
        path = self.job.output_path(spec["file"])
        kind = spec["kind"]
        if kind == "labels":
            return labels_to_segmentation_node(self.ctx, read_volume(path), spec["labels"], spec["name"],
                                               reference_node=self._input_node(spec.get("reference"), spec.get("index")),
                                               attributes=spec.get("attributes"))
        if kind == "volume":
            reference = self.inputs.get(spec.get("reference"))
            node = volume_to_node(self.ctx, read_volume(path), spec["name"], reference_node=reference)
            if reference is None and spec.get("next_to") in self.inputs:
                place_next_to(self.ctx, node, self.inputs[spec["next_to"]])
            for key, value in (spec.get("attributes") or {}).items():  # saved with the scene
                node.SetAttribute(key, str(value))
            return node
        if kind == "displacement":
            return displacement_to_grid_transform_node(self.ctx, read_displacement(path), spec["name"],
                                                       self.inputs.get(spec.get("fixed")), self.inputs.get(spec.get("moving")))
        if kind == "model":
            from ..models.cards import register_job_model

            return register_job_model(self.job, spec)
        raise ValueError(f"unknown output kind {kind!r}")
