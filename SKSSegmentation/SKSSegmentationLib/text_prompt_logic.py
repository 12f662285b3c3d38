"""Text-prompted segmentation (MPTPN) on a scene: a free-text prompt, or one built from clicks or a box, segments
the slices it is about into a segmentation node; a table of (volume, prompt) rows runs as a batch; cases with
segmentations train a new text-prompted model."""
from __future__ import annotations

import numpy as np

import SlicerLeapCommonLib
from slicerleap.errors import BadInputError
from slicerleap.models import get_catalog
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.boxes import roi_to_box
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume
from slicerleap.scene.volumes import node_to_volume
from slicerleap.segmentation.mptpn.prompt_templates import prompt_for_box, prompt_for_clicks
from slicerleap.segmentation.mptpn.inference import require_prompt
from slicerleap.segmentation.training_methods import MPTPN_TRAINING, resolve_training

from .logic import TrainingCase, pixel_labels_input


class TextPromptLogic:
    """Text-prompted segmentation on a scene (SKSSegmentationLogic.text_prompt: the module Logic's scene)."""

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    @staticmethod
    def available_models() -> list[dict]:
        return [card for card in get_catalog().cards() if card["task"] == "text-segmentation"]

    def resolve_model(self, model_id: str | None = None) -> dict:
        catalog = get_catalog()
        card = catalog.get(model_id) if model_id else catalog.default_for("text-segmentation")
        if card["task"] != "text-segmentation":
            raise BadInputError(f"Model '{card['id']}' does not read text prompts (it is a {card['task']} model).",
                                "Pick a text-prompted model, or train one (Text prompt > Train).")
        return card

    # prompt templates: what the user points at -> (prompt, slab of patient S in mm)
    def prompt_from_points(self, volume_node, points_node, size: str = "small", target: str = "lesion", model_id: str | None = None):
        """One object per control point of a Markups point list (world RAS)."""
        points = np.array([points_node.GetNthControlPointPositionWorld(n) for n in range(points_node.GetNumberOfControlPoints())])
        return prompt_for_clicks(node_to_volume(volume_node), self.resolve_model(model_id)["input"], points, size, target)

    def prompt_from_roi(self, volume_node, roi_node, target: str = "lesion", model_id: str | None = None):
        """One object inside a Markups ROI."""
        return prompt_for_box(node_to_volume(volume_node), self.resolve_model(model_id)["input"], roi_to_box(roi_node), target)

    def create_job(self, volume_node, prompt: str, model_id: str | None = None, slab_mm=None, probability: bool = False,
                   device: str = "auto", keep_files: bool = False, output_name: str | None = None) -> SceneJob:
        """A job (not started) segmenting what `prompt` describes on the axial slices of `slab_mm` ([s1, s2], patient
        S in mm; None: every slice; [s, s]: the slice through s)."""
        require_scalar_volume(volume_node, "input volume")
        prompt = require_prompt(prompt)
        card = self.resolve_model(model_id)
        params = {"prompt": prompt, "slab_mm": [float(s) for s in slab_mm] if slab_mm is not None else None,
                  "probability": bool(probability), "output_name": output_name}
        return SceneJob(self.ctx, "segment-text", {"image": volume_node}, params, model=card["id"], device=device, keep_files=keep_files)

    def segment(self, volume_node, prompt: str, model_id: str | None = None, slab_mm=None, on_progress=None,
                timeout: float | None = None, **options) -> dict:
        """Blocking form: {"segmentation": vtkMRMLSegmentationNode} (+ "probability"). Progress goes to the
        application log unless `on_progress` takes it."""
        job = self.create_job(volume_node, prompt, model_id, slab_mm, **options)
        return job.run(on_progress=on_progress or SlicerLeapCommonLib.logProgress, timeout=timeout)

    def segment_batch(self, rows, model_id: str | None = None, on_progress=None, timeout: float | None = None) -> list[dict]:
        """rows: (volume node, prompt[, slab_mm]) per case, run one after another; a failing row stops the batch
        with the rows before it kept in the scene."""
        rows = [tuple(r) + (None,) * (3 - len(r)) for r in rows]
        for volume_node, prompt, _ in rows:  # check every row before the first job starts
            require_scalar_volume(volume_node, "input volume")
            if not str(prompt or "").strip():
                raise BadInputError(f"The batch row of '{volume_node.GetName()}' has no prompt.", "Write a prompt for every row, or remove the row.")
        return [self.segment(v, p, model_id, s, on_progress=on_progress, timeout=timeout) for v, p, s in rows]

    def rows_from_table(self, table_node) -> list[tuple]:
        """Batch rows (volume node, prompt, slab_mm or None) from a table node with columns 'volume' (a volume
        node's name), 'prompt', and optionally 's1', 's2' (slab, patient S in mm; empty: every slice)."""
        if table_node is None:
            raise BadInputError("No batch table is selected.", "Create a table with columns volume, prompt (and optionally s1, s2).")
        table = table_node.GetTable()
        columns = {table.GetColumnName(c): table.GetColumn(c) for c in range(table.GetNumberOfColumns())}
        if not {"volume", "prompt"} <= set(columns):
            raise BadInputError(f"The table '{table_node.GetName()}' has columns {sorted(columns)}, not 'volume' and 'prompt'.",
                                "Name its columns volume, prompt (and optionally s1, s2).")
        text = lambda name, r: str(columns[name].GetValue(r)).strip() if name in columns else ""  # noqa: E731
        rows = []
        for r in range(table.GetNumberOfRows()):
            name = text("volume", r)
            volume = self.ctx.scene.GetFirstNodeByName(name) if name else None
            if volume is None or not volume.IsA("vtkMRMLScalarVolumeNode"):
                raise BadInputError(f"Row {r + 1} of '{table_node.GetName()}' names '{name}', which is not a volume in the scene.",
                                    "Write the volume's name as the Data module shows it.")
            s1, s2 = text("s1", r), text("s2", r)
            rows.append((volume, text("prompt", r), [float(s1), float(s2)] if s1 and s2 else None))
        return rows

    def create_training_job(self, cases: list[TrainingCase], model_id: str = "my-mptpn@1.0.0", iterations: int | None = None,
                            pretrain_iterations: int | None = None, prompts: list | None = None, device: str = "auto",
                            keep_files: bool = False, modality: str = "any", target: str = "lesion", **config) -> SceneJob:
        """Train MPTPN on cases with segmentations (their prompts written from the masks; `prompts`: per case None or
        [{"s_mm", "prompt"}] of your own). Registers `model_id` when it succeeds. `pretrain_iterations`: the prompt
        prior's (default half of `iterations`; 0 skips it); their defaults, ranges and the other settings:
        slicerleap/segmentation/training_methods.py."""
        method = MPTPN_TRAINING.method(config.get("model", "mptpn")).name
        settings = resolve_training(MPTPN_TRAINING, method, {**config, "iterations": iterations,
                                                             "pretrain_iterations": pretrain_iterations})
        pixel = [c for c in cases if c.segmentation is not None]
        if not pixel:
            raise BadInputError("Text-prompted training needs cases with a segmentation of the target.",
                                "Segment the target in some cases with Segment Editor.")
        for c in pixel:
            require_scalar_volume(c.volume, "training volume")
        labels = [pixel_labels_input(c) for c in pixel]
        params = {"config": {**config, "model": method, **settings},
                  "prompts": prompts, "model_id": model_id, "modality": modality, "label_value": 1, "target": target}
        return SceneJob(self.ctx, "train-mptpn", {"images": [c.volume for c in pixel], "labels": labels}, params,
                        device=device, keep_files=keep_files)

    def train(self, cases: list[TrainingCase], model_id: str = "my-mptpn@1.0.0", on_progress=None, timeout: float | None = None,
              **options) -> dict:
        """Blocking form of `create_training_job`: the registered model card."""
        return self.create_training_job(cases, model_id, **options).run(on_progress=on_progress, timeout=timeout)["model"]
