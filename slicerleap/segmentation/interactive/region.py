"""Where an interaction acts: a click reaches `reach_mm` along every axis around it (a cube, clipped to the image);
a box acts inside itself (the grid-aligned region around it, then only the voxels whose centres lie in the
box: on a tilted scan the two differ); a scribble in its bounding box grown by the reach. Nothing outside the region changes."""
from __future__ import annotations

import numpy as np

from ...volume import Volume

Region = tuple[slice, slice, slice]  # on the (k, j, i) array


def around_voxels(volume: Volume, voxels_kji: np.ndarray, reach_mm: float) -> Region:
    """The voxels' bounding box grown by `reach_mm` along each axis (in voxels of that axis), clipped to the image."""
    spacing_kji = volume.spacing[::-1]
    margin = np.ceil(reach_mm / spacing_kji).astype(int)
    low = np.maximum(voxels_kji.min(axis=0) - margin, 0)
    high = np.minimum(voxels_kji.max(axis=0) + margin + 1, volume.array.shape[:3])
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def inside_box(volume: Volume, ras_min, ras_max) -> Region:
    """The voxels whose centres lie in the box given by two opposite RAS corners (any order), clipped to the image."""
    corners = np.array([[x, y, z] for x in (ras_min[0], ras_max[0]) for y in (ras_min[1], ras_max[1])
                        for z in (ras_min[2], ras_max[2])], dtype=float)
    ijk = volume.ras_to_ijk(corners)
    low = np.maximum(np.ceil(ijk.min(axis=0) - 1e-6), 0).astype(int)[::-1]
    high = np.minimum(np.floor(ijk.max(axis=0) + 1e-6) + 1, volume.shape_ijk).astype(int)[::-1]
    return tuple(slice(int(a), int(max(b, a))) for a, b in zip(low, high))


def voxels_in_box(crop: Volume, ras_min, ras_max) -> np.ndarray:
    """Bool (k, j, i) of the crop's voxel centres inside the RAS box (two opposite corners, any order)."""
    low, high = np.minimum(ras_min, ras_max), np.maximum(ras_min, ras_max)
    positions = crop.voxel_positions_ras()
    return np.all((positions >= low - 1e-6) & (positions <= high + 1e-6), axis=-1)


def size_of(region: Region) -> int:
    return int(np.prod([s.stop - s.start for s in region]))
