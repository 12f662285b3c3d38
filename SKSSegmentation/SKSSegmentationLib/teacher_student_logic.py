"""Boxes -> teacher -> pseudo-labels -> review -> student, on a scene (Qt-free; the panel and scripts call it).

Cases with masks ("strong") are a volume and a segmentation whose organ and lesion segments are named;
box-labelled cases ("weak") are volumes with ROI boxes (slicerleap.scene.boxes). Every step is a job:
train a teacher, pseudo-label the weak cases into a review queue, train (or fine-tune) a student on the
manual masks + accepted pseudo-labels (corrected or not) + the teacher's soft labels of the cases still
waiting for review; the student is registered as a new model version."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slicerleap.errors import BadInputError
from slicerleap.models import get_catalog
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.boxes import add_box, boxes_from_segmentation, volume_boxes
from slicerleap.scene.provenance import set_provenance
from slicerleap.scene.segmentations import segment_names
from slicerleap.scene.volumes import node_to_volume, require_scalar_volume_node as require_scalar_volume
from slicerleap.segmentation.training_methods import TEACHER_STUDENT, resolve_training

from .logic import reference_segmentations
from .review_queue import ReviewQueue


@dataclass
class StrongCase:
    """A case with a mask: the segmentation's organ segment(s) and lesion segment(s) by name."""
    volume: object
    segmentation: object
    organ_segments: tuple = ("Organ",)
    lesion_segments: tuple = ("Lesion",)

    def label_input(self) -> tuple:
        names = segment_names(self.segmentation)
        missing = [s for s in (*self.organ_segments, *self.lesion_segments) if s not in names]
        if missing:
            raise BadInputError(f"'{self.segmentation.GetName()}' has no segment named {', '.join(map(repr, missing))} "
                                f"(it has: {', '.join(names)}).", "Name the organ and lesion segments of each labelled case.")
        return (self.segmentation, self.volume, {**{s: 1 for s in self.organ_segments}, **{s: 2 for s in self.lesion_segments}})


def next_version(model_id: str) -> str:
    """'name@1.2.0' -> the next minor version not yet in the catalog ('name@1.3.0')."""
    name, version = model_id.split("@") if "@" in model_id else (model_id, "1.0.0")
    major, minor, _ = (int(x) for x in version.split("."))
    known = {c["id"] for c in get_catalog().cards()}
    minor += 1
    while f"{name}@{major}.{minor}.0" in known:
        minor += 1
    return f"{name}@{major}.{minor}.0"


def _config(method: str, iterations: int | None, config: dict) -> dict:
    """The job's config: `config` (expert settings) with the declared parameters checked and defaulted
    (slicerleap/segmentation/training_methods.py)."""
    settings = resolve_training(TEACHER_STUDENT, method, {**config, "iterations": iterations})
    settings.pop("validation_cases")  # the Lib's validation cases come as cases, not as a count
    return {**config, **settings}


def _boxes_param(volume_node, required: bool) -> list[dict] | None:
    boxes = volume_boxes(volume_node)
    if required and not boxes:
        raise BadInputError(f"'{volume_node.GetName()}' has no boxes.", "Draw an organ and/or lesion box (ROI) on it, or derive them from a segmentation.")
    return [b.to_dict() for b in boxes] or None


