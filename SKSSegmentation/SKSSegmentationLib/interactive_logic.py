"""Clicks, boxes and scribbles on a scene (Qt-free; the panel and scripts call it): an annotator builds a segment,
or corrects a pseudo-label, one interaction at a time.

A correction session owns a long-lived worker process (slicerleap.jobs.interactive_process: the model loaded once)
and two Markups point lists, "+ clicks" (green) and "- clicks" (red), referenced from the segmentation. Each control
point placed in a list is one click: `apply_new_points()` (the panel calls it when a point is placed) sends it and
writes the changed region into the segment. `undo()` takes back the last interaction and its point; `cancel()` puts
the segment back as it was when the session started; `finish()` keeps it, records provenance ("corrected
(interactive, N clicks)" in the review queue) and removes the point lists. From Slicer's Python console:

    correction = slicer.util.getModuleLogic("SKSSegmentation").interactive.start(getNode("MRHead"))
    correction.click([10.0, -20.0, 35.0])             # or place points in the "+ clicks" list
    correction.click([12.0, -18.0, 35.0], positive=False)
    correction.finish()"""
from __future__ import annotations

import numpy as np

from slicerleap.errors import BadInputError
from slicerleap.jobs.interactive_process import InteractiveSessionProcess
from slicerleap.scene import get_scene_context
from slicerleap.scene.provenance import set_provenance
from slicerleap.scene.segmentations import labels_to_segmentation_node, set_segment_mask, segmentation_node_to_labels
from slicerleap.scene.volumes import node_to_volume, require_scalar_volume_node

POINTS_ROLE = {True: "SlicerLeap.positiveClicks", False: "SlicerLeap.negativeClicks"}
POINT_COLOURS = {True: (0.2, 0.8, 0.2), False: (0.9, 0.2, 0.2)}
DEFAULT_SEGMENT = {"value": 1, "name": "Segment", "color": "#e6194b", "keep_empty": True}


class InteractiveCorrection:
    """One segment of one segmentation node, corrected by clicks on one volume."""

    def __init__(self, ctx, volume_node, segmentation_node, segment_id: str, session: InteractiveSessionProcess):
        self.ctx, self.volume_node, self.segmentation_node, self.segment_id = ctx, volume_node, segmentation_node, segment_id
        self.session = session
        self.before = session.initial.copy()  # what cancel() restores
        self.points = {sign: self._point_list(sign) for sign in (True, False)}
        self._used = {True: 0, False: 0}  # control points of each list already sent
        self._order: list = []  # which list each interaction came from (None: a box or a scribble)
        self.last_seconds: float | None = None

    def _point_list(self, positive: bool):
        name = f"{self.segmentation_node.GetName()} {'+' if positive else '-'} clicks"
        node = self.ctx.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", self.ctx.scene.GenerateUniqueName(name))
        node.CreateDefaultDisplayNodes()
        if node.GetDisplayNode() is not None:
            node.GetDisplayNode().SetSelectedColor(*POINT_COLOURS[positive])
        self.segmentation_node.AddNodeReferenceID(POINTS_ROLE[positive], node.GetID())
        return node

    # -- interactions ---------------------------------------------------------------------------
    def _write(self, region) -> None:
        if region is not None:  # the whole mask: a segment's labelmap is replaced, not patched
            volume = self.session.volume.with_array(self.session.mask_array.astype(np.uint8))
            set_segment_mask(self.segmentation_node, self.segment_id, volume)
        self.last_seconds = self.session.last_seconds

    def apply_new_points(self) -> int:
        """Send every control point placed since the last call (one click each); the number sent."""
        sent = 0
        for positive, node in self.points.items():
            while self._used[positive] < node.GetNumberOfControlPoints():
                ras = np.array(node.GetNthControlPointPositionWorld(self._used[positive]))
                self._used[positive] += 1
                try:
                    self._write(self.session.add_point(ras, positive))
                except BadInputError:
                    node.RemoveNthControlPoint(self._used[positive] - 1)  # a point off the image is not kept
                    self._used[positive] -= 1
                    raise
                self._order.append(positive)
                sent += 1
        return sent

    def click(self, ras, positive: bool = True) -> None:
        """A click at a world RAS position (mm), as a point placed in the + or - list."""
        self.points[positive].AddControlPointWorld(*[float(v) for v in ras])
        self.apply_new_points()

    def add_box(self, roi_node) -> None:
        """The object at the centre of a Markups ROI (its world bounds)."""
        bounds = np.zeros(6)
        roi_node.GetRASBounds(bounds)
        self._write(self.session.add_box(bounds[0::2], bounds[1::2]))
        self._order.append(None)

    def add_scribble(self, ras_points, positive: bool = True) -> None:
        self._write(self.session.add_scribble(ras_points, positive))
        self._order.append(None)

    def undo(self) -> bool:
        """Take back the last interaction (and remove its point); False when there is none."""
        if not self._order:
            return False
        self._write(self.session.undo())
        sign = self._order.pop()
        if sign is not None:
            self._used[sign] -= 1
            self.points[sign].RemoveNthControlPoint(self._used[sign])
        return True

    @property
    def clicks(self) -> int:
        return len(self._order)

    # -- end ------------------------------------------------------------------------------------
    def _close(self) -> None:
        self.session.close()
        for positive, node in self.points.items():
            self.segmentation_node.RemoveNodeReferenceIDs(POINTS_ROLE[positive])
            if node.GetScene() is not None:
                self.ctx.scene.RemoveNode(node)

    def cancel(self) -> None:
        """The segment as it was before the session; the worker and the point lists gone."""
        whole = self.session.volume.with_array(self.before.astype(np.uint8))
        try:
            set_segment_mask(self.segmentation_node, self.segment_id, whole)
        finally:
            self._close()

    def finish(self, queue=None, row: int | None = None) -> dict:
        """Keep the segment. With a review queue row: accept it as "corrected (interactive, N clicks)"; else tag the
        segmentation "corrected" (when it started from a mask) or "manual" (drawn from nothing) with that detail."""
        how = f"interactive, {self.clicks} click{'s' if self.clicks != 1 else ''}"
        model = self.session.ready.get("model")
        self._close()
        if queue is not None and row is not None:
            return queue.accept(row, how=how)
        set_provenance(self.segmentation_node, "corrected" if self.before.any() else "manual", model, detail=how)
        return {"provenance": "corrected" if self.before.any() else "manual", "how": how}


