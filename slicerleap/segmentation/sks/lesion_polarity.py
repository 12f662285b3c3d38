"""Lesion polarity: whether each labelled lesion is darker or brighter than the tissue around it, and a copy of a
scan with every lesion's contrast mirrored (dark lesions made bright and bright ones dark).

Why: a few pixel-labelled cases can hold few lesions of one polarity (the bundled SKS model, trained on 5 bright
lesions among 16, found none of the bright held-out ones). A labelled lesion's voxels are I = B + f·(L − B) for
the surrounding tissue level B, lesion level L and partial-volume share f, so 2B − I = B + f·(B − L) is the same
lesion with its contrast reversed, partial volume included. B is the median of a ring around each lesion (outside
the label's one-voxel dilation, which holds the partial-volume edge, and clear of other lesions)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

RING_INNER, RING_OUTER = 1, 3  # voxels: the reflected edge, and how far the tissue sample reaches


def lesion_regions(image: np.ndarray, lesion: np.ndarray):
    """For each connected lesion: (box around it, its voxels in the box, the voxels to reflect = its one-voxel dilation
    less other lesions, surrounding level B). Lesions without surrounding voxels (filling the image) are skipped."""
    components, _ = ndimage.label(lesion)
    any_near = ndimage.binary_dilation(lesion, iterations=RING_INNER)
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        grown = tuple(slice(max(0, s.start - RING_OUTER), s.stop + RING_OUTER) for s in box)
        own = components[grown] == index
        edge = ndimage.binary_dilation(own, iterations=RING_INNER)
        ring = ndimage.binary_dilation(own, iterations=RING_OUTER) & ~any_near[grown]
        if ring.any():
            yield grown, own, edge & ~(lesion[grown] & ~own), float(np.median(image[grown][ring]))


def lesion_polarities(image: np.ndarray, lesion: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """(mask of the lesion in the whole image, "hypo" or "hyper") for each connected lesion."""
    out = []
    for box, own, _, level in lesion_regions(image, lesion):
        mask = np.zeros(lesion.shape, dtype=bool)
        mask[box] = own
        out.append((mask, "hyper" if image[box][own].mean() > level else "hypo"))
    return out


def mirror_lesion_contrast(image: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """A copy of `image` with each lesion (and its partial-volume edge) reflected about its surrounding level."""
    mirrored = image.copy()
    for box, _, edge, level in lesion_regions(image, lesion):
        mirrored[box][edge] = 2 * level - image[box][edge]
    return mirrored
