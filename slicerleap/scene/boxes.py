"""Organ and lesion boxes as ROI markups: drawn by the user (one or many per case) or derived from a
segmentation. Each ROI carries its role ("organ" / "lesion") as an attribute and is referenced from its
volume, so the boxes are saved and reloaded with the scene. Conversion to voxels happens in the engine
(`slicerleap.segmentation.boxes.box_map`), in physical space: any orientation of volume or ROI works."""
from __future__ import annotations

import numpy as np

from ..errors import BadInputError
from ..segmentation.boxes import ROLES, Box, boxes_from_labels
from .context import SceneContext
from .segmentations import segmentation_node_to_labels

REFERENCE_ROLE = "SlicerLeap.boxes"
ROLE_ATTRIBUTE = "SlicerLeap.boxRole"
_COLOURS = {"organ": (0.9, 0.75, 0.3), "lesion": (1.0, 0.2, 0.2)}


def roi_to_box(roi) -> Box:
    """The ROI in world RAS (parent transforms applied), mm; its role from the attribute (default lesion)."""
    center = np.zeros(3)
    roi.GetCenterWorld(center)
    axes = np.zeros((3, 3))
    for n, getter in enumerate((roi.GetXAxisWorld, roi.GetYAxisWorld, roi.GetZAxisWorld)):
        axis = np.zeros(3)
        getter(axis)
        axes[:, n] = axis / np.linalg.norm(axis)
    size = np.zeros(3)
    roi.GetSizeWorld(size)
    role = roi.GetAttribute(ROLE_ATTRIBUTE) or "lesion"
    if role not in ROLES:
        raise BadInputError(f"The box '{roi.GetName()}' has role '{role}'.", f"Set its {ROLE_ATTRIBUTE} attribute to one of {ROLES}.")
    if np.any(size <= 0):
        raise BadInputError(f"The box '{roi.GetName()}' has no volume (size {size.round(1).tolist()} mm).", "Drag its handles to enclose the structure.")
    return Box(center, size, role, axes)


def add_box(ctx: SceneContext, volume_node, box: Box, name: str | None = None):
    """A new ROI node for `box` (RAS, mm), referenced from `volume_node`."""
    roi = ctx.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", ctx.scene.GenerateUniqueName(name or f"{volume_node.GetName()} {box.role} box"))
    roi.SetAttribute(ROLE_ATTRIBUTE, box.role)
    matrix = np.eye(4)
    axes = box.axes * [1, 1, np.sign(np.linalg.det(box.axes)) or 1]  # a box is symmetric: keep the frame right-handed
    matrix[:3, :3], matrix[:3, 3] = axes, box.center
    import slicer.util

    roi.SetCenter(0, 0, 0)
    roi.SetSize(*box.size)
    roi.GetObjectToNodeMatrix().DeepCopy(slicer.util.vtkMatrixFromArray(matrix))
    roi.CreateDefaultDisplayNodes()
    if roi.GetDisplayNode() is not None:
        roi.GetDisplayNode().SetSelectedColor(*_COLOURS[box.role])
    volume_node.AddNodeReferenceID(REFERENCE_ROLE, roi.GetID())
    return roi


def box_nodes(volume_node) -> list:
    return [volume_node.GetNthNodeReference(REFERENCE_ROLE, n) for n in range(volume_node.GetNumberOfNodeReferences(REFERENCE_ROLE))
            if volume_node.GetNthNodeReference(REFERENCE_ROLE, n) is not None]


def volume_boxes(volume_node) -> list[Box]:
    """Every box referenced from the volume, in RAS mm."""
    return [roi_to_box(roi) for roi in box_nodes(volume_node)]


def boxes_from_segmentation(ctx: SceneContext, volume_node, segmentation_node, organ_segments=(), lesion_segments=()) -> list:
    """ROI nodes circumscribing the named segments on the volume's grid: one organ box around the organ and
    lesion segments together, one box per connected lesion. Returns the new ROI nodes."""
    values = {**{name: 1 for name in organ_segments}, **{name: 2 for name in lesion_segments}}
    if not values:
        raise BadInputError("No segments were named to draw boxes around.", "Pick the organ and/or lesion segments.")
    labels = segmentation_node_to_labels(segmentation_node, volume_node, values)
    boxes = boxes_from_labels(labels, organ_values=(1,) if organ_segments else (), lesion_values=(2,))
    if not boxes:
        raise BadInputError(f"The segments {sorted(values)} of '{segmentation_node.GetName()}' are empty on '{volume_node.GetName()}'.",
                            "Paint them first, or draw the boxes by hand.")
    return [add_box(ctx, volume_node, box) for box in boxes]
