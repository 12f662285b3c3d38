"""Segment a volume with a catalog model in a background worker; results come back as a segmentation
node (segment names, colours and terminology from the model card) next to the input volume."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

import SlicerLeapCommonLib
from slicerleap.errors import BadInputError
from slicerleap.models import get_catalog
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.slice_labels import REFERENCE_ROLE as SLICE_LABELS_ROLE, read_slice_labels, set_slice_labels, slice_label_table
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume
from slicerleap.segmentation.inference_options import check_brain_mask
from slicerleap.segmentation.training_methods import SKS_TRAINING, resolve_training


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


def reference_segmentations(scene) -> dict:
    """Volume node ID -> the newest segmentation node whose reference geometry is that volume."""
    by_reference = {}
    nodes = scene.GetNodesByClass("vtkMRMLSegmentationNode")
    for node in (nodes.GetItemAsObject(n) for n in range(nodes.GetNumberOfItems())):
        reference = node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole())
        if reference is not None:
            by_reference[reference.GetID()] = node
    return by_reference


class SKSSegmentationLogic:
    """The SKSSegmentation module's Logic: segmentation and SKS training jobs on a scene, with the teacher–student
    loop (`teacher_student`, teacher_student_logic.py) and text prompts (`text_prompt`, text_prompt_logic.py) on
    the same scene. `ctx` defaults to the process-wide scene context (Slicer's own scene inside the desktop
    application). From Slicer's Python console:

        logic = slicer.util.getModuleLogic("SKSSegmentation")
        outputs = logic.process(getNode("MRHead"))  # the default model
        outputs = logic.process(getNode("MRHead"), model_id="my-sks@1.0.0", probability=True, keep_files=True)
        job = logic.start_training(logic.cases_from_volumes([v1, v2, v3], segment="Lesion"), "my-sks@1.0.0")
        logic.teacher_student.add_box(getNode("case 4"), "lesion")
        outputs = logic.text_prompt.segment(getNode("MRHead"), "one small round lesion in the upper left")
    """

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    @cached_property
    def teacher_student(self):
        """Boxes -> teacher -> pseudo-labels -> review -> student on this Logic's scene (a TeacherStudentLogic)."""
        from .teacher_student_logic import TeacherStudentLogic  # (it imports this module)

        return TeacherStudentLogic(self.ctx)

    @cached_property
    def text_prompt(self):
        """Text-prompted segmentation on this Logic's scene (a TextPromptLogic; made on first use: it imports torch)."""
        from .text_prompt_logic import TextPromptLogic  # (it imports this module)

        return TextPromptLogic(self.ctx)

    @cached_property
    def interactive(self):
        """Clicks, boxes and scribbles that build or correct a segment (an InteractiveLogic, interactive_logic.py)."""
        from .interactive_logic import InteractiveLogic

        return InteractiveLogic(self.ctx)

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
                   probability: bool = False, keep_files: bool = False, force: bool = False,
                   brain_mask: str = "auto") -> SceneJob:
        """A job (not started yet) that segments `input_volume` with the model's own spacing and labels. The job refuses
        a scan outside the model's declared domain (another modality, not skull-stripped, ...) unless `force`;
        its warnings are in the job's result ("metrics" -> "domain"). `brain_mask` "auto": a T1 with its skull given to
        a brain model is skull-stripped first by registering the MNI template (the mask comes back as "brain_mask");
        "off": refused instead."""
        require_scalar_volume(input_volume, "input volume")
        card = self.resolve_model(model_id)
        return SceneJob(self.ctx, "segment", {"image": input_volume},
                        {"probability": bool(probability), "force": bool(force), "brain_mask": check_brain_mask(brain_mask)},
                        model=card["id"], device=device, keep_files=keep_files)

    def start(self, input_volume, model_id: str | None = None, device: str = "auto",
              probability: bool = False, keep_files: bool = False, force: bool = False, brain_mask: str = "auto") -> SceneJob:
        """Start segmenting in a worker process and return at once; poll() the job, then finish()."""
        return self.create_job(input_volume, model_id, device, probability, keep_files, force, brain_mask).start()

    def cases_from_volumes(self, volumes, segment: str | None = None) -> list[TrainingCase]:
        """One case per volume; its pixel labels are the segmentation whose reference geometry is that
        volume (the newest such segmentation), if any."""
        by_reference = reference_segmentations(self.ctx.scene)
        return [TrainingCase(v, by_reference.get(v.GetID()), segment or None) for v in volumes]

    @staticmethod
    def model_role(card: dict) -> str:
        """What a model trained from the panel is: "teacher" (reads boxes), "student" (the teacher–student loop's
        box-free model), "text" (reads text prompts) or "segmentation" (SKS, U-Net)."""
        if card.get("input", {}).get("box_channels"):
            return "teacher"
        if card["architecture"]["name"] == "slicerleap.BoxUNet":
            return "student"
        return "text" if card["task"] == "text-segmentation" else "segmentation"

    @staticmethod
    def count_label_kinds(cases: list[TrainingCase]) -> dict[str, int]:
        """How many cases have pixel labels, slice-level labels only, or nothing (shown in the panel)."""
        counts = {"pixel": 0, "slice": 0, "unlabelled": 0}
        for case in cases:
            counts[case.kind()] += 1
        return counts

    def create_training_job(self, cases: list[TrainingCase], model_id: str = "my-sks@1.0.0", model_type: str = "sks",
                            iterations: int | None = None, coarse_iterations: int | None = None, modality: str = "any",
                            device: str = "auto", keep_files: bool = False, **config) -> SceneJob:
        """A job (not started) that trains SKS (or the U-Net baseline) and registers `model_id` in the catalog
        when it succeeds. Unlabelled cases are left out; at least one case needs pixel labels. `iterations`: stage 2;
        `coarse_iterations`: stage 1 (default three quarters of `iterations`); their defaults, ranges and the other
        settings: slicerleap/segmentation/training_methods.py."""
        settings = resolve_training(SKS_TRAINING, model_type, {**config, "iterations": iterations,
                                                               "coarse_iterations": coarse_iterations})
        settings.pop("validation_cases")  # the Lib's cases are all for training
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
        params = {"config": {**config, "model": SKS_TRAINING.method(model_type).name, **settings},
                  "slice_labels": slice_labels, "model_id": model_id, "modality": modality, "label_value": 1}
        inputs = {"pixel_images": [c.volume for c in pixel], "pixel_labels": labels, "slice_images": [c.volume for c in weak]}
        return SceneJob(self.ctx, "train-sks", inputs, params, device=device, keep_files=keep_files)

    def start_training(self, cases: list[TrainingCase], model_id: str = "my-sks@1.0.0", **options) -> SceneJob:
        """Start `create_training_job` in a worker process and return at once; the model is registered when it succeeds."""
        return self.create_training_job(cases, model_id, **options).start()

    def train(self, cases: list[TrainingCase], model_id: str = "my-sks@1.0.0", on_progress=None, timeout: float | None = None,
              **options) -> dict:
        """Blocking form of `create_training_job`: returns the registered model card."""
        return self.create_training_job(cases, model_id, **options).run(on_progress=on_progress, timeout=timeout)["model"]

    def process(self, input_volume, model_id: str | None = None, device: str = "auto", probability: bool = False,
                keep_files: bool = False, on_progress=None, timeout: float | None = None, show_result: bool = True,
                force: bool = False, brain_mask: str = "auto") -> dict:
        """Segment and wait. Returns {"segmentation": vtkMRMLSegmentationNode} plus "probability"
        (vtkMRMLScalarVolumeNode, foreground probability 0..1 on the input grid) when asked for. `show_result`: the
        segmentation over the input in the views (in the Slicer desktop). Progress goes to the application log unless
        `on_progress` takes it."""
        job = self.create_job(input_volume, model_id, device, probability, keep_files, force, brain_mask)
        outputs = job.run(on_progress=on_progress or SlicerLeapCommonLib.logProgress, timeout=timeout)
        if show_result:
            self.show_result(input_volume, outputs)
        return outputs

    @staticmethod
    def show_result(input_volume, outputs: dict) -> None:
        """The input volume in the slice views and the segmentation in 3D (nothing to show outside the desktop)."""
        if SlicerLeapCommonLib.in_slicer_desktop():
            import slicer

            slicer.util.setSliceViewerLayers(background=input_volume, fit=True)
            outputs["segmentation"].CreateClosedSurfaceRepresentation()

    # -- slice-level labels of a volume (slicerleap.scene.slice_labels: an editable table node) -----
    def slice_table(self, volume):
        """The volume's slice-label table, created (every slice "not looked at") on first use."""
        require_scalar_volume(volume, "volume whose slices you label")
        return slice_label_table(self.ctx, volume)

    def mark_lesion_slices(self, volume, first: int, last: int):
        """Stored slices first..last (K, inclusive) show lesion; the other slices keep their labels, "not looked at"
        becoming "no lesion". Returns the table."""
        from slicerleap.segmentation.slice_data import ranges_to_flags

        table = self.slice_table(volume)
        flags = read_slice_labels(table)
        marked = ranges_to_flags([[first, last]], len(flags))
        set_slice_labels(table, np.where(marked > 0, 1, np.maximum(flags, 0)))
        return table

    def mark_no_lesion(self, volume):
        """No slice of the volume shows lesion. Returns the table."""
        table = self.slice_table(volume)
        set_slice_labels(table, np.zeros(table.GetTable().GetNumberOfRows(), dtype=int))
        return table
