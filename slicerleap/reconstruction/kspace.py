"""Raw Cartesian k-space as users bring it: the fastMRI HDF5 layout (dataset `kspace`, slices x coils x height x width
complex, centred, optional `mask` along the width and `ismrmrd_header`), single-coil (slices x height x width), or a
NumPy `.npy` of the same shape with a JSON file beside it (`scan.npy` + `scan.json`: {"spacing_mm": [x, y, z],
"ijk_to_ras": 4x4 (optional)}). Everything else is refused with what to do.

Geometry: spacing from the ISMRMRD header's reconstruction space (field of view / matrix), or the JSON, or the user's
`spacing`, else 1 mm isotropic; fastMRI files carry no position or orientation, so those volumes sit at the origin
with identity directions, and the output says where its geometry came from."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from ..io.kspace_files import sidecar_of
FIX_LAYOUT = ("Give fastMRI-layout HDF5 (dataset 'kspace': slices x coils x height x width, complex) or a .npy of that shape "
              "(slices x height x width for one coil) with a .json beside it.")


@dataclass
class KSpace:
    data: np.ndarray  # (slices, coils, height, width) complex64; one coil: coils = 1
    mask: np.ndarray | None  # (width,) bool: the phase-encoding lines that were acquired, when the file says
    spacing_mm: tuple[float, float, float] | None  # (width, height, slice) axes of the image = volume I, J, K
    recon_size: tuple[int, int] | None  # (height, width) the image is centre-cropped to (fastMRI: readout oversampling)
    ijk_to_ras: np.ndarray | None
    geometry_source: str
    multicoil: bool


def _check_array(data, path: Path) -> np.ndarray:
    if not np.iscomplexobj(data):
        raise BadInputError(f"'{path.name}' holds real-valued data ({data.dtype}), not complex k-space.",
                            "Give the raw complex k-space; a magnitude image cannot be reconstructed again.")
    if data.ndim not in (3, 4):
        raise BadInputError(f"'{path.name}' has {data.ndim} dimensions {tuple(data.shape)}; k-space here has 3 (slices x height x "
                            f"width, one coil) or 4 (slices x coils x height x width).", FIX_LAYOUT)
    if min(data.shape) < 1 or min(data.shape[-2:]) < 8:
        raise BadInputError(f"'{path.name}' is too small to be k-space: {tuple(data.shape)}.", FIX_LAYOUT)
    if not np.all(np.isfinite(data)):
        raise BadInputError(f"'{path.name}' contains NaN or infinite samples.", "Export the k-space again from the scanner data.")
    data = np.asarray(data, dtype=np.complex64)
    return data[:, None] if data.ndim == 3 else data


def _ismrmrd_geometry(xml_text: str) -> tuple[tuple[float, float, float], tuple[int, int]] | None:
    """(spacing (width, height, slice) mm, recon (height, width)) from the header's reconSpace, or None."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return None
    ns = {"m": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
    prefix = "m:" if ns else ""
    recon = root.find(f".//{prefix}encoding/{prefix}reconSpace", ns)
    if recon is None:
        return None
    try:
        matrix = [int(recon.find(f"{prefix}matrixSize/{prefix}{a}", ns).text) for a in "xyz"]
        fov = [float(recon.find(f"{prefix}fieldOfView_mm/{prefix}{a}", ns).text) for a in "xyz"]
    except (AttributeError, TypeError, ValueError):
        return None
    # ISMRMRD x is the readout (fastMRI's height), y the phase encoding (the width, where masks act), z the slice
    return (fov[1] / matrix[1], fov[0] / matrix[0], fov[2] / max(matrix[2], 1)), (matrix[0], matrix[1])


def _read_h5(path: Path) -> KSpace:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise BadInputError(f"'{path.name}' is not a readable HDF5 file ({exc}).", "Check that the file was copied completely.") from None
    with handle:
        if "kspace" not in handle:
            raise BadInputError(f"'{path.name}' has no dataset 'kspace' (it has: {', '.join(handle.keys()) or 'nothing'}).", FIX_LAYOUT)
        raw = handle["kspace"][()]
        multicoil = raw.ndim == 4
        data = _check_array(raw, path)
        mask = np.asarray(handle["mask"][()]).astype(bool).reshape(-1) if "mask" in handle else None
        header = handle["ismrmrd_header"][()] if "ismrmrd_header" in handle else None
    if mask is not None and mask.size != data.shape[-1]:
        raise BadInputError(f"'{path.name}': its mask has {mask.size} lines but the k-space is {data.shape[-1]} wide.",
                            "Use --mask equispaced|random to undersample again, or fix the file's mask.")
    geometry = _ismrmrd_geometry(header.decode() if isinstance(header, bytes) else str(header)) if header is not None else None
    spacing, recon = geometry if geometry else (None, None)
    return KSpace(data, mask, spacing, recon, None, "the file's ISMRMRD header (spacing; fastMRI files carry no position or "
                  "orientation: at the origin, identity directions)" if geometry else "", multicoil)


def _read_npy(path: Path) -> KSpace:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BadInputError(f"'{path.name}' is not a readable .npy array ({exc}).", FIX_LAYOUT) from None
    multicoil = data.ndim == 4
    data = _check_array(data, path)
    side = sidecar_of(path)
    spacing, ijk_to_ras, source = None, None, ""
    if side.exists():
        try:
            info = json.loads(side.read_text(encoding="utf-8"))
            spacing = tuple(float(s) for s in info["spacing_mm"]) if "spacing_mm" in info else None
            ijk_to_ras = np.asarray(info["ijk_to_ras"], dtype=float) if "ijk_to_ras" in info else None
        except (ValueError, TypeError, KeyError) as exc:
            raise BadInputError(f"'{side.name}' is not the JSON beside the k-space this needs ({exc}).",
                                'Write {"spacing_mm": [x, y, z]} (and optionally "ijk_to_ras": a 4x4 matrix).') from None
        if spacing is not None and (len(spacing) != 3 or min(spacing) <= 0):
            raise BadInputError(f"'{side.name}': spacing_mm {list(spacing)} is not three positive numbers.", "Give [x, y, z] in mm.")
        if ijk_to_ras is not None and ijk_to_ras.shape != (4, 4):
            raise BadInputError(f"'{side.name}': ijk_to_ras is not a 4x4 matrix.", "Give a 4x4 IJK-to-RAS matrix, or leave it out.")
        source = f"'{side.name}'"
    return KSpace(data, None, spacing, None, ijk_to_ras, source, multicoil)


def read_kspace(path: str | Path) -> KSpace:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"'{path}' is not a file.", "Give a k-space file (.h5 in the fastMRI layout, or .npy with its .json).")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return _read_h5(path)
    if suffix == ".npy":
        return _read_npy(path)
    raise BadInputError(f"'{path.name}' is not a k-space file this reads (suffix '{suffix}').", FIX_LAYOUT)
