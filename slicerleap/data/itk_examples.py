"""A second real brain: the head T1 of ITK's k-means example (Debian package insighttoolkit5-examples),
128x128x62 at 2x2x3 mm, acquired coronally, with ITK's skull mask and k-means tissue classes (4 = CSF,
5 = grey matter, 6 = white matter inside the brain). A different subject and scanner from the MNI
template, so a pair of the two is a real inter-subject registration. The tissue classes come from
k-means clustering, not from an expert: good enough to compare methods, not ground truth."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError
from ..io import read_volume
from ..volume import Volume

DEFAULT_FOLDER = Path("/usr/share/doc/insighttoolkit5-examples/examples/Data")


def _folder() -> Path:
    folder = Path(os.environ.get("SLICERLEAP_ITK_EXAMPLES", DEFAULT_FOLDER))
    if not (folder / "KmeansTest_T1UCharRaw.nii.gz").exists():
        raise MissingDependencyError(f"ITK's example brain is not in {folder}.",
                                     "apt-get install insighttoolkit5-examples (or set SLICERLEAP_ITK_EXAMPLES to its Data folder)")
    return folder


def itk_example_available() -> bool:
    try:
        _folder()
        return True
    except MissingDependencyError:
        return False


def itk_example_brain() -> tuple[Volume, Volume]:
    """(skull-stripped T1, tissue labels 1 = grey matter, 2 = white matter), as the MNI template's labels."""
    folder = _folder()
    t1 = read_volume(folder / "KmeansTest_T1UCharRaw.nii.gz")
    classes = read_volume(folder / "KmeansTest_T1KmeansPrelimSegmentation.nii.gz").array
    brain = classes >= 4
    labels = np.zeros(classes.shape, np.uint8)
    labels[classes == 5] = 1
    labels[classes == 6] = 2
    image = t1.with_array((t1.array.astype(np.float32) * brain), name="ITK k-means example T1")
    image.metadata["modality"] = "MR"
    return image, t1.with_array(labels, name="ITK k-means example tissue")
