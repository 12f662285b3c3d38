"""Segment a volume with a catalog model in a background worker; results come back as a segmentation
node (segment names, colours and terminology from the model card) next to the input volume."""
from __future__ import annotations

from slicerleap.errors import BadInputError
from slicerleap.models import get_catalog
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume


class SKSSegmentationLogic:
    """Segmentation jobs on a scene. `ctx` defaults to the process-wide scene context (Slicer's own
    scene inside the desktop application)."""

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    @staticmethod
    def available_models() -> list[dict]:
        """Cards of the installed segmentation models (bundled and user-registered), newest last."""
        return [card for card in get_catalog().cards() if card["task"] == "segmentation"]

    def resolve_model(self, model_id: str | None = None) -> dict:
        """The card of `model_id` ('name@x.y.z' or bare 'name' for the newest), or the default
        segmentation model. Raises ModelError naming the known models when it is not installed."""
        catalog = get_catalog()
        if model_id:
            card = catalog.get(model_id)
            if card["task"] != "segmentation":
                raise BadInputError(f"Model '{card['id']}' is a {card['task']} model, not a segmentation model.",
                                    "Pick a segmentation model.")
            return card
        return catalog.default_for("segmentation")

    def create_job(self, input_volume, model_id: str | None = None, device: str = "auto",
                   probability: bool = False, keep_files: bool = False) -> SceneJob:
        """A job (not started yet) that segments `input_volume` with the model's own spacing and labels."""
        require_scalar_volume(input_volume, "input volume")
        card = self.resolve_model(model_id)
        return SceneJob(self.ctx, "segment", {"image": input_volume}, {"probability": bool(probability)},
                        model=card["id"], device=device, keep_files=keep_files)

    def start(self, input_volume, model_id: str | None = None, device: str = "auto",
              probability: bool = False, keep_files: bool = False) -> SceneJob:
        """Start segmenting in a worker process and return at once; poll() the job, then finish()."""
        return self.create_job(input_volume, model_id, device, probability, keep_files).start()

    def process(self, input_volume, model_id: str | None = None, device: str = "auto", probability: bool = False,
                keep_files: bool = False, on_progress=None, timeout: float | None = None) -> dict:
        """Blocking form: returns {"segmentation": vtkMRMLSegmentationNode} plus "probability"
        (vtkMRMLScalarVolumeNode, foreground probability 0..1 on the input grid) when asked for."""
        job = self.create_job(input_volume, model_id, device, probability, keep_files)
        return job.run(on_progress=on_progress, timeout=timeout)
