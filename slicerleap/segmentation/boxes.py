"""Bounding boxes of organs and lesions: RAS boxes (as a Slicer ROI or a JSON file gives them) <-> voxel maps.

A box is an oriented cuboid in physical space (RAS, mm): centre, edge lengths and edge directions, so a
box drawn on an oblique scan means the same region on every grid. The networks read one "box map" per
voxel: 0 outside every box, 1 inside an organ box, 2 inside a lesion box (the paper's b_og is map >= 1,
the union of organ and lesion boxes; b_le is map == 2; the student's localisation target is the map
itself, one class per sub-region).

Boxes derived from a labelmap are the circumscribed boxes of the labels along the grid's own axes: one
organ box around organ and lesion voxels together, one box per connected lesion (3D, as an annotator
draws one ROI per lesion; the paper draws per-slice rectangles — a 3D box is their union across slices)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import BadInputError
from ..volume import Volume

ROLES = ("organ", "lesion")
MAP_VALUE = {"organ": 1, "lesion": 2}


@dataclass
class Box:
    """centre (RAS, mm), size (mm along each edge), axes (3x3, column n = RAS unit direction of edge n)."""
    center: np.ndarray
    size: np.ndarray
    role: str = "lesion"
    axes: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self):
        self.center, self.size, self.axes = (np.asarray(a, dtype=float) for a in (self.center, self.size, self.axes))
        if self.role not in ROLES:
            raise BadInputError(f"A box has role '{self.role}'.", f"Use one of: {', '.join(ROLES)}.")
        if self.center.shape != (3,) or self.size.shape != (3,) or self.axes.shape != (3, 3) or not np.all(np.isfinite(self.size)):
            raise BadInputError("A box needs a 3D centre, three edge lengths and a 3x3 orientation.",
                                "Give center [R, A, S], size [x, y, z] in mm and optionally axes (3 unit column vectors).")
        if np.any(self.size <= 0):
            raise BadInputError(f"A {self.role} box has edge lengths {self.size.round(2).tolist()} mm.", "Give every edge a positive length.")

    def to_dict(self) -> dict:
        return {"role": self.role, "center": self.center.round(4).tolist(), "size": self.size.round(4).tolist(),
                "axes": self.axes.round(6).tolist()}


def box_map(grid: Volume, boxes: list[Box]) -> np.ndarray:
    """(K, J, I) uint8 on `grid`: 2 where a voxel centre lies in a lesion box, else 1 in an organ box, else 0."""
    out = np.zeros(grid.array.shape[:3], dtype=np.uint8)
    k, j, i = (np.arange(n, dtype=np.float64) for n in out.shape)
    for box in sorted(boxes, key=lambda b: MAP_VALUE[b.role]):  # lesion boxes last: they win
        # box coordinates of voxel (i, j, k) are separable: c0 + i·u + j·v + k·w per axis
        to_box = box.axes.T @ grid.ijk_to_ras[:3, :3]
        origin = box.axes.T @ (grid.ijk_to_ras[:3, 3] - box.center)
        inside = np.ones(out.shape, dtype=bool)
        for axis in range(3):
            coord = (origin[axis] + k[:, None, None] * to_box[axis, 2] + j[None, :, None] * to_box[axis, 1]
                     + i[None, None, :] * to_box[axis, 0])
            inside &= np.abs(coord) <= box.size[axis] / 2 + 1e-6
        out[inside] = MAP_VALUE[box.role]
    return out


def boxes_from_labels(labels: Volume, organ_values=(1,), lesion_values=(2,)) -> list[Box]:
    """Circumscribed boxes along the grid axes: one organ box around organ + lesion voxels, one box per
    connected (26-neighbour) lesion. A box spans whole voxels (half a voxel beyond the outer centres)."""
    array = np.asarray(labels.array)
    lesion = np.isin(array, lesion_values)
    body = np.isin(array, organ_values) | lesion
    boxes = []
    if body.any() and len(organ_values):
        boxes.append(_box_of_slices(labels, ndimage.find_objects(body.astype(np.uint8))[0], "organ"))
    components, _ = ndimage.label(lesion, structure=np.ones((3, 3, 3)))
    boxes += [_box_of_slices(labels, where, "lesion") for where in ndimage.find_objects(components) if where is not None]
    return boxes


def _box_of_slices(grid: Volume, where: tuple[slice, ...], role: str) -> Box:
    """The box covering voxels where[0] (k) x where[1] (j) x where[2] (i), edges along i, j, k."""
    lo = np.array([where[2].start, where[1].start, where[0].start], dtype=float)
    hi = np.array([where[2].stop, where[1].stop, where[0].stop], dtype=float) - 1
    centre = grid.ijk_to_ras[:3, :3] @ ((lo + hi) / 2) + grid.ijk_to_ras[:3, 3]
    columns = grid.ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    return Box(centre, (hi - lo + 1) * spacing, role, columns / spacing)


def perturb_boxes(boxes: list[Box], rng, organ=(0.95, 1.10, 1 / 20), lesion=(0.90, 1.20, 1 / 10)) -> list[Box]:
    """The paper's imprecise annotator: scale each box by U(lo, hi), then move each face by up to
    `shift` of its edge (organ: x0.95-1.1, 1/20; lesion: x0.9-1.2, 1/10)."""
    out = []
    for box in boxes:
        lo_scale, hi_scale, shift = organ if box.role == "organ" else lesion
        size = box.size * rng.uniform(lo_scale, hi_scale)
        low, high = -size / 2 + rng.uniform(-shift, shift, 3) * size, size / 2 + rng.uniform(-shift, shift, 3) * size
        out.append(Box(box.center + box.axes @ ((low + high) / 2), np.maximum(high - low, 1e-3), box.role, box.axes))
    return out


def read_boxes(path) -> list[Box]:
    """Boxes from JSON: {"boxes": [{"role": "organ"|"lesion", "center": [R, A, S], "size": [mm x3],
    "axes": optional 3x3 columns}]} (RAS, mm)."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["boxes"]
        return [Box(e["center"], e["size"], e.get("role", "lesion"), e.get("axes", np.eye(3))) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"Could not read boxes from '{path}': {exc}.",
                            'Give a JSON file {"boxes": [{"role": "lesion", "center": [R, A, S], "size": [x, y, z]}]} in RAS mm.') from None


def write_boxes(boxes: list[Box], path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"coordinates": "RAS", "units": "mm", "boxes": [b.to_dict() for b in boxes]}, indent=1), encoding="utf-8")
    return path
