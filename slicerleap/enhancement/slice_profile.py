"""SR4ZCT's through-plane degradation model along one axis (Shi, Pelt & Batenburg, MLMI 2023, §2).

Positions are in mm along the axis, measured from the start of the first high-resolution pixel:
high-resolution pixel n covers [n p, (n+1) p) (p = in-plane pixel size); low-resolution sample j is a
slice of thickness r (resolution) starting at j d (d = slice spacing, overlap = r - d).

F_down: each low-resolution value is the mean of linear interpolations of the high-resolution profile at
`points` evenly spread inside its slice. F_up: linear interpolation from slice centres back onto pixel
centres at spacing p (edge values held). Both are matrices applied along an axis.
"""
from __future__ import annotations

import numpy as np

from ..errors import BadInputError


# how thick slices were made: box averages (2D multi-slice acquisitions; this module's F_down), or the central
# k-space kept along the slice axis (3D acquisitions; the dmDIP paper's model, in dmdip.py)
DEGRADATIONS = ("slice-profile", "kspace")


def _interp_weights(positions_mm: np.ndarray, centres_mm: np.ndarray) -> np.ndarray:
    """Matrix W (len(positions) x len(centres)): linear interpolation of samples located at
    `centres_mm` (increasing) evaluated at `positions_mm`, with edge values held."""
    w = np.zeros((len(positions_mm), len(centres_mm)))
    if len(centres_mm) == 1:
        w[:, 0] = 1.0
        return w
    x = np.clip(positions_mm, centres_mm[0], centres_mm[-1])
    right = np.clip(np.searchsorted(centres_mm, x, side="right"), 1, len(centres_mm) - 1)
    left = right - 1
    t = (x - centres_mm[left]) / (centres_mm[right] - centres_mm[left])
    rows = np.arange(len(x))
    np.add.at(w, (rows, left), 1.0 - t)
    np.add.at(w, (rows, right), t)
    return w


def low_resolution_count(n_pixels: int, pixel_mm: float, thickness_mm: float, spacing_mm: float) -> int:
    length = n_pixels * pixel_mm
    return max(1, int(np.floor((length - thickness_mm) / spacing_mm + 1e-9)) + 1)


def downsample_matrix(n_pixels: int, pixel_mm: float, thickness_mm: float, spacing_mm: float, points: int = 8,
                      n_low: int | None = None) -> np.ndarray:
    """F_down as a (J x n_pixels) matrix. `n_low`: the measured slice count J (default: the slices that fit in
    n_pixels); the grid of `upsampled_length` pixels, rounded to the nearest pixel, may end up to half a pixel
    before the last slice (a 0.957 mm CT in 3 mm slices), whose missing part then holds the edge value."""
    centres = (np.arange(n_pixels) + 0.5) * pixel_mm
    n_low = n_low or low_resolution_count(n_pixels, pixel_mm, thickness_mm, spacing_mm)
    offsets = (np.arange(points) + 0.5) / points * thickness_mm  # evenly inside each slice
    positions = (np.arange(n_low)[:, None] * spacing_mm + offsets[None, :]).ravel()
    return _interp_weights(positions, centres).reshape(n_low, points, n_pixels).mean(axis=1)


def upsample_matrix(n_low: int, n_pixels: int, pixel_mm: float, thickness_mm: float, spacing_mm: float) -> np.ndarray:
    """F_up as a (n_pixels x n_low) matrix: slice centres j d + r/2 -> pixel centres (n + 0.5) p."""
    slice_centres = np.arange(n_low) * spacing_mm + thickness_mm / 2.0
    return _interp_weights((np.arange(n_pixels) + 0.5) * pixel_mm, slice_centres)


def upsampled_length(n_low: int, pixel_mm: float, thickness_mm: float, spacing_mm: float) -> int:
    """Pixels at spacing p that cover n_low slices of thickness r at spacing d."""
    return max(1, int(round(((n_low - 1) * spacing_mm + thickness_mm) / pixel_mm)))


def degrade(image: np.ndarray, axis: int, pixel_mm: float, thickness_mm: float, spacing_mm: float, points: int = 8) -> np.ndarray:
    """F_up(F_down(image)) along `axis`: what a thick-slice acquisition looks like after linear upsampling."""
    n = image.shape[axis]
    down = downsample_matrix(n, pixel_mm, thickness_mm, spacing_mm, points)
    up = upsample_matrix(down.shape[0], n, pixel_mm, thickness_mm, spacing_mm)
    operator = (up @ down).astype(np.float32)
    moved = np.moveaxis(image, axis, -1)
    return np.moveaxis(moved @ operator.T, -1, axis)


MIN_ANISOTROPY = 1.2  # slice thickness (or spacing) at least this multiple of the pixel size


def check_thick_slices(spacing_mm, thickness_mm: float | None = None, name: str = "volume") -> None:
    """SR4ZCT restores one thick axis of a volume with square in-plane pixels; refuse anything else
    with a clear message. spacing_mm: voxel size along i, j, k."""
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    axis = 2 - int(np.argmax(spacing[::-1]))
    in_plane = np.delete(spacing, axis)
    thick = max(float(spacing[axis]), float(thickness_mm or 0.0))
    if thick < MIN_ANISOTROPY * in_plane.min():
        raise BadInputError(f"'{name}' is nearly isotropic (spacing {np.round(spacing, 3).tolist()} mm): SR4ZCT has no thick slices to restore.",
                            "Use SR4ZCT on volumes whose slices are thicker than the in-plane pixel size, or an interpolator.")
    if not np.isclose(in_plane[0], in_plane[1], rtol=1e-3):
        raise BadInputError(f"SR4ZCT needs square in-plane pixels; '{name}' has {in_plane[0]:g} x {in_plane[1]:g} mm.",
                            "Resample the slices to square pixels first (e.g. the bspline method), or use an interpolator.")
