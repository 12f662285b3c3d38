"""A NIfTI file checked before ITK reads it: ITK zero-fills a truncated file and turns NaN/Inf into 0, silently.

NRRD and MetaImage readers already refuse a truncated file; NIfTI is the format users most often copy by hand,
so it is the one read twice: once here as a stream (gzip's CRC, the byte count the header promises, non-finite
floats), then by ITK."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import BadInputError

_CHUNK_ITEMS = 1 << 22


def check_nifti_file(path: str | Path) -> None:
    """Refuse a truncated or corrupt NIfTI (.nii or .nii.gz), or one holding NaN/Inf voxels."""
    import nibabel

    path = Path(path)
    try:
        header = nibabel.load(str(path)).header  # the header only: the data stays on disk
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds for a broken header
        raise BadInputError(f"'{path.name}' is not a readable NIfTI file ({type(exc).__name__}: {exc}).",
                            "Check that the file was copied completely, or export it again.") from None
    dtype = header.get_data_dtype()
    count = int(np.prod(header.get_data_shape(), dtype=np.int64))
    offset = int(header.get_data_offset())
    gzipped = path.name.lower().endswith(".gz")
    found, bad, step = 0, 0, _CHUNK_ITEMS * dtype.itemsize
    floating = dtype.kind in "fc"
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as stream:
            stream.read(offset)
            while found < count * dtype.itemsize:
                block = stream.read(min(step, count * dtype.itemsize - found))
                if not block:
                    break
                found += len(block)
                if floating and len(block) % dtype.itemsize == 0:
                    bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(block, dtype))))
            if gzipped:
                stream.read()  # to the end: gzip checks its CRC and length there
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise BadInputError(f"'{path.name}' is truncated or corrupt ({exc}).",
                            "Copy or export the file again; a partial download reads as a half-empty scan.") from None
    if found < count * dtype.itemsize:
        raise BadInputError(
            f"'{path.name}' is truncated: its header promises {count * dtype.itemsize} bytes of voxels, the file holds {found}.",
            "Copy or export the file again; a partial download reads as a half-empty scan.")
    if bad:
        raise BadInputError(f"'{path.name}' contains {bad} NaN or infinite voxels.",
                            "Replace them (e.g. with 0 or a threshold in Slicer) and save the volume again.")
