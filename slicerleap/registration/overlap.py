"""Do the two images overlap at all? A pair that does not (wrong volume picked, a scan of another region, an
affine that ran away) has no answer; it is bad input, not an internal error."""
from __future__ import annotations

import itertools

import numpy as np

from ..errors import BadInputError
from ..volume import Volume


def _ras_box(volume: Volume, transform: np.ndarray = np.eye(4)) -> tuple[np.ndarray, np.ndarray]:
    """RAS bounding box (mm) of the volume's voxel corners, mapped by `transform`."""
    extent = np.asarray(volume.shape_ijk, float) - 0.5
    corners = np.array([[*c, 1.0] for c in itertools.product(*[(-0.5, e) for e in extent])])
    points = (transform @ volume.ijk_to_ras @ corners.T).T[:, :3]
    return points.min(0), points.max(0)


def overlap_fraction(fixed: Volume, moving: Volume, fixed_to_moving: np.ndarray) -> float:
    """Fraction of the fixed image's bounding box that falls inside the moving image's, once the fixed box is mapped
    by `fixed_to_moving` (RAS, the resampling direction)."""
    low, high = _ras_box(fixed, fixed_to_moving)
    m_low, m_high = _ras_box(moving)
    inside = np.clip(np.minimum(high, m_high) - np.maximum(low, m_low), 0, None)
    return float(np.prod(inside) / max(np.prod(high - low), 1e-12))


def check_overlap(fixed: Volume, moving: Volume, fixed_to_moving: np.ndarray, minimum: float = 0.01) -> None:
    fraction = overlap_fraction(fixed, moving, fixed_to_moving)
    if fraction < minimum:
        raise BadInputError(
            f"The fixed and moving images do not overlap ({100 * fraction:.2f} % of the fixed image's box lies in the "
            "moving image after the affine step): they show different regions or are far apart.",
            "Check that both volumes show the same anatomy; align them roughly first (Transforms module), or keep the "
            "affine pre-alignment on.")