class TeacherStudentLogic:
    """The teacher–student loop on a scene (SKSSegmentationLogic.teacher_student: the module Logic's scene)."""

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    @staticmethod
    def split_cases(cases, organ_segment: str = "Organ", lesion_segment: str = "Lesion") -> tuple[list[StrongCase], list]:
        """(the cases with a segmentation as StrongCase, the volumes of the others: the box-labelled ones) of cases
        with `volume` and `segmentation` (SKSSegmentationLogic.cases_from_volumes)."""
        strong = [StrongCase(c.volume, c.segmentation, (organ_segment,), (lesion_segment,)) for c in cases if c.segmentation]
        return strong, [c.volume for c in cases if c.segmentation is None]

    # -- boxes (ROI nodes referenced from the volume: slicerleap.scene.boxes) ------------------------
    def add_box(self, volume, role: str = "lesion"):
        """An ROI box (organ or lesion) centred in `volume`, a quarter of its extent (an organ box: half); drag its
        handles to fit."""
        from slicerleap.segmentation.boxes import Box

        require_scalar_volume(volume, "volume to draw a box on")
        v = node_to_volume(volume)
        extent = np.array(v.array.shape[::-1]) * v.spacing
        centre = v.ijk_to_ras[:3, :3] @ ((np.array(v.array.shape[::-1]) - 1) / 2) + v.ijk_to_ras[:3, 3]
        return add_box(self.ctx, volume, Box(centre, extent / (2 if role == "organ" else 4), role))

    def boxes_from_segmentation(self, volume, segmentation=None, organ_segment: str = "Organ", lesion_segment: str = "Lesion"):
        """An organ box around the organ segment and one box per lesion of the lesion segment (those it has), of
        `segmentation` or else the newest segmentation drawn on the volume."""
        require_scalar_volume(volume, "volume to draw boxes on")
        if segmentation is None:
            segmentation = reference_segmentations(self.ctx.scene).get(volume.GetID())
        if segmentation is None:
            raise BadInputError(f"'{volume.GetName()}' has no segmentation to draw boxes around.",
                                "Segment the organ and lesion in Segment Editor first, or draw the boxes by hand.")
        names = segment_names(segmentation)
        return boxes_from_segmentation(self.ctx, volume, segmentation, [organ_segment] if organ_segment in names else [],
                                       [lesion_segment] if lesion_segment in names else [])

    def create_teacher_job(self, cases: list[StrongCase], model_id: str = "my-teacher@1.0.0", iterations: int | None = None,
                           device: str = "auto", keep_files: bool = False, **config) -> SceneJob:
        """Train a teacher annotator on the cases with masks (boxes: their ROIs, else derived from the masks)."""
        if not cases:
            raise BadInputError("The teacher needs at least one case with organ and lesion segments.", "Segment one or more cases first.")
        for c in cases:
            require_scalar_volume(c.volume, "training volume")
        params = {"config": _config("teacher", iterations, config), "model_id": model_id,
                  "boxes": [_boxes_param(c.volume, required=False) for c in cases]}
        inputs = {"images": [c.volume for c in cases], "labels": [c.label_input() for c in cases]}
        return SceneJob(self.ctx, "train-teacher", inputs, params, device=device, keep_files=keep_files)

    def create_pseudolabel_job(self, volumes: list, teacher_id: str, device: str = "auto", keep_files: bool = False) -> SceneJob:
        """Pseudo-label every box-labelled volume with the teacher (one job); see `queue_pseudo_labels`."""
        if not volumes:
            raise BadInputError("No box-labelled volumes were given.", "Draw boxes on the cases to pseudo-label.")
        for v in volumes:
            require_scalar_volume(v, "box-labelled volume")
        params = {"boxes": [_boxes_param(v, required=True) for v in volumes], "names": [v.GetName() for v in volumes]}
        return SceneJob(self.ctx, "pseudolabel", {"images": list(volumes)}, params, model=get_catalog().get(teacher_id)["id"],
                        device=device, keep_files=keep_files)

    def queue_pseudo_labels(self, job: SceneJob, queue: ReviewQueue | None = None) -> ReviewQueue:
        """After a finished pseudolabel job: its segmentations enter the review queue (new or given), tagged "pseudo"."""
        queue = queue or ReviewQueue.find(self.ctx) or ReviewQueue.create(self.ctx)
        volumes = job.inputs["images"]
        for n, volume in enumerate(volumes):
            node = job.output_nodes[f"pseudo_{n}"]
            queue.add(volume, node, float(node.GetAttribute("SlicerLeap.uncertainty")), node.GetAttribute("SlicerLeap.model"))
        return queue

    def pseudolabel(self, volumes: list, teacher_id: str, on_progress=None, timeout: float | None = None, **options) -> ReviewQueue:
        """Blocking: pseudo-label `volumes` and return the review queue holding them."""
        job = self.create_pseudolabel_job(volumes, teacher_id, **options)
        job.run(on_progress=on_progress, timeout=timeout)
        return self.queue_pseudo_labels(job)

    @staticmethod
    def mark_manual(segmentation_node) -> None:
        """Tag a hand-drawn segmentation's segments "manual"."""
        set_provenance(segmentation_node, "manual")

    def create_student_job(self, strong: list[StrongCase], queue: ReviewQueue | None, teacher_id: str | None,
                           model_id: str = "my-student@1.0.0", start_from: str | None = None, iterations: int | None = None,
                           device: str = "auto", keep_files: bool = False, **config) -> SceneJob:
        """Train the student on manual masks + accepted queue cases (as labels) + pending/skipped queue cases
        (the teacher's soft labels); `start_from` fine-tunes a previous student. Rejected cases are left out."""
        accepted, waiting = queue.training_split() if queue is not None else ([], [])
        labelled = [c.label_input() for c in strong]
        for r in accepted:  # an annotator may have erased a wrong lesion: map only the segments left
            names = segment_names(r["segmentation"])
            values = {label["name"]: label["value"] for label in get_catalog().get(r["model"])["labels"]}
            mapping = {n: v for n, v in values.items() if n in names}
            if names and not mapping:
                raise BadInputError(f"The accepted pseudo-label '{r['segmentation'].GetName()}' has none of the segments "
                                    f"{', '.join(values)} (it has: {', '.join(names)}).", "Keep the pseudo-label's segment names when editing.")
            labelled.append((r["segmentation"], r["volume"], mapping))
        if not labelled and not waiting:
            raise BadInputError("The student has nothing to learn from.", "Give cases with masks, or pseudo-label box-labelled cases first.")
        if waiting and not teacher_id:
            raise BadInputError(f"{len(waiting)} queued case(s) still need the teacher's pseudo-labels, but no teacher was given.",
                                "Pick the teacher that made the pseudo-labels, or review every case first.")
        volumes = [c.volume for c in strong] + [r["volume"] for r in accepted]
        params = {"config": _config("student", iterations, config), "model_id": model_id,
                  "boxes": [_boxes_param(v, required=False) for v in volumes],
                  "pseudo_boxes": [_boxes_param(r["volume"], required=True) for r in waiting]}
        if teacher_id:
            params["teacher"] = get_catalog().get(teacher_id)["id"]
        if start_from:
            params["start_from"] = get_catalog().get(start_from)["id"]
        inputs = {"images": volumes, "labels": labelled, "pseudo_images": [r["volume"] for r in waiting]}
        return SceneJob(self.ctx, "train-student", inputs, params, device=device, keep_files=keep_files)

    def fine_tune_on_corrections(self, strong: list[StrongCase], queue: ReviewQueue, teacher_id: str, student_id: str,
                                 **options) -> SceneJob:
        """The panel's "fine-tune on corrections": a job that fine-tunes `student_id` into its next version."""
        return self.create_student_job(strong, queue, teacher_id, next_version(student_id), start_from=student_id, **options)

    def create_next_student_job(self, strong: list[StrongCase], teacher_id: str | None, student_id: str, **options) -> SceneJob:
        """The panel's student button, on the scene's review queue: fine-tune `student_id` into its next version when
        the catalog has it, else train it (create_student_job's `options`)."""
        queue = ReviewQueue.find(self.ctx)
        if student_id in {c["id"] for c in get_catalog().cards()}:
            return self.fine_tune_on_corrections(strong, queue, teacher_id, student_id, **options)
        return self.create_student_job(strong, queue, teacher_id, student_id, **options)

    # -- the scene's review queue (the newest) -------------------------------------------------------
    def review_queue(self) -> ReviewQueue:
        """The scene's review queue (the newest one)."""
        queue = ReviewQueue.find(self.ctx)
        if queue is None:
            raise BadInputError("The scene has no review queue.", "Pseudo-label box-labelled cases first.")
        return queue

    def queue_counts(self) -> dict[str, int] | None:
        """Cases per review status; None while the scene has no queue."""
        queue = ReviewQueue.find(self.ctx)
        return None if queue is None else queue.counts()

    def next_case(self) -> dict | None:
        """The queue's next case to review (ReviewQueue.next_case); None when there is none."""
        queue = ReviewQueue.find(self.ctx)
        return None if queue is None else queue.next_case()

    def decide(self, row: int, decision: str) -> dict:
        """Record "accept", "skip" or "reject" for the queue's row."""
        if decision not in ("accept", "skip", "reject"):
            raise BadInputError(f"Unknown review decision '{decision}'.", "Use accept, skip or reject.")
        return getattr(self.review_queue(), decision)(row)
