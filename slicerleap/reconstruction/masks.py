"""Cartesian undersampling along the width (phase encoding), as fastMRI defines it: a fully sampled centre of
`center_fraction` of the lines, and the rest at random (each line with the probability that gives the acceleration)
or equispaced from a random offset. fastMRI's defaults: centre fraction 0.08 at 4x, 0.04 at 8x."""
from __future__ import annotations

import numpy as np

from ..errors import BadInputError

MASK_KINDS = ("auto", "equispaced", "random")


def default_center_fraction(acceleration: float) -> float:
    return 0.08 if acceleration <= 4 else 0.04


def undersampling_mask(width: int, acceleration: float, kind: str, center_fraction: float = 0.0, seed: int = 0) -> np.ndarray:
    """(width,) bool; `center_fraction` 0: fastMRI's default for the acceleration."""
    if acceleration < 1:
        raise BadInputError(f"Acceleration {acceleration:g} is below 1.", "Give 1 (fully sampled) or more, e.g. 4 or 8.")
    fraction = center_fraction or default_center_fraction(acceleration)
    low = int(round(width * fraction))
    if low * acceleration > width and acceleration > 1:
        raise BadInputError(f"A centre of {low} lines already samples more than 1/{acceleration:g} of {width} lines.",
                            "Give a smaller --center-fraction or a lower --acceleration.")
    rng = np.random.default_rng(seed)
    mask = np.zeros(width, dtype=bool)
    pad = (width - low + 1) // 2
    mask[pad:pad + low] = True
    if acceleration <= 1:
        return np.ones(width, dtype=bool)
    if kind == "random":
        probability = (width / acceleration - low) / (width - low)
        mask |= rng.uniform(size=width) < probability
    elif kind == "equispaced":
        adjusted = acceleration * (low - width) / (low * acceleration - width)  # so that centre + lines = width / acceleration
        offset = int(rng.integers(0, round(adjusted)))
        mask[np.round(np.arange(offset, width - 1, adjusted)).astype(int)] = True
    else:
        raise BadInputError(f"Unknown mask '{kind}'.", "Use equispaced or random.")
    return mask


def acquired_lines(kspace: np.ndarray) -> np.ndarray:
    """(width,) bool: the lines that hold any signal in (slices, coils, height, width) k-space (an undersampled file
    without a stored mask has zeros in the lines it skipped)."""
    return np.abs(kspace).reshape(-1, kspace.shape[-1]).max(0) > 0


def calibration_width(mask: np.ndarray) -> int:
    """The widest run of acquired lines centred where a centred FFT puts the zero frequency (width // 2): the region
    ESPIRiT calibrates on."""
    centre, width = len(mask) // 2, 0
    while width + 2 <= len(mask) and mask[centre - (width + 2) // 2: centre + (width + 2) - (width + 2) // 2].all():
        width += 2
    return width
