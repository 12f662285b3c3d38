"""Prompts built from what a user points at in Slicer: clicks (markup points) or a box (ROI), in RAS mm.

The words are the ones training prompts use (`prompts.describe`), measured on the same axial view of the
model's slice grid, so a click in the upper left of the Red view yields "... in the upper left". Each template
also says which axial slab the prompt is about (patient S, mm) so inference runs where the user pointed.
"""
from __future__ import annotations

import numpy as np

from ...errors import BadInputError
from ...volume import Volume
from ..boxes import Box
from ..slice_data import to_slice_grid
from .prompts import describe, region_from_box, region_from_click


def view_positions(grid: Volume, points_ras) -> np.ndarray:
    """(N, 3) RAS points -> (N, 3) (row, col, k) on the axial view of a RAS slice grid (see `prompt_view.as_viewed`)."""
    points = np.atleast_2d(np.asarray(points_ras, dtype=np.float64))
    ijk = (np.linalg.inv(grid.ijk_to_ras) @ np.c_[points, np.ones(len(points))].T)[:3].T
    k, j, i = grid.array.shape[:3]
    return np.c_[(j - 1) - ijk[:, 1], (i - 1) - ijk[:, 0], ijk[:, 2]]


def _view_grid(volume: Volume, input_spec: dict) -> Volume:
    return to_slice_grid(volume.with_array(volume.array.astype(np.float32)), input_spec)


def _view_shape(grid: Volume) -> tuple[int, int]:
    return int(grid.array.shape[1]), int(grid.array.shape[2])


def _inside(grid: Volume, positions: np.ndarray, what: str) -> None:
    rows, cols = _view_shape(grid)
    if not np.all((positions[:, 0] > -0.5) & (positions[:, 0] < rows - 0.5) & (positions[:, 1] > -0.5) & (positions[:, 1] < cols - 0.5)):
        raise BadInputError(f"The {what} lies outside the volume's axial field of view.", f"Place the {what} on the image.")


def prompt_for_clicks(volume: Volume, input_spec: dict, points_ras, size: str = "small", target: str = "lesion"):
    """(prompt, slab_mm) for one object per click: 'one small round lesion in the upper left', 'two lesions: ...'.
    The slab spans the clicks' S positions."""
    if len(np.atleast_2d(points_ras)) == 0 or np.size(points_ras) == 0:
        raise BadInputError("No point is placed.", "Click on each object to segment (Markups point list).")
    grid = _view_grid(volume, input_spec)
    positions = view_positions(grid, points_ras)
    _inside(grid, positions, "point")
    regions = [region_from_click((r, c), _view_shape(grid), size) for r, c, _ in positions]
    s = np.atleast_2d(np.asarray(points_ras, dtype=np.float64))[:, 2]
    return describe(regions, _view_shape(grid), target), [float(s.min()), float(s.max())]


def prompt_for_box(volume: Volume, input_spec: dict, box: Box, target: str = "lesion"):
    """(prompt, slab_mm) for a box around one object: its position, size and elongation in the axial view; the
    slab is the box's S extent."""
    corners = box.center + (np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T * box.size / 2) @ box.axes.T
    grid = _view_grid(volume, input_spec)
    positions = view_positions(grid, corners)
    _inside(grid, positions.mean(0, keepdims=True), "box")
    region = region_from_box((positions[:, 0].min(), positions[:, 0].max()), (positions[:, 1].min(), positions[:, 1].max()))
    return describe([region], _view_shape(grid), target), [float(corners[:, 2].min()), float(corners[:, 2].max())]
