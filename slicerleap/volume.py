"""The one image currency of the engine: a voxel array in KJI order with its IJK->RAS matrix.

Every path (scene nodes, files, models, CLI) converts to and from `Volume`; geometry helpers live
here so no other module does matrix arithmetic on image geometry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Volume:
    """A 3D image.

    array: voxel values indexed [k, j, i] (slice, row, column), like Slicer's arrayFromVolume.
    ijk_to_ras: 4x4 matrix mapping voxel index (i, j, k, 1) to RAS millimetres.
    metadata: free-form extras (name, modality, source file) carried along, never geometry.
    """

    array: np.ndarray
    ijk_to_ras: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        self.ijk_to_ras = np.asarray(self.ijk_to_ras, dtype=np.float64)
        if self.ijk_to_ras.shape != (4, 4):
            raise ValueError(f"ijk_to_ras must be 4x4, got {self.ijk_to_ras.shape}")
        if self.array.ndim not in (3, 4):
            raise ValueError(
                f"a Volume is 3D (k, j, i), or 3D with a trailing component axis (k, j, i, c) for vector "
                f"data such as displacement fields; got shape {self.array.shape}."
            )

    @classmethod
    def from_geometry(cls, array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), directions=None, metadata=None):
        """Build from spacing (mm, i/j/k order), origin (RAS mm) and a 3x3 RAS direction matrix (columns = axes)."""
        return cls(array, ijk_to_ras_from_geometry(spacing, origin, directions), dict(metadata or {}))

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        k, j, i = self.array.shape[:3]
        return i, j, k

    @property
    def components(self) -> int:
        """1 for scalar volumes, c for (k, j, i, c) vector volumes."""
        return 1 if self.array.ndim == 3 else self.array.shape[3]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along i, j, k."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def origin(self) -> np.ndarray:
        """RAS position (mm) of voxel (0, 0, 0)."""
        return self.ijk_to_ras[:3, 3].copy()

    @property
    def directions(self) -> np.ndarray:
        """3x3 unit RAS direction of the i, j, k axes (as columns)."""
        return self.ijk_to_ras[:3, :3] / self.spacing

    def voxel_positions_ras(self) -> np.ndarray:
        """RAS position (mm) of every voxel centre, shape (k, j, i, 3)."""
        k, j, i = self.array.shape[:3]
        idx = np.stack(np.meshgrid(np.arange(i), np.arange(j), np.arange(k), indexing="ij"), -1).transpose(2, 1, 0, 3)
        return idx @ self.ijk_to_ras[:3, :3].T + self.ijk_to_ras[:3, 3]

    def ras_to_ijk(self, points_ras) -> np.ndarray:
        """Continuous voxel coordinates (i, j, k) of RAS points (mm), shape (n, 3) for (n, 3) input."""
        points = np.atleast_2d(np.asarray(points_ras, dtype=np.float64))
        return (points - self.ijk_to_ras[:3, 3]) @ np.linalg.inv(self.ijk_to_ras[:3, :3]).T

    def ijk_to_ras_points(self, points_ijk) -> np.ndarray:
        """RAS positions (mm) of voxel coordinates (i, j, k), shape (n, 3) for (n, 3) input."""
        points = np.atleast_2d(np.asarray(points_ijk, dtype=np.float64))
        return points @ self.ijk_to_ras[:3, :3].T + self.ijk_to_ras[:3, 3]

    def crop(self, region: tuple[slice, slice, slice]) -> "Volume":
        """The voxels of a (k, j, i) box of slices, the origin moved so that every voxel keeps its RAS position."""
        start = [s.start or 0 for s in region]  # k, j, i
        matrix = self.ijk_to_ras.copy()
        matrix[:3, 3] = self.ijk_to_ras_points([start[::-1]])[0]
        return Volume(self.array[tuple(region)], matrix, dict(self.metadata))

    def with_array(self, array: np.ndarray, **metadata) -> "Volume":
        """Same geometry, new voxels (e.g. a labelmap or model output on the input grid)."""
        array = np.asarray(array)
        if array.shape[:3] != self.array.shape[:3]:
            raise ValueError(f"array shape {array.shape} differs from the volume's grid {self.array.shape[:3]}")
        return Volume(array, self.ijk_to_ras.copy(), {**self.metadata, **metadata})

    def same_geometry(self, other: "Volume", atol: float = 1e-6) -> bool:
        return self.array.shape[:3] == other.array.shape[:3] and np.allclose(self.ijk_to_ras, other.ijk_to_ras, atol=atol)


def ijk_to_ras_from_geometry(spacing, origin, directions=None) -> np.ndarray:
    """4x4 IJK->RAS from spacing (mm), origin (RAS mm) and RAS direction columns."""
    m = np.eye(4)
    d = np.eye(3) if directions is None else np.asarray(directions, dtype=np.float64)
    m[:3, :3] = d * np.asarray(spacing, dtype=np.float64)[None, :]
    m[:3, 3] = origin
    return m


# RAS <-> LPS: the single place where the two conventions meet (used by the IO layer only).
RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def lps_matrix_to_ras(ijk_to_lps: np.ndarray) -> np.ndarray:
    return RAS_FROM_LPS @ ijk_to_lps


def ras_matrix_to_lps(ijk_to_ras: np.ndarray) -> np.ndarray:
    return RAS_FROM_LPS @ ijk_to_ras


def move_axis_first(volume: Volume, ijk_axis: int) -> Volume:
    """Same image with voxel axis `ijk_axis` (0=i, 1=j, 2=k) as the slice axis k; IJK->RAS follows,
    so every voxel keeps its RAS position."""
    order = [a for a in (0, 1, 2) if a != ijk_axis] + [ijk_axis]  # new i, j, k in old ijk terms
    array_axes = [2 - a for a in reversed(order)]  # array is (k, j, i)
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, :3] = volume.ijk_to_ras[:3, order]
    return Volume(np.transpose(volume.array, array_axes), matrix, dict(volume.metadata))


def restore_axis(volume: Volume, ijk_axis: int) -> Volume:
    """Inverse of `move_axis_first`."""
    order = [a for a in (0, 1, 2) if a != ijk_axis] + [ijk_axis]
    inverse = [order.index(a) for a in (0, 1, 2)]
    array_axes = [2 - a for a in reversed(inverse)]
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, :3] = volume.ijk_to_ras[:3, inverse]
    return Volume(np.transpose(volume.array, array_axes), matrix, dict(volume.metadata))


def nearest_ras_layout(volume: Volume) -> tuple[list[int], list[int]]:
    """For R, A, S: the voxel axis (0=i, 1=j, 2=k) closest to it and the sign (+1 along, -1 against)."""
    d = volume.directions
    axes = list(np.argmax(np.abs(d), axis=1))  # ras row -> best ijk column
    if len(set(axes)) < 3:  # ties on 45° obliques: assign greedily by strength
        axes, free = [0, 0, 0], [0, 1, 2]
        for r in np.argsort(-np.abs(d).max(axis=1)):
            a = max(free, key=lambda c: abs(d[r, c]))
            axes[r] = a
            free.remove(a)
    return [int(a) for a in axes], [1 if d[r, a] >= 0 else -1 for r, a in enumerate(axes)]


def reorient_to_ras_axes(volume: Volume) -> Volume:
    """Same voxels, axes permuted and flipped (no resampling) so that i runs closest to R, j to A and
    k to S (axial slices along k). Every voxel keeps its RAS position, so resampling back is exact."""
    axes, signs = nearest_ras_layout(volume)
    array, matrix = volume.array, volume.ijk_to_ras.copy()
    for a, s in zip(axes, signs):
        if s < 0:
            array = np.flip(array, axis=2 - a)
            matrix[:3, 3] += volume.ijk_to_ras[:3, a] * (volume.shape_ijk[a] - 1)
    order = list(axes)  # new i, j, k in old ijk terms
    array = np.transpose(array, [2 - a for a in reversed(order)] + list(range(3, array.ndim)))
    matrix[:3, :3] = volume.ijk_to_ras[:3, order] * np.array(signs)[None, :]
    return Volume(np.ascontiguousarray(array), matrix, dict(volume.metadata))

