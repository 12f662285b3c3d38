"""A real head CT: the `Cranium.inv3` example of Debian's invesalius-examples (GPL-2), int16 Hounsfield units,
108 x 256 x 256 voxels of 0.957 x 0.957 x 1.5 mm (from its main.plist). Read from the package, never downloaded.
Axes as stored, slices along k; the plist gives no orientation, so RAS-aligned axes are assumed (what a check of
modality, field of view or intensity needs; not for anatomy-aware work)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError
from ..volume import Volume

DEFAULT_FILE = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


def _file() -> Path:
    path = Path(os.environ.get("SLICERLEAP_INVESALIUS_CRANIUM", DEFAULT_FILE))
    if not path.exists():
        raise MissingDependencyError(f"InVesalius's example head CT is not at {path}.",
                                     "apt-get install invesalius-examples (or set SLICERLEAP_INVESALIUS_CRANIUM to Cranium.inv3)")
    return path


def head_ct_available() -> bool:
    try:
        _file()
        return True
    except MissingDependencyError:
        return False


def head_ct() -> Volume:
    import plistlib
    import tarfile

    with tarfile.open(_file()) as archive:
        member = {Path(m.name).name: m for m in archive.getmembers()}
        info = plistlib.loads(archive.extractfile(member["main.plist"]).read())
        raw = archive.extractfile(member[info["matrix"]["filename"]]).read()
    array = np.frombuffer(raw, info["matrix"]["dtype"]).reshape(info["matrix"]["shape"]).copy()
    return Volume.from_geometry(array, spacing=info["spacing"], metadata={"name": "head CT", "modality": "CT"})
