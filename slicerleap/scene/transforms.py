"""Displacement field Volume (RAS mm vectors on the fixed image grid) <-> vtkMRMLGridTransformNode."""
from __future__ import annotations

import numpy as np
import slicer
import vtk
import slicer.util
from vtk.util import numpy_support

from ..volume import Volume
from .context import SceneContext


def displacement_to_grid_transform_node(ctx: SceneContext, field: Volume, name: str,
                                        fixed_node=None, moving_node=None):
    """Add a grid transform whose *resampling* direction (fixed -> moving) is `field`:
    a fixed-space RAS point x maps to x + field(x) in the moving image.

    In Slicer terms this is the transform "from parent", so applying the node to the moving volume
    brings it onto the fixed volume. Node references "fixedVolume" and "movingVolume" record the pair.
    """
    if field.components != 3:
        raise ValueError(f"a displacement field has 3 components, got {field.components}")
    k, j, i, _ = field.array.shape
    grid = vtk.vtkImageData()
    grid.SetDimensions(i, j, k)
    grid.SetOrigin(field.origin.tolist())
    grid.SetSpacing(field.spacing.tolist())
    vectors = numpy_support.numpy_to_vtk(np.ascontiguousarray(field.array, dtype=np.float64).reshape(-1, 3), deep=True)
    vectors.SetNumberOfComponents(3)
    grid.GetPointData().SetScalars(vectors)

    directions = np.eye(4)
    directions[:3, :3] = field.directions
    transform = slicer.vtkOrientedGridTransform()
    transform.SetDisplacementGridData(grid)
    transform.SetGridDirectionMatrix(slicer.util.vtkMatrixFromArray(directions))
    transform.SetInterpolationModeToCubic()

    node = ctx.scene.AddNewNodeByClass("vtkMRMLGridTransformNode", ctx.scene.GenerateUniqueName(name))
    node.SetAndObserveTransformFromParent(transform)
    if fixed_node is not None:
        node.SetNodeReferenceID("fixedVolume", fixed_node.GetID())
    if moving_node is not None:
        node.SetNodeReferenceID("movingVolume", moving_node.GetID())
    return node


def grid_transform_node_to_displacement(node) -> Volume:
    """The resampling displacement field (RAS mm) stored in a grid transform node."""
    transform = node.GetTransformFromParent()
    grid = transform.GetDisplacementGrid()
    i, j, k = grid.GetDimensions()
    array = numpy_support.vtk_to_numpy(grid.GetPointData().GetScalars()).reshape(k, j, i, 3).copy()
    directions = slicer.util.arrayFromVTKMatrix(transform.GetGridDirectionMatrix())[:3, :3]
    return Volume.from_geometry(array, grid.GetSpacing(), grid.GetOrigin(), directions, {"name": node.GetName()})


def load_transform_file(ctx: SceneContext, path, name: str | None = None):
    """Load an ITK transform file (.h5/.tfm, e.g. from `slicerleap register --out-transform`) as a grid
    transform node, the way Slicer's Add Data does, with its storage node."""
    from pathlib import Path

    storage = ctx.scene.AddNewNodeByClass("vtkMRMLTransformStorageNode")
    storage.SetFileName(str(path))
    node = ctx.scene.AddNewNodeByClass("vtkMRMLGridTransformNode", ctx.scene.GenerateUniqueName(name or Path(path).stem))
    if not storage.ReadData(node):
        ctx.scene.RemoveNode(node)
        ctx.scene.RemoveNode(storage)
        raise ValueError(f"could not read a transform from {path}")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node
