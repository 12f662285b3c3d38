"""2.5D slice data: volumes on a model's slice grid, slice-level labels, and (slice ± neighbours) stacks.

A 2.5D model reads slices of one anatomical plane at its own in-plane spacing, keeping the scan's slice
spacing. Volumes are reoriented without resampling (axes permuted/flipped to the nearest RAS layout), so
any acquisition orientation works, then resampled in-plane. Everything goes back to the input grid by
resampling in physical space (`resample_to_reference`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BadInputError
from ..transforms import normalise, resample_to_reference, resample_to_spacing
from ..volume import Volume, move_axis_first, reorient_to_ras_axes

SLICE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}  # voxel axis normal to the plane, after reorientation
MRI_PERCENTILES = {"kind": "percentile", "lower": 0.5, "upper": 99.5}


def median_in_plane_spacing(images) -> float:
    """Median in-plane voxel size (mm) of the training images in the axial plane: the working grid's pixel."""
    return float(np.median([reorient_to_ras_axes(im).spacing[:2] for im in images]))


def slice_input_spec(in_plane_spacing_mm: float, context: int = 1, normalisation: dict | None = None,
                     slice_axis: str = "axial") -> dict:
    """A 2.5D model card's "input": in-plane spacing (mm), the scan's own slice spacing, 2·context+1 slices."""
    return {"spacing_mm": [in_plane_spacing_mm, in_plane_spacing_mm, None], "slice_axis": slice_axis,
            "slice_context": context, "channels": 2 * context + 1, "normalisation": normalisation or MRI_PERCENTILES}


@dataclass
class SliceCase:
    """One scan on the model's slice grid: `grid` the normalised float32 image as a Volume (its geometry
    maps results back); `labels` (K, J, I) class indices or None; `slice_labels` (K,) 1 = lesion present,
    0 = absent, -1 = unknown, or None."""
    grid: Volume
    labels: np.ndarray | None
    slice_labels: np.ndarray | None
    name: str = ""

    @property
    def image(self) -> np.ndarray:
        """(K, J, I) normalised intensities."""
        return self.grid.array

    @property
    def known_slices(self) -> np.ndarray:
        if self.slice_labels is not None:
            return np.flatnonzero(self.slice_labels >= 0)
        return np.arange(self.image.shape[0]) if self.labels is not None else np.zeros(0, dtype=int)

    def slice_targets(self) -> np.ndarray:
        """Per-slice lesion flags: from the pixel labels when present (any foreground class), else the given list."""
        if self.labels is not None:
            return (self.labels.reshape(self.labels.shape[0], -1).max(axis=1) > 0).astype(np.int8)
        return self.slice_labels


def to_slice_grid(volume: Volume, input_spec: dict) -> Volume:
    """Image `volume` with the model's slice plane as k, resampled (linear) in-plane to the card's spacing (mm)."""
    axis = SLICE_AXIS[input_spec.get("slice_axis", "axial")]
    work = reorient_to_ras_axes(volume)
    if axis != 2:
        work = move_axis_first(work, axis)
    spacing = [s if s is not None else work.spacing[n] for n, s in enumerate(input_spec["spacing_mm"])]
    if np.allclose(spacing, work.spacing, rtol=1e-3):
        return work
    return resample_to_spacing(work, spacing, "linear")


def slice_labels_on_grid(slice_labels, volume: Volume, grid: Volume) -> np.ndarray:
    """Per-slice flags given for `volume`'s own K slices, carried to `grid`'s K slices.

    The flags mean "this slice of the scan as stored": they can be moved when the model reads the same
    plane, not when it reads another one."""
    flags = np.asarray(slice_labels, dtype=np.int16).ravel()
    k = volume.array.shape[0]
    if flags.size != k:
        raise BadInputError(f"Slice-level labels list {flags.size} slices but the volume '{volume.metadata.get('name', '')}' has {k}.",
                            "Give one 0/1 flag per slice (or slice ranges within 0..K-1).")
    slabs = volume.with_array(np.broadcast_to((flags + 2)[:, None, None], volume.array.shape[:3]).astype(np.int16))
    moved = resample_to_reference(slabs, grid, "nearest").array.reshape(grid.array.shape[0], -1)
    if np.any(moved.min(axis=1) != moved.max(axis=1)):
        raise BadInputError("Slice-level labels describe the scan's stored slices, but this scan is not stored in the "
                            "plane the model reads.", "Reformat the volume to the model's plane (Resample Scalar Volume or "
                            "Crop Volume with 'interpolated'), or give pixel labels for this case.")
    return moved[:, 0].astype(np.int8) - 2  # 0 outside the scan -> -2: treated like unknown (< 0)


def prepare_case(image: Volume, input_spec: dict, labels: Volume | None = None, label_values=None,
                 slice_labels=None) -> SliceCase:
    """Image (and pixel labels, and/or per-slice flags of the image's own K slices) on the model's slice grid.

    label_values: source label value of each foreground class, in class order (class n ← label_values[n-1]).
    """
    grid = to_slice_grid(image.with_array(image.array.astype(np.float32)), input_spec)
    classes = None
    if labels is not None:
        on_grid = resample_to_reference(labels.with_array(labels.array.astype(np.int16)), grid, "nearest").array
        classes = np.zeros(on_grid.shape, dtype=np.uint8)
        for n, value in enumerate(label_values or [1], start=1):
            classes[on_grid == value] = n
    flags = slice_labels_on_grid(slice_labels, image, grid).clip(-1, 1) if slice_labels is not None else None
    return SliceCase(grid.with_array(normalise(grid.array, input_spec["normalisation"])), classes, flags, image.metadata.get("name", ""))


def neighbour_stack(image: np.ndarray, ks, context: int = 1) -> np.ndarray:
    """(len(ks), 2·context+1, J, I): slices k-context..k+context, clamped at the ends of the scan."""
    ks = np.asarray(ks)
    offsets = np.arange(-context, context + 1)
    index = np.clip(ks[:, None] + offsets[None, :], 0, image.shape[0] - 1)
    return image[index]


def ranges_to_flags(ranges, n_slices: int) -> np.ndarray:
    """[[k1, k2], ...] inclusive slice ranges containing lesion → (n_slices,) 0/1 flags."""
    flags = np.zeros(n_slices, dtype=np.int8)
    for first, last in ranges:
        if not 0 <= first <= last < n_slices:
            raise BadInputError(f"Slice range {first}..{last} is outside the scan's slices 0..{n_slices - 1}.",
                                "Give ranges of slice indices within the volume (0-based, inclusive).")
        flags[first:last + 1] = 1
    return flags


def flags_to_ranges(flags) -> list[list[int]]:
    """Inverse of `ranges_to_flags`."""
    f = np.concatenate([[0], (np.asarray(flags) > 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(f))
    return [[int(a), int(b) - 1] for a, b in zip(edges[::2], edges[1::2])]
