"""Transforms between SimpleITK (LPS) and the engine (RAS): affine matrices and displacement fields.

Conventions: a displacement field is a (k, j, i, 3) Volume of RAS millimetre vectors on the fixed
grid, in the resampling direction (fixed point x maps to x + d(x) in the moving image), which is
also what ITK's DisplacementFieldTransform stores (in LPS).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..volume import RAS_FROM_LPS, Volume
from .image_io import lps_vectors_to_ras, volume_from_sitk, volume_to_sitk
from .output_files import atomic_destination


def sitk_transform_to_ras_matrix(transform: sitk.Transform) -> np.ndarray:
    """4x4 RAS matrix of a linear SimpleITK transform (resampling direction: fixed RAS -> moving RAS)."""
    dim = 3
    lps = np.eye(4)
    # probe the transform at the origin and unit axes: exact for any linear transform type
    origin = np.array(transform.TransformPoint((0.0, 0.0, 0.0)))
    for axis in range(dim):
        e = np.zeros(3)
        e[axis] = 1.0
        lps[:3, axis] = np.array(transform.TransformPoint(tuple(e))) - origin
    lps[:3, 3] = origin
    return RAS_FROM_LPS @ lps @ RAS_FROM_LPS


def displacement_to_sitk_transform(field: Volume) -> sitk.DisplacementFieldTransform:
    """RAS displacement Volume -> ITK displacement field transform (LPS vectors)."""
    lps = field.with_array(lps_vectors_to_ras(field.array.astype(np.float64)))
    image = volume_to_sitk(lps)
    return sitk.DisplacementFieldTransform(sitk.Cast(image, sitk.sitkVectorFloat64))


def write_displacement_transform(field: Volume, path: str | Path) -> Path:
    """Write a displacement field as an ITK transform file (.h5/.tfm) Slicer loads as a grid transform,
    or as a vector volume (.nrrd/.nii.gz/.mha)."""
    path = Path(path)
    with atomic_destination(path) as temporary:
        if path.suffix in (".h5", ".hdf5", ".tfm", ".txt"):
            sitk.WriteTransform(displacement_to_sitk_transform(field), str(temporary))
        else:
            sitk.WriteImage(volume_to_sitk(field.with_array(lps_vectors_to_ras(field.array.astype(np.float32)))), str(temporary))
    return path


def read_displacement(path: str | Path) -> Volume:
    """Read a displacement field written by `write_displacement_transform` (vector volume form) into RAS."""
    vol = volume_from_sitk(sitk.ReadImage(str(path)), {"name": Path(path).stem}, scalar=False)
    return vol.with_array(lps_vectors_to_ras(vol.array.astype(np.float64)))
