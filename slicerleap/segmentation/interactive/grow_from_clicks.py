"""The classical refiner, for structures no network has seen (it needs no training):

- a positive click (or scribble) adds the voxels connected to it whose intensity is like the click's: SimpleITK's
  confidence-connected region growing (mean ± `multiplier` x SD of the seed neighbourhood, re-estimated
  `iterations` times), inside the interaction's region only;
- a negative click (or scribble) removes, from the current mask, the region grown the same way from it;
- a box keeps the object at its centre: the Otsu class (inside the box) of the centre voxel, the connected part of it
  that holds the centre, holes filled.

Defaults chosen on the MNI template's white and grey matter (never on a test case): multiplier 2.5, 3 iterations,
a 2-voxel seed neighbourhood."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .prompts import BoxPrompt, Click, Scribble

NAME = "grow-from-clicks"
MULTIPLIER = 2.5
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
    needs_training = False

    def __init__(self, multiplier: float = MULTIPLIER):
        self.multiplier = multiplier

    def refine(self, image: np.ndarray, mask: np.ndarray, prompt, seeds_kji: np.ndarray) -> np.ndarray:
        if isinstance(prompt, BoxPrompt):
            return object_in_box(image)
        assert isinstance(prompt, (Click, Scribble))
        region = grown_region(image, seeds_kji, self.multiplier)
        return mask | region if prompt.positive else mask & ~region
