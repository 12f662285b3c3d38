"""Sample volumes from the nilearn wheel: the MNI ICBM152 2009a (symmetric) T1 template, 1 mm,
197x233x189, skull-stripped, with grey- and white-matter probability maps."""
from __future__ import annotations

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


def mni_tissue_labels(threshold: float = 0.5) -> Volume:
    """1 = grey matter, 2 = white matter: the more probable tissue where its probability > threshold."""
    data = _nilearn_data()
    gm = read_volume(data / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")
    wm = read_volume(data / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
    scale = 255.0 if max(gm.array.max(), wm.array.max()) > 1.5 else 1.0  # stored as 0..255 in the wheel
    g, w = gm.array / scale, wm.array / scale
    labels = np.zeros(g.shape, dtype=np.uint8)
    labels[(g > threshold) & (g >= w)] = 1
    labels[(w > threshold) & (w > g)] = 2
    return gm.with_array(labels, name="MNI152 tissue")
