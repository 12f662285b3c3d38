"""Sample volumes from the nilearn wheel: the MNI ICBM152 2009a (symmetric) T1 template, 1 mm,
197x233x189, skull-stripped, with grey- and white-matter probability maps."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError
from ..io import read_volume
from ..volume import Volume

TISSUE_LABELS = [
    {"value": 1, "name": "Grey matter", "color": "#d7a98c",
     "terminology": {"category": "SCT^85756007^Tissue", "type": "SCT^389080004^Gray matter"}},
    {"value": 2, "name": "White matter", "color": "#f2eadb",
     "terminology": {"category": "SCT^85756007^Tissue", "type": "SCT^389079002^White matter"}},
]

BRAIN_LABEL = {"value": 1, "name": "Brain", "color": "#e8b4a0",
               "terminology": {"category": "SCT^123037004^Anatomical Structure", "type": "SCT^12738006^Brain"}}


def _nilearn_data() -> Path:
    try:
        import nilearn
    except ImportError:
        raise MissingDependencyError("The sample data needs the package 'nilearn' (it ships the MNI template).",
                                     "pip install nilearn==0.13.1") from None
    return Path(nilearn.__file__).parent / "datasets" / "data"


def sample_data_available() -> bool:
    try:
        return (_nilearn_data() / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz").exists()
    except MissingDependencyError:
        return False


def mni_t1() -> Volume:
    vol = read_volume(_nilearn_data() / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    vol.array = vol.array.astype(np.float32)
    vol.metadata.update(name="MNI152 T1", modality="MR")
    return vol


def mni_tissue_probabilities() -> tuple[Volume, Volume]:
    """(grey matter, white matter) probabilities in 0..1 on the template's grid."""
    data = _nilearn_data()
    gm = read_volume(data / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")
    wm = read_volume(data / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
    scale = 255.0 if max(gm.array.max(), wm.array.max()) > 1.5 else 1.0  # stored as 0..255 in the wheel
    return tuple(v.with_array(v.array.astype(np.float32) / scale) for v in (gm, wm))


def mni_tissue_labels(threshold: float = 0.5) -> Volume:
    """1 = grey matter, 2 = white matter: the more probable tissue where its probability > threshold."""
    gm, wm = mni_tissue_probabilities()
    g, w = gm.array, wm.array
    labels = np.zeros(g.shape, dtype=np.uint8)
    labels[(g > threshold) & (g >= w)] = 1
    labels[(w > threshold) & (w > g)] = 2
    return gm.with_array(labels, name="MNI152 tissue")


@lru_cache(maxsize=1)
def mni_brain_template() -> tuple[Volume, Volume]:
    """The MNI T1 in a synthetic head and its brain mask, for brain extraction (registration.brain_extraction)."""
    from ..registration.brain_extraction import synthetic_head
    return synthetic_head(mni_t1(), *(v.array for v in mni_tissue_probabilities()))
