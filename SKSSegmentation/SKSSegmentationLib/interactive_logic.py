"""Clicks, boxes and scribbles on a scene (Qt-free; the panel and scripts call it): an annotator builds a segment,
or corrects a pseudo-label, one interaction at a time.

A correction session owns a long-lived worker process (slicerleap.jobs.interactive_process: the model loaded once)
and two Markups point lists, "+ clicks" (green) and "- clicks" (red), referenced from the segmentation. Each control
point placed in a list is one click: `apply_new_points()` (the panel calls it when a point is placed) sends it and
writes the segment. `undo()` takes back the last interaction and its point (deleting the last point does too);
`cancel()` puts the segment back exactly as it was when the session started; `finish()` keeps it, records provenance
on that segment ("corrected (interactive, N clicks, model)" in the review queue) and removes the point lists. From Slicer's Python console:

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
from slicerleap.scene.segmentations import (copy_segment_labelmap, labels_to_segmentation_node, restore_segment_labelmap,
                                            segmentation_node_to_labels, set_segment_mask)
from slicerleap.scene.volumes import node_to_volume, require_scalar_volume_node

POINTS_ROLE = {True: "SlicerLeap.positiveClicks", False: "SlicerLeap.negativeClicks"}
POINT_COLOURS = {True: (0.2, 0.8, 0.2), False: (0.9, 0.2, 0.2)}
DEFAULT_SEGMENT = {"value": 1, "name": "Segment", "color": "#e6194b", "keep_empty": True}


class InteractiveCorrection:
    """One segment of one segmentation node, corrected by clicks on one volume. The session works on the volume's
    grid: the segment is rasterised there at the start and written back there after each interaction; cancel()
    restores the segment's original labelmap exactly."""

    def __init__(self, ctx, volume_node, segmentation_node, segment_id: str, session: InteractiveSessionProcess,
                 created_segmentation: bool = False):
        self.ctx, self.volume_node, self.segmentation_node, self.segment_id = ctx, volume_node, segmentation_node, segment_id
        self.session = session
        self.created_segmentation = created_segmentation  # made for this session: cancel() removes it
        self.original = copy_segment_labelmap(segmentation_node, segment_id)  # what cancel() restores
        self.points = {sign: self._point_list(sign) for sign in (True, False)}
        self._sent: list = []  # per interaction, oldest first: (positive, control point id), or None for a box / scribble
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
    def _interact(self, call, sent) -> None:
        """One interaction: the session's answer, then the segment; `sent` recorded only once both worked."""
        region = call()
        self._sent.append(sent)  # the session has it now: undo must be able to take it back
        self._write_segment(region)
        self.last_seconds = self.session.last_seconds

    def _write_segment(self, region) -> None:
        """After a change in `region` (None: nothing changed): the session's whole mask, on the volume's grid, into
        the segment (a segment's labelmap is replaced, not patched)."""
        if region is not None:
            volume = self.session.volume.with_array(self.session.mask_array.astype(np.uint8))
            set_segment_mask(self.segmentation_node, self.segment_id, volume)

    def _sent_ids(self) -> set:
        return {entry[1] for entry in self._sent if entry is not None}

    def apply_new_points(self) -> int:
        """Send every control point placed since the last call (one click each; points still being placed are left
        for later); the number sent. A sent point that was deleted since is taken back when it is the last click."""
        last = self._sent[-1] if self._sent else None
        if last is not None and self.points[last[0]].GetControlPointIndexByID(last[1]) < 0:
            self.undo()  # the user deleted the last click (Delete in place mode, the Markups module)
        sent, known = 0, self._sent_ids()
        for positive, node in self.points.items():
            for n in range(node.GetNumberOfControlPoints()):
                point_id = node.GetNthControlPointID(n)
                if point_id in known or node.GetNthControlPointPositionStatus(n) != node.PositionDefined:
                    continue
                ras = np.array(node.GetNthControlPointPositionWorld(n))
                try:
                    self._interact(lambda: self.session.add_point(ras, positive), (positive, point_id))
                except Exception:
                    if (positive, point_id) not in self._sent:  # refused or failed: the point does not stay
                        node.RemoveNthControlPoint(node.GetControlPointIndexByID(point_id))
                    raise
                known.add(point_id)
                sent += 1
        return sent

    def click(self, ras, positive: bool = True) -> None:
        """A click at a world RAS position (mm), as a point placed in the + or - list."""
        self.points[positive].AddControlPointWorld(*[float(v) for v in ras])
        self.apply_new_points()

    def add_box(self, roi_node) -> None:
        """The object at the centre of a Markups ROI (its world bounds; the voxels inside them change)."""
        bounds = np.zeros(6)
        roi_node.GetRASBounds(bounds)
        self._interact(lambda: self.session.add_box(bounds[0::2], bounds[1::2]), None)

    def add_scribble(self, ras_points, positive: bool = True) -> None:
        """A stroke through world RAS points (mm): every voxel it crosses is a click of that sign."""
        self._interact(lambda: self.session.add_scribble(ras_points, positive), None)

    def add_curve(self, curve_node, positive: bool = True) -> None:
        """A stroke drawn as a Markups curve (or open curve): its control points in world RAS."""
        points = [curve_node.GetNthControlPointPositionWorld(n) for n in range(curve_node.GetNumberOfControlPoints())]
        self.add_scribble(np.array(points, dtype=float).reshape(-1, 3), positive)

    def undo(self) -> bool:
        """Take back the last interaction (and remove its point); False when there is none."""
        if not self._sent:
            return False
        self._write_segment(self.session.undo())
        entry = self._sent.pop()
        if entry is not None:
            node = self.points[entry[0]]
            index = node.GetControlPointIndexByID(entry[1])
            if index >= 0:
                node.RemoveNthControlPoint(index)
        return True

    @property
    def clicks(self) -> int:
        return len(self._sent)

    # -- end ------------------------------------------------------------------------------------
    def _close(self) -> None:
        self.session.close()
        for positive, node in self.points.items():
            self.segmentation_node.RemoveNodeReferenceIDs(POINTS_ROLE[positive])
            if node.GetScene() is not None:
                self.ctx.scene.RemoveNode(node)

    def cancel(self) -> None:
        """The segment exactly as it was before the session (a segmentation made for it removed); the worker and the
        point lists gone."""
        try:
            if self.created_segmentation:
                self.ctx.scene.RemoveNode(self.segmentation_node)
            else:
                restore_segment_labelmap(self.segmentation_node, self.segment_id, self.original)
        finally:
            self._close()

    def finish(self, queue=None, row: int | None = None) -> dict:
        """Keep the segment. With a review queue row: accept it as "corrected (interactive, N clicks)". Else, when the
        clicks changed it, tag this segment "corrected" (it started from a mask) or "manual" (drawn from nothing)."""
        how = f"interactive, {self.clicks} click{'s' if self.clicks != 1 else ''}, {self.session.ready.get('model')}"
        changed = not np.array_equal(self.session.mask_array, self.session.initial)
        started_from_mask = bool(self.session.initial.any())
        self._close()
        if queue is not None and row is not None:
            return queue.accept(row, how=how)
        if not changed:
            return {"provenance": None, "how": "unchanged"}
        kind = "corrected" if started_from_mask else "manual"
        set_provenance(self.segmentation_node, kind, detail=how, segment_ids=[self.segment_id])
        return {"provenance": kind, "how": how}


