"""The local-site step of federated training: train a segmentation U-Net on this site's (volume,
segmentation) pairs in a background worker and register the result in the user's model catalog.

Federated rounds (a Flower client that runs this step per round and exchanges weights with a server)
are not implemented yet; this is the training a site will run in each round.
"""
from __future__ import annotations

import re

import slicer
import vtk

from slicerleap.errors import BadInputError
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume

MODEL_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*@[0-9]+\.[0-9]+\.[0-9]+$")  # as in catalog.schema.json


def segment_names(segmentation_node) -> list[str]:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]


def _terminology(segment) -> dict | None:
    """Category and type codes ("scheme^code^meaning") of a segment's terminology entry, if it has them.
    Slicer serialises the entry as context~category~type~typeModifier~anatomicContext~region~regionModifier."""
    entry = vtk.reference("")
    if not segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), entry):
        return None
    parts = str(entry).split("~")
    if len(parts) < 3 or not all(p.count("^") == 2 and p.split("^")[1] for p in parts[1:3]):
        return None
    return {"category": parts[1], "type": parts[2]}


def label_specs(segmentation_node) -> list[dict]:
    """The model card's labels from a segmentation's segments, in order: value n+1, name, colour (#rrggbb)
    and, when the segment has one, its terminology."""
    segmentation = segmentation_node.GetSegmentation()
    specs = []
    for n in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(n)
        spec = {"value": n + 1, "name": segment.GetName(),
                "color": "#" + "".join(f"{round(c * 255):02x}" for c in segment.GetColor())}
        terminology = _terminology(segment)
        if terminology:
            spec["terminology"] = terminology
        specs.append(spec)
    return specs


class FedToolsLogic:
    """Local training jobs on a scene. `ctx` defaults to the process-wide scene context."""

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    def create_local_training_job(self, images: list, segmentations: list, model_id: str = "my-unet@1.0.0",
                                  epochs: int = 10, iterations_per_epoch: int = 10, spacing_mm=(2.0, 2.0, 2.0),
                                  patch=(64, 64, 64), channels=(8, 16, 32, 64), device: str = "auto",
                                  keep_files: bool = False) -> SceneJob:
        """A training job (not started yet) on pairs images[n] / segmentations[n].

        Labels come from the first segmentation's segments (value = position + 1); in every case a segment
        gets the value of the segment with the same name, so the cases may list their segments in any order.
        `spacing_mm`: training voxel size (mm, i/j/k); `patch`: training patch (voxels at that spacing);
        `channels`: U-Net feature channels per level.
        """
        images, segmentations = list(images or []), list(segmentations or [])
        if not images:
            raise BadInputError("No training cases are selected.", "Add at least one (volume, segmentation) pair.")
        if len(images) != len(segmentations):
            raise BadInputError(f"Got {len(images)} volumes but {len(segmentations)} segmentations.",
                                "Give one segmentation per training volume.")
        for n, (image, segmentation) in enumerate(zip(images, segmentations), start=1):
            require_scalar_volume(image, f"volume of case {n}")
            if not isinstance(segmentation, slicer.vtkMRMLSegmentationNode):
                raise BadInputError(f"Case {n} has no segmentation node.", "Select the segmentation drawn on that volume.")
            if segmentation.GetSegmentation().GetNumberOfSegments() == 0:
                raise BadInputError(f"Segmentation '{segmentation.GetName()}' (case {n}) has no segments.",
                                    "Paint the structures to learn in Segment Editor first.")
        if len({image.GetID() for image in images}) != len(images):
            raise BadInputError("The same volume is used for more than one training case.", "Use each volume once.")
        labels = label_specs(segmentations[0])
        values = {spec["name"]: spec["value"] for spec in labels}
        for n, segmentation in enumerate(segmentations[1:], start=2):
            unknown = [name for name in segment_names(segmentation) if name not in values]
            if unknown:
                raise BadInputError(
                    f"Segmentation '{segmentation.GetName()}' (case {n}) has segments {unknown} that the first case's "
                    f"segmentation does not have ({', '.join(values)}).",
                    "Name the segments the same way in every case (or add them to the first case).")
        if not MODEL_ID_PATTERN.match(model_id or ""):
            raise BadInputError(f"'{model_id}' is not a valid model id.",
                                "Use lower-case name@version, e.g. 'liver-unet@1.0.0'.")
        spacing_mm, patch, channels = _triple(spacing_mm, float, "spacing"), _triple(patch, int, "patch"), [int(c) for c in channels]
        if min(spacing_mm) <= 0 or min(patch) < 8 or len(channels) < 2 or min(channels) < 1:
            raise BadInputError(f"Training settings out of range: spacing {spacing_mm} mm, patch {patch}, channels {channels}.",
                                "Use positive spacings, patches of at least 8 voxels and two or more channel counts.")
        if int(epochs) < 1 or int(iterations_per_epoch) < 1:
            raise BadInputError("Epochs and iterations per epoch must be at least 1.", "Use e.g. 10 and 10.")
        params = {"epochs": int(epochs), "iterations_per_epoch": int(iterations_per_epoch), "labels": labels,
                  "model_id": model_id, "spacing_mm": spacing_mm, "patch": patch, "channels": channels,
                  "title": f"{model_id.split('@')[0]} (trained in SlicerLeap FedTools, local site)"}
        inputs = {"images": images,
                  # (segmentation, reference volume, name -> value): a labelmap on the volume's grid
                  "labels": [(segmentation, image, values) for image, segmentation in zip(images, segmentations)]}
        return SceneJob(self.ctx, "train-segmentation", inputs, params, device=device, keep_files=keep_files)

    def start_local_training(self, images: list, segmentations: list, **options) -> SceneJob:
        """Start training in a worker process and return at once; poll() the job, then finish().
        `options` are create_local_training_job's keyword arguments."""
        return self.create_local_training_job(images, segmentations, **options).start()

    def process(self, images: list, segmentations: list, on_progress=None, timeout: float | None = None, **options) -> dict:
        """Blocking form: returns {"model": card} with the registered model's card (id, labels, "_path" of the weights)."""
        return self.create_local_training_job(images, segmentations, **options).run(on_progress=on_progress, timeout=timeout)


def _triple(value, cast, what: str) -> list:
    values = [cast(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3)]
    if len(values) != 3:
        raise BadInputError(f"The {what} {list(value)} does not have three values (i, j, k).", f"Give one {what} or three.")
    return values
