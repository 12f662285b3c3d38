"""Label Volume <-> segmentation node, with segment names, colours and terminology from a model card."""
from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support
import slicer.util

from ..errors import BadInputError
from ..volume import Volume
from .context import SceneContext
from .volumes import node_to_volume, place_next_to

# Context names used by Slicer's bundled terminology and anatomy lists.
_CATEGORY_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
_ANATOMY_CONTEXT = "Anatomic codes - DICOM master list"


def terminology_entry(terminology: dict | None) -> str:
    """Slicer's serialised terminology entry from {"category": "SCT^code^meaning", "type": ..., "region": ...}."""
    t = terminology or {}
    return "~".join([
        t.get("context", _CATEGORY_CONTEXT),
        t.get("category", "^^"),
        t.get("type", "^^"),
        t.get("type_modifier", "^^"),
        _ANATOMY_CONTEXT,
        t.get("region", "^^"),
        t.get("region_modifier", "^^"),
    ])


def hex_to_rgb(color: str) -> tuple[float, float, float]:
    c = color.lstrip("#")
    return tuple(int(c[i : i + 2], 16) / 255.0 for i in (0, 2, 4))


def _oriented_labelmap(volume: Volume):
    """vtkOrientedImageData holding the label array with the volume's IJK->RAS."""
    image = slicer.vtkOrientedImageData()
    k, j, i = volume.array.shape
    image.SetDimensions(i, j, k)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR if volume.array.max(initial=0) < 256 else vtk.VTK_SHORT, 1)
    flat = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    flat[:] = np.ascontiguousarray(volume.array).ravel().astype(flat.dtype)
    image.SetImageToWorldMatrix(slicer.util.vtkMatrixFromArray(volume.ijk_to_ras))
    return image


def labels_to_segmentation_node(ctx: SceneContext, labels: Volume, label_specs: list[dict], name: str,
                                reference_node=None, attributes: dict | None = None):
    """Add a segmentation node with one segment per label in `label_specs` that occurs in `labels`
    (or every spec, empty ones included, when `keep_empty` is set in the spec).

    label_specs: [{"value": 1, "name": "Liver", "color": "#rrggbb", "terminology": {...}}, ...]
    All segments share one labelmap layer (as a .seg.nrrd does). Reference geometry and parent
    transform follow `reference_node`, and the node is placed next to it in the subject hierarchy.
    """
    array = np.asarray(labels.array)
    if array.ndim != 3:
        raise ValueError("labels must be a scalar label volume")
    known = {int(s["value"]) for s in label_specs}
    present = set(int(v) for v in np.unique(array)) - {0}
    unknown = present - known
    if unknown:
        raise BadInputError(
            f"The label volume contains values {sorted(unknown)} that the model card does not name.",
            "Add these labels to the model card or remove them from the labelmap.",
        )
    node = ctx.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", ctx.scene.GenerateUniqueName(name))
    node.CreateDefaultDisplayNodes()
    if reference_node is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
        node.SetAndObserveTransformNodeID(reference_node.GetTransformNodeID())
    layer = _oriented_labelmap(_in_segmentation_frame(node, labels))  # labels are in world RAS
    segmentation = node.GetSegmentation()
    for spec in label_specs:
        value = int(spec["value"])
        if value not in present and not spec.get("keep_empty", False):
            continue
        segment = slicer.vtkSegment()
        segment.SetName(spec["name"])
        segment.SetColor(*hex_to_rgb(spec.get("color", "#808080")))
        segment.SetLabelValue(value)
        segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), terminology_entry(spec.get("terminology")))
        segment.AddRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), layer)
        segmentation.AddSegment(segment, spec.get("id", spec["name"].replace(" ", "_")))
    for key, value in (attributes or {}).items():
        node.SetAttribute(key, str(value))
    if reference_node is not None:
        place_next_to(ctx, node, reference_node)
    return node


