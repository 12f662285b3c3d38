"""Segment a volume with a catalog model in a background worker; results come back as a segmentation
node (segment names, colours and terminology from the model card) next to the input volume."""
from __future__ import annotations

from dataclasses import dataclass

from slicerleap.errors import BadInputError
from slicerleap.models import get_catalog
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.slice_labels import REFERENCE_ROLE as SLICE_LABELS_ROLE, read_slice_labels, slice_label_table
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume


@dataclass
class TrainingCase:
    """One case for SKS training. Pixel labels: `segmentation` (+ the lesion `segment` name; default: every
    segment is lesion). Otherwise slice-level labels: the volume's slice-label table (see
    slicerleap.scene.slice_labels), or `lesion_ranges` [[k1, k2], ...] of stored slices that show lesion."""
    volume: object
    segmentation: object = None
    segment: str | None = None
    lesion_ranges: list | None = None

    def kind(self) -> str:
        """"pixel", "slice" or "unlabelled" (a slice table whose every row is still unknown counts as unlabelled)."""
        if self.segmentation is not None:
            return "pixel"
        if self.lesion_ranges is not None:
            return "slice"
        table = self.volume.GetNodeReference(SLICE_LABELS_ROLE)
        return "slice" if table is not None and (read_slice_labels(table) >= 0).any() else "unlabelled"


def pixel_labels_input(case: TrainingCase) -> tuple:
    """The job input of a pixel-labelled case: (segmentation, reference volume, {segment name: 1}) — its chosen
    segment, or every segment when none is named."""
    segmentation = case.segmentation.GetSegmentation()
    names = [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]
    if case.segment is not None and case.segment not in names:
        raise BadInputError(f"'{case.segmentation.GetName()}' has no segment named '{case.segment}' (it has: {', '.join(names)}).",
                            "Pick the lesion segment by its name.")
    return case.segmentation, case.volume, {name: 1 for name in ([case.segment] if case.segment else names)}


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

    def cases_from_volumes(self, volumes, segment: str | None = None) -> list[TrainingCase]:
        """One case per volume; its pixel labels are the segmentation whose reference geometry is that
        volume (the newest such segmentation), if any."""
        by_reference = {}
        nodes = self.ctx.scene.GetNodesByClass("vtkMRMLSegmentationNode")
        for node in (nodes.GetItemAsObject(n) for n in range(nodes.GetNumberOfItems())):
            reference = node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole())
            if reference is not None:
                by_reference[reference.GetID()] = node
        return [TrainingCase(v, by_reference.get(v.GetID()), segment or None) for v in volumes]

    @staticmethod
    def count_label_kinds(cases: list[TrainingCase]) -> dict[str, int]:
        """How many cases have pixel labels, slice-level labels only, or nothing (shown in the panel)."""
        counts = {"pixel": 0, "slice": 0, "unlabelled": 0}
        for case in cases:
            counts[case.kind()] += 1
        return counts

    def create_training_job(self, cases: list[TrainingCase], model_id: str = "my-sks@1.0.0", model_type: str = "sks",
                            iterations: int = 400, coarse_iterations: int = 300, modality: str = "any",
                            device: str = "auto", keep_files: bool = False, **config) -> SceneJob:
        """A job (not started) that trains SKS (or the U-Net baseline) and registers `model_id` in the catalog
        when it succeeds. Unlabelled cases are left out; at least one case needs pixel labels."""
        pixel = [c for c in cases if c.kind() == "pixel"]
        weak = [c for c in cases if c.kind() == "slice"]
        if not pixel:
            raise BadInputError("SKS training needs at least one case with a lesion segmentation (pixel labels).",
                                "Segment the lesion in one or more cases with Segment Editor.")
        for c in cases:
            require_scalar_volume(c.volume, "training volume")
        labels = [pixel_labels_input(c) for c in pixel]
        slice_labels = [{"lesion_slices": c.lesion_ranges} if c.lesion_ranges is not None
                        else {"flags": read_slice_labels(slice_label_table(self.ctx, c.volume, create=False)).tolist()} for c in weak]
        params = {"config": {"model": model_type, "iterations": int(iterations), "coarse_iterations": int(coarse_iterations), **config},
                  "slice_labels": slice_labels, "model_id": model_id, "modality": modality, "label_value": 1}
        inputs = {"pixel_images": [c.volume for c in pixel], "pixel_labels": labels, "slice_images": [c.volume for c in weak]}
        return SceneJob(self.ctx, "train-sks", inputs, params, device=device, keep_files=keep_files)

    def train(self, cases: list[TrainingCase], model_id: str = "my-sks@1.0.0", on_progress=None, timeout: float | None = None,
              **options) -> dict:
        """Blocking form of `create_training_job`: returns the registered model card."""
        return self.create_training_job(cases, model_id, **options).run(on_progress=on_progress, timeout=timeout)["model"]

    def process(self, input_volume, model_id: str | None = None, device: str = "auto", probability: bool = False,
                keep_files: bool = False, on_progress=None, timeout: float | None = None) -> dict:
        """Blocking form: returns {"segmentation": vtkMRMLSegmentationNode} plus "probability"
        (vtkMRMLScalarVolumeNode, foreground probability 0..1 on the input grid) when asked for."""
        job = self.create_job(input_volume, model_id, device, probability, keep_files)
        return job.run(on_progress=on_progress, timeout=timeout)