class InteractiveLogic:
    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    def start(self, volume_node, segmentation_node=None, segment: str | None = None, model: str | None = None,
              reach_mm: float | None = None, timeout_s: float | None = None) -> InteractiveCorrection:
        """A click session on `segment` (by name; default the first) of `segmentation_node`, or on a new empty
        segmentation of `volume_node` when none is given."""
        require_scalar_volume_node(volume_node, "The volume to click on")
        volume = node_to_volume(volume_node)
        created = segmentation_node is None
        if created:
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
        try:
            session = InteractiveSessionProcess(volume, model, initial_mask=initial, reach_mm=reach_mm, **options)
        except Exception:
            if created:
                self.ctx.scene.RemoveNode(segmentation_node)
            raise
        try:
            return InteractiveCorrection(self.ctx, volume_node, segmentation_node, segment_id, session, created)
        except Exception:
            session.close()
            raise

    def start_on_queue_case(self, queue, row: int, segment: str | None = None, model: str | None = None,
                            reach_mm: float | None = None, timeout_s: float | None = None) -> InteractiveCorrection:
        """"Correct with clicks" for a review-queue case: its pseudo-label's segment (default the first)."""
        case = queue.row(row)
        return self.start(case["volume"], case["segmentation"], segment, model, reach_mm, timeout_s)
