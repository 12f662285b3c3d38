"""Where a segment came from, stored on the segment itself: its tags are saved with the scene and in
exported .seg.nrrd files (Segment<N>_Tags). Kinds: "manual" (drawn by a person), "pseudo" (a model's
pseudo-label, unreviewed or accepted unchanged), "corrected" (a pseudo-label an annotator edited).
A pseudo-label also keeps the checksum of its labelmap as the model made it, so an edit is detected
when it is accepted."""
from __future__ import annotations

import datetime
import hashlib

import numpy as np
import vtk

from .segmentations import segmentation_node_to_labels

KINDS = ("manual", "pseudo", "corrected")
TAG = "SlicerLeap.provenance"
MODEL_TAG = "SlicerLeap.model"
TIME_TAG = "SlicerLeap.time"
CHECKSUM_TAG = "SlicerLeap.pseudoChecksum"
DETAIL_TAG = "SlicerLeap.provenanceDetail"  # how, e.g. "interactive, 4 clicks"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def labels_checksum(segmentation_node, reference_node) -> str:
    """sha256 of the segments rasterised on the reference grid (segment n -> n + 1)."""
    return hashlib.sha256(np.ascontiguousarray(segmentation_node_to_labels(segmentation_node, reference_node).array).tobytes()).hexdigest()


def set_provenance(segmentation_node, kind: str, model_id: str | None = None, reference_node=None,
                   detail: str | None = None, segment_ids: list[str] | None = None) -> None:
    """Tag every segment (and the node), or only `segment_ids`, with `kind`, the model id, how (`detail`) and the time (UTC). For "pseudo" with a
    reference volume, also the checksum that later tells an edited pseudo-label from an untouched one."""
    if kind not in KINDS:
        raise ValueError(f"provenance kind must be one of {KINDS}")
    tags = {TAG: kind, TIME_TAG: _now()}
    if detail:
        tags[DETAIL_TAG] = detail
    if model_id:
        tags[MODEL_TAG] = model_id
    if kind == "pseudo" and reference_node is not None:
        tags[CHECKSUM_TAG] = labels_checksum(segmentation_node, reference_node)
    segmentation = segmentation_node.GetSegmentation()
    ids = segment_ids if segment_ids is not None else [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
    for segment_id in ids:
        segment = segmentation.GetSegment(segment_id)
        for key, value in tags.items():
            segment.SetTag(key, value)
        if not detail:
            segment.RemoveTag(DETAIL_TAG)  # an earlier "how" no longer describes it
    if segment_ids is None:  # the node's own tags describe every segment
        for key, value in tags.items():
            segmentation_node.SetAttribute(key, value)


def provenance(segmentation_node) -> dict[str, dict]:
    """Segment name -> its provenance tags (empty for a segment without any)."""
    segmentation = segmentation_node.GetSegmentation()
    out = {}
    for n in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(n)
        tags = {}
        for key in (TAG, MODEL_TAG, TIME_TAG, CHECKSUM_TAG, DETAIL_TAG):
            value = vtk.reference("")
            if segment.GetTag(key, value):
                tags[key] = str(value)
        out[segment.GetName()] = tags
    return out


def was_edited(segmentation_node, reference_node) -> bool:
    """True when a pseudo-label's voxels differ from what the model produced (no checksum: unknown -> True)."""
    stored = segmentation_node.GetAttribute(CHECKSUM_TAG)
    return stored is None or stored != labels_checksum(segmentation_node, reference_node)