def segmentation_node_to_labels(segmentation_node, reference_node, segment_values: dict[str, int] | None = None) -> Volume:
    """Rasterise segments onto the reference volume's grid. By default segment n (0-based) gets label n+1;
    `segment_values` maps segment names to label values instead, and segments it does not name are left
    out (e.g. only the lesion of a liver + lesion segmentation). Later segments overwrite earlier ones."""
    reference = node_to_volume(reference_node)
    out = np.zeros(reference.array.shape, dtype=np.int16)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    # both in world RAS: the reference's grid and (below) each segment's labelmap with its node's parent transform applied
    reference_geometry = logic.CreateOrientedImageDataFromVolumeNode(reference_node)
    segmentation = segmentation_node.GetSegmentation()
    for n in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(n)
        segment = segmentation.GetSegment(segment_id)
        seg_name = segment.GetName()
        if segment_values is not None and seg_name not in segment_values:
            continue
        value = segment_values[seg_name] if segment_values is not None else n + 1
        mask_image = slicer.vtkOrientedImageData()
        logic.GetSegmentBinaryLabelmapRepresentation(segmentation_node, segment_id, mask_image)
        on_grid = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
            mask_image, reference_geometry, on_grid, False, False)  # no padding: voxels off the grid are left out
        i, j, k = on_grid.GetDimensions()
        mask = numpy_support.vtk_to_numpy(on_grid.GetPointData().GetScalars()).reshape(k, j, i)
        out[mask == segment.GetLabelValue()] = value  # segments may share one labelmap layer
    return reference.with_array(out, name=segmentation_node.GetName())


def _world_to_segmentation_frame(segmentation_node) -> np.ndarray:
    """4x4 from world RAS to the segmentation node's own frame, where its labelmaps live: the inverse of a linear parent
    transform (identity without one); a non-linear one is refused."""
    parent = segmentation_node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise BadInputError(f"Segmentation '{segmentation_node.GetName()}' is under a non-linear transform.",
                            "Harden the transform on the segmentation (Data module) and start again.")
    to_world = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(to_world)
    return np.linalg.inv(slicer.util.arrayFromVTKMatrix(to_world))


def _in_segmentation_frame(segmentation_node, volume: Volume) -> Volume:
    """`volume` (world RAS, as node_to_volume gives it) in the segmentation node's own frame."""
    return Volume(volume.array, _world_to_segmentation_frame(segmentation_node) @ volume.ijk_to_ras, dict(volume.metadata))


def set_segment_mask(segmentation_node, segment_id: str, mask: Volume) -> None:
    """Replace a segment's voxels with `mask` (a 0/1 Volume in world RAS, on the reference grid as node_to_volume
    gives it), as a Segment Editor edit does."""
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    binary = mask.with_array((np.asarray(mask.array) > 0).astype(np.uint8))
    if not logic.SetBinaryLabelmapToSegment(_oriented_labelmap(_in_segmentation_frame(segmentation_node, binary)),
                                            segmentation_node, segment_id, logic.MODE_REPLACE):
        raise BadInputError(f"Could not write into segment '{segment_id}' of '{segmentation_node.GetName()}'.",
                            "Check that the segment exists and is not locked.")


def copy_segment_labelmap(segmentation_node, segment_id: str):
    """A deep copy of a segment's labelmap (its own grid and extent), for restore_segment_labelmap."""
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    copy = slicer.vtkOrientedImageData()
    logic.GetSegmentBinaryLabelmapRepresentation(segmentation_node, segment_id, copy)  # world RAS, as set_segment_mask
    return copy


def restore_segment_labelmap(segmentation_node, segment_id: str, labelmap) -> None:
    """Put back a labelmap taken by copy_segment_labelmap (the segment's voxels as they were, off-grid parts included)."""
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    matrix = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(matrix)
    local = slicer.vtkOrientedImageData()
    local.DeepCopy(labelmap)
    to_local = _world_to_segmentation_frame(segmentation_node) @ slicer.util.arrayFromVTKMatrix(matrix)
    local.SetImageToWorldMatrix(slicer.util.vtkMatrixFromArray(to_local))
    if not logic.SetBinaryLabelmapToSegment(local, segmentation_node, segment_id, logic.MODE_REPLACE):
        raise BadInputError(f"Could not restore segment '{segment_id}' of '{segmentation_node.GetName()}'.",
                            "Check that the segment exists and is not locked.")


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
