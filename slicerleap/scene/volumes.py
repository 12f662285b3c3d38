"""Scalar volume node <-> Volume. Node geometry is IJK->RAS already, so no axis flips happen here."""
from __future__ import annotations

import numpy as np
import slicer
import vtk
import slicer.util

from ..errors import BadInputError
from ..volume import Volume
from .context import SceneContext


def _vtk_matrix(m: np.ndarray):
    return slicer.util.vtkMatrixFromArray(np.asarray(m, dtype=np.float64))


def node_to_volume(node) -> Volume:
    """Copy a scalar/labelmap volume node's voxels and world geometry into a Volume.

    A linear parent transform is folded into IJK->RAS (the Volume is in world RAS); a non-linear
    one cannot be, so the user is asked to harden it.
    """
    if node is None or node.GetImageData() is None:
        raise BadInputError("The selected volume has no image data.", "Load or select a volume that contains voxels.")
    if node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise BadInputError(
            f"Volume '{node.GetName()}' has {node.GetImageData().GetNumberOfScalarComponents()} components per voxel.",
            "Convert it to a scalar volume first (Vector to Scalar Volume module).",
        )
    return Volume(np.array(slicer.util.arrayFromVolume(node), copy=True), world_ijk_to_ras(node), {"name": node.GetName()})


def world_ijk_to_ras(node) -> np.ndarray:
    """The node's 4x4 IJK->RAS in world RAS: a linear parent transform folded in; a non-linear one cannot be,
    so the user is asked to harden it."""
    ijk_to_ras = slicer.util.arrayFromVTKMatrix(_ijk_to_ras_matrix(node))
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise BadInputError(
                f"Volume '{node.GetName()}' is under a non-linear transform '{parent.GetName()}'.",
                "Harden the transform on the volume (Data module: right-click > Harden transform) and run again.",
            )
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        ijk_to_ras = slicer.util.arrayFromVTKMatrix(to_world) @ ijk_to_ras
    return ijk_to_ras


def _ijk_to_ras_matrix(node):
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return m


def volume_to_node(ctx: SceneContext, volume: Volume, name: str, reference_node=None, labelmap: bool = False, node=None):
    """Add (or update) a scalar/labelmap volume node holding `volume`.

    With `reference_node`, the volume must be on the reference's grid: the new node copies its
    geometry and parent transform and is placed next to it in the subject hierarchy.
    """
    if volume.components != 1:
        raise ValueError("volume_to_node takes scalar volumes; use a grid transform node for displacement fields")
    ijk_to_ras = volume.ijk_to_ras
    if reference_node is not None:
        ref = node_to_volume(reference_node)
        if ref.array.shape != volume.array.shape[:3]:
            raise ValueError(f"output grid {volume.array.shape} differs from the input's {ref.array.shape}")
        ijk_to_ras = slicer.util.arrayFromVTKMatrix(_ijk_to_ras_matrix(reference_node))
    if node is None:
        cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
        node = ctx.scene.AddNewNodeByClass(cls, ctx.scene.GenerateUniqueName(name))
    node.SetIJKToRASMatrix(_vtk_matrix(ijk_to_ras))
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if not labelmap and display is not None and volume.array.size:
        # Window/level from a subsample, set before the voxels arrive: Slicer's automatic window/level
        # histograms the whole volume (0.7 s of 0.8 s for a 512x512x300 CT, benchmarks/RESULTS.md).
        sample = volume.array[:: max(1, volume.array.shape[0] // 64), ::4, ::4]
        low, high = np.percentile(sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample, [0.5, 99.5])
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(float(low), float(high) if high > low else float(low) + 1.0)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(volume.array))
    if reference_node is not None:
        node.SetAndObserveTransformNodeID(reference_node.GetTransformNodeID())
        place_next_to(ctx, node, reference_node)
    return node


def require_scalar_volume_node(node, role: str) -> None:
    """A scalar (not labelmap) volume node with voxels, or a BadInputError naming `role`."""
    if node is None:
        raise BadInputError(f"No {role} is selected.", f"Select the {role} in the module panel.")
    if not isinstance(node, slicer.vtkMRMLScalarVolumeNode) or isinstance(node, slicer.vtkMRMLLabelMapVolumeNode):
        raise BadInputError(f"'{node.GetName()}' is not a scalar volume, so it cannot be the {role}.",
                            f"Select an image volume (not a labelmap or segmentation) as the {role}.")
    if node.GetImageData() is None:
        raise BadInputError(f"The {role} '{node.GetName()}' has no voxels.", "Load the image data, or select another volume.")


def place_next_to(ctx: SceneContext, node, reference_node) -> None:
    """Put `node` in the same subject-hierarchy folder as `reference_node` (the input it came from)."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(ctx.scene)
    if sh is None:
        return
    reference_item = sh.GetItemByDataNode(reference_node)
    if not reference_item:
        return
    parent = sh.GetItemParent(reference_item)
    item = sh.GetItemByDataNode(node)
    if item:
        sh.SetItemParent(item, parent)
    else:  # headless, not every node class gets an item automatically
        sh.CreateItem(parent, node)


def save_node(node, path) -> None:
    """Write a volume node with its MRML storage node (as Slicer's Save dialog does); LPS on disk."""
    storage = node.CreateDefaultStorageNode()
    storage.SetFileName(str(path))
    if hasattr(storage, "SetUseCompression"):
        storage.SetUseCompression(True)
    if not storage.WriteData(node):
        raise RuntimeError(f"Slicer could not write {node.GetName()} to {path}")


def load_node(ctx: SceneContext, path, name: str | None = None, labelmap: bool = False):
    """Read a volume file into a new node through its MRML storage node (as Slicer's Add Data does)."""
    from pathlib import Path

    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = ctx.scene.AddNewNodeByClass(cls, name or Path(path).name.split(".")[0])
    storage = node.CreateDefaultStorageNode()
    ctx.scene.AddNode(storage)
    node.SetAndObserveStorageNodeID(storage.GetID())
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        ctx.scene.RemoveNode(storage)
        ctx.scene.RemoveNode(node)
        raise BadInputError(f"Slicer could not read '{path}'.", "Check that the file is a readable volume.")
    node.CreateDefaultDisplayNodes()
    return node
