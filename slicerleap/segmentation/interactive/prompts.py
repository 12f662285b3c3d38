"""The prompts an annotator gives, in RAS millimetres (as Slicer's Markups hold them), and their voxels on a grid."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import BadInputError
from ...volume import Volume


@dataclass(frozen=True)
class Click:
    ras: tuple[float, float, float]
    positive: bool = True


@dataclass(frozen=True)
class BoxPrompt:
    ras_min: tuple[float, float, float]
    ras_max: tuple[float, float, float]


@dataclass(frozen=True)
class Scribble:
    ras_points: tuple[tuple[float, float, float], ...]
    positive: bool = True


def voxels_of(volume: Volume, points_ras, what: str = "The click") -> np.ndarray:
    """(n, 3) integer (k, j, i) voxel indices of RAS points; a point off the image is refused."""
    ijk = np.rint(volume.ras_to_ijk(points_ras)).astype(int)
    size = np.array(volume.shape_ijk)
    outside = np.any((ijk < 0) | (ijk >= size), axis=1)
    if outside.any():
        point = np.round(np.atleast_2d(points_ras)[int(np.argmax(outside))], 1).tolist()
        raise BadInputError(f"{what} at RAS {point} mm is outside the image.", "Place it on the image being segmented.")
    return ijk[:, ::-1]


def scribble_voxels(volume: Volume, ras_points) -> np.ndarray:
    """(n, 3) (k, j, i) voxels along the polyline through the points, without gaps (half-voxel steps)."""
    ends = volume.ras_to_ijk(ras_points)
    voxels_of(volume, ras_points, "A scribble point")
    pieces = [ends[:1]]
    for a, b in zip(ends[:-1], ends[1:]):
        steps = max(int(np.ceil(2 * np.abs(b - a).max())), 1)
        pieces.append(a + (b - a) * np.linspace(0, 1, steps + 1)[1:, None])
    ijk = np.unique(np.rint(np.concatenate(pieces)).astype(int), axis=0)
    return ijk[:, ::-1]
