"""The classical refiner, for structures no network has seen (it needs no training):

- a positive click (or scribble) adds the voxels connected to it whose intensity is like the click's: SimpleITK's
  confidence-connected region growing (mean ± `multiplier` x SD of the seed neighbourhood, re-estimated
  `iterations` times), inside the interaction's region only;
- a negative click (or scribble) removes, from the current mask, the region grown the same way from it (a tighter
  interval), only its connected part that holds the click — so the correction stays local;
- a box keeps the object at its centre: the Otsu class (inside the box) of the centre voxel, the connected part of it
  that holds the centre, holes filled.

Defaults chosen on the MNI template (never on a test case: 12 blocks of 60 mm of its white and grey matter, 10
simulated clicks, mean Dice after 1/3/5/10 clicks): multiplier 2.0 for adding, 1.5 for removing (2.5 / 2.5 without the
connected-part rule oscillated: 0.67 / 0.72 / 0.66 / 0.74 against 0.65 / 0.82 / 0.86 / 0.86), 3 iterations, a 2-voxel
seed neighbourhood."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .prompts import BoxPrompt, Click, Scribble

NAME = "grow-from-clicks"
MULTIPLIER = 2.0
REMOVE_MULTIPLIER = 1.5
ITERATIONS = 3
SEED_RADIUS = 2


def grown_region(image: np.ndarray, seeds_kji: np.ndarray, multiplier: float = MULTIPLIER) -> np.ndarray:
    """Bool mask of the voxels connected to the seeds whose intensity is within the seeds' confidence interval."""
    import SimpleITK as sitk

    itk_image = sitk.GetImageFromArray(np.ascontiguousarray(image, dtype=np.float32))
    seeds = [tuple(int(v) for v in s[::-1]) for s in seeds_kji]  # SimpleITK indexes (i, j, k)
    grown = sitk.ConfidenceConnected(itk_image, seedList=seeds, numberOfIterations=ITERATIONS, multiplier=multiplier,
                                     initialNeighborhoodRadius=SEED_RADIUS, replaceValue=1)
    region = sitk.GetArrayFromImage(grown).astype(bool)
    region[tuple(np.asarray(seeds_kji).T)] = True  # a clicked voxel always counts, even when it is an outlier
    return region


def object_in_box(image: np.ndarray) -> np.ndarray:
    """The object at the centre of a box: its Otsu class, the connected part holding the centre, holes filled."""
    from skimage.filters import threshold_otsu

    centre = tuple(s // 2 for s in image.shape)
    if image.size < 8 or np.ptp(image) == 0:
        return np.ones(image.shape, bool)
    bright = image > threshold_otsu(image)
    same_class = bright if bright[centre] else ~bright
    parts, _ = ndimage.label(same_class)
    return ndimage.binary_fill_holes(parts == parts[centre])


class GrowFromClicks:
    """Refiner: the crop's new mask from one prompt (image, mask and seeds all on the crop)."""

    name = NAME

    def __init__(self, multiplier: float = MULTIPLIER, warnings: list[str] | None = None):
        self.multiplier = multiplier
        self.warnings = warnings or []

    def refine(self, image: np.ndarray, mask: np.ndarray, prompt, seeds_kji: np.ndarray, spacing_kji=None, clicks=()) -> np.ndarray:
        """`seeds_kji`: the prompt's voxels in the crop; `clicks`: every click in the crop (unused: growing needs none)."""
        if isinstance(prompt, BoxPrompt):
            return object_in_box(image)
        assert isinstance(prompt, (Click, Scribble))
        if prompt.positive:
            return mask | grown_region(image, seeds_kji, self.multiplier)
        parts, _ = ndimage.label(grown_region(image, seeds_kji, REMOVE_MULTIPLIER) & mask)
        clicked = {int(parts[tuple(s)]) for s in seeds_kji} - {0}
        return mask & ~np.isin(parts, sorted(clicked))