class InteractiveLogic:
    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    def start(self, volume_node, segmentation_node=None, segment: str | None = None, model: str | None = None,
              reach_mm: float | None = None, timeout_s: float | None = None) -> InteractiveCorrection:
        """A click session on `segment` (by name; default the first) of `segmentation_node`, or on a new empty
        segmentation of `volume_node` when none is given."""
        require_scalar_volume_node(volume_node, "The volume to click on")
        volume = node_to_volume(volume_node)
        if segmentation_node is None:
            empty = volume.with_array(np.zeros(volume.array.shape, np.uint8))
            segmentation_node = labels_to_segmentation_node(self.ctx, empty, [DEFAULT_SEGMENT],
                                                            f"{volume_node.GetName()} clicks", reference_node=volume_node)
        segmentation = segmentation_node.GetSegmentation()
        names = [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]
        if not names:
            raise BadInputError(f"Segmentation '{segmentation_node.GetName()}' has no segment.", "Add a segment first (Segment Editor: Add).")
        segment = segment or names[0]
        if segment not in names:
            raise BadInputError(f"Segmentation '{segmentation_node.GetName()}' has no segment '{segment}'.", f"Use one of: {', '.join(names)}.")
        segment_id = segmentation.GetSegmentIdBySegmentName(segment)
        initial = segmentation_node_to_labels(segmentation_node, volume_node, {segment: 1})
        options = {"timeout_s": timeout_s} if timeout_s else {}
        session = InteractiveSessionProcess(volume, model, initial_mask=initial, reach_mm=reach_mm, **options)
        return InteractiveCorrection(self.ctx, volume_node, segmentation_node, segment_id, session)

    def start_on_queue_case(self, queue, row: int, segment: str | None = None, model: str | None = None,
                            reach_mm: float | None = None, timeout_s: float | None = None) -> InteractiveCorrection:
        """"Correct with clicks" for a review-queue case: its pseudo-label's segment (default the first)."""
        case = queue.row(row)
        return self.start(case["volume"], case["segmentation"], segment, model, reach_mm, timeout_s)
