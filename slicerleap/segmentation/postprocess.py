"""Label clean-up after inference, driven by the label roles in the model card ("organ", "lesion").

Each step is optional: keep the organ's largest connected component, fill holes (in the organ with its
lesions, or in each lesion when the model has no organ class), remove lesions that do not touch the
organ, remove lesions smaller than a volume (mm³)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import measure, morphology

DEFAULTS = {"largest_organ": True, "fill_holes": True, "lesions_inside_organ": True, "min_lesion_mm3": 0.0}


def postprocess_labels(labels: np.ndarray, card_labels: list[dict], spacing_mm, options: dict | None = None) -> np.ndarray:
    """Cleaned copy of `labels` (label values as in the card); `spacing_mm` is the voxel size (any order, for volumes)."""
    opts = {**DEFAULTS, **(options or {})}
    out = labels.copy()
    organs = [l["value"] for l in card_labels if l.get("role") == "organ"]
    lesions = [l["value"] for l in card_labels if l.get("role") == "lesion"]
    body = np.isin(out, organs + lesions)
    if organs and opts["largest_organ"] and body.any():
        components = measure.label(body, connectivity=1)
        largest = np.argmax(np.bincount(components.ravel())[1:]) + 1
        out[body & (components != largest)] = 0
        body = components == largest
    if opts["fill_holes"]:
        if organs:
            out[ndimage.binary_fill_holes(body) & ~body] = organs[0]
        for value in lesions:
            mask = out == value
            out[ndimage.binary_fill_holes(mask) & ~mask & (np.isin(out, organs) | (out == 0))] = value
    if organs and lesions and opts["lesions_inside_organ"]:
        near_organ = ndimage.binary_dilation(np.isin(out, organs))
        lesion_mask = np.isin(out, lesions)
        components = measure.label(lesion_mask, connectivity=1)
        touching = np.unique(components[near_organ & lesion_mask])
        out[lesion_mask & ~np.isin(components, touching)] = 0
    if lesions and opts["min_lesion_mm3"] > 0:
        voxels = int(np.ceil(opts["min_lesion_mm3"] / float(np.prod(spacing_mm))))
        lesion_mask = np.isin(out, lesions)
        kept = morphology.remove_small_objects(lesion_mask, max_size=voxels - 1, connectivity=1)  # drops sizes <= max_size
        out[lesion_mask & ~kept] = organs[0] if organs else 0
    return out
