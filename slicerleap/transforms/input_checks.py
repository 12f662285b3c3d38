"""Checks that turn unusable inputs into clear messages before any model runs."""
from __future__ import annotations

import sys

import numpy as np
import psutil

from ..errors import BadInputError
from ..volume import Volume

MIN_SPACING_MM, MAX_SPACING_MM = 1e-3, 100.0  # micro-CT to the thickest slab; outside, the header is wrong


def memory_estimate(volume: Volume, working_spacing=None, bytes_per_voxel: int = 64) -> int:
    """Peak memory (bytes) of the process that runs the task: what it holds now (the libraries, the volume) plus
    `bytes_per_voxel` per voxel of the working grid (measured per task: benchmarks/memory_estimates.py)."""
    return psutil.Process().memory_info().rss + working_voxels(volume, working_spacing) * bytes_per_voxel


def working_voxels(volume: Volume, working_spacing=None) -> int:
    if working_spacing is None:
        return int(np.prod(volume.shape_ijk))
    return int(np.prod(np.asarray(volume.shape_ijk) * volume.spacing / np.asarray(working_spacing)))


def check_volume_content(volume: Volume, role: str = "input volume", min_size: int = 8) -> None:
    """Refuse vector data, too-thin volumes, implausible spacings, NaN/Inf and constant images (no memory check)."""
    name = volume.metadata.get("name", role)
    if volume.components != 1:
        raise BadInputError(f"The {role} '{name}' has {volume.components} components per voxel.",
                            "Select a scalar (grey-level) volume.")
    small = [n for n, axis in zip("IJK", volume.shape_ijk) if axis < min_size]
    if small:
        raise BadInputError(
            f"The {role} '{name}' is too small along {', '.join(small)} (size {volume.shape_ijk}); "
            f"at least {min_size} voxels per axis are needed (a 2D image or a single slice cannot be processed in 3D).",
            "Select a 3D volume, or stack the slices into a volume first.")
    odd = [f"{s:g}" for s in volume.spacing if not MIN_SPACING_MM <= s <= MAX_SPACING_MM]
    if odd:
        raise BadInputError(
            f"The {role} '{name}' has an implausible voxel spacing ({', '.join(f'{s:g}' for s in volume.spacing)} mm): "
            f"scans lie between {MIN_SPACING_MM:g} and {MAX_SPACING_MM:g} mm.",
            "Correct the spacing in the file's header (Slicer: Volumes module > Volume Information) and save it again.")
    array = volume.array
    if np.issubdtype(array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise BadInputError(f"The {role} '{name}' contains {bad} NaN or infinite voxels.",
                                "Replace them (e.g. Simple Filters > MaskImageFilter or a threshold) and run again.")
    if array.size and array.min() == array.max():
        raise BadInputError(f"The {role} '{name}' is constant (every voxel is {array.flat[0]}): there is no image content.",
                            "Check that the right volume is selected and that it loaded completely.")


def check_scalar_volume(volume: Volume, role: str = "input volume", min_size: int = 8,
                        working_spacing=None, bytes_per_voxel: int = 64) -> None:
    """Refuse vector data, too-thin volumes, NaN/Inf, constant images, and volumes that will not fit in memory.

    bytes_per_voxel: peak memory the task needs per voxel of its working grid (float32 copies,
    network activations); the estimate is compared with the memory available now.
    """
    check_volume_content(volume, role, min_size)
    name = volume.metadata.get("name", role)
    need = memory_estimate(volume, working_spacing, bytes_per_voxel)
    print(f"memory estimate ({role}): {need} bytes for {working_voxels(volume, working_spacing)} working voxels",
          file=sys.stderr, flush=True)  # benchmarks/memory_estimates.py reads it
    available = psutil.virtual_memory().available + psutil.Process().memory_info().rss
    if need > available:
        raise BadInputError(
            f"The {role} '{name}' needs about {need / 2**30:.1f} GiB of memory at the model's resolution, "
            f"but only {available / 2**30:.1f} GiB are free.",
            "Crop it to the region of interest (Crop Volume module) or close other programs.")
