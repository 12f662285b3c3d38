"""Read and write volumes with SimpleITK (NRRD, NIfTI, MHA/MHD, DICOM series).

ITK stores geometry in LPS; `Volume` is RAS. The flip happens here and nowhere else.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import BadInputError
from ..volume import Volume, lps_matrix_to_ras, ras_matrix_to_lps
from .nifti_integrity import check_nifti_file
from .output_files import VOLUME_SUFFIXES as SUPPORTED_SUFFIXES, atomic_destination



def volume_from_sitk(image: sitk.Image, metadata: dict | None = None, scalar: bool = True) -> Volume:
    """SimpleITK image (LPS) -> Volume (RAS). Vector images are refused unless scalar=False.

    Vector components are kept as stored; callers that read displacement fields flip them
    with `lps_vectors_to_ras`."""
    if scalar and image.GetNumberOfComponentsPerPixel() != 1:
        raise BadInputError(
            f"The image has {image.GetNumberOfComponentsPerPixel()} components per voxel (colour or vector image).",
            "Convert it to a single-channel scalar volume (e.g. Slicer's Vector to Scalar Volume module).",
        )
    dim = image.GetDimension()
    if dim == 2:
        image = sitk.JoinSeries(image)  # a 2D image becomes a one-slice volume, as in Slicer
    elif dim == 4:
        raise BadInputError(
            f"The image is 4D (size {image.GetSize()}): a time series or multi-volume.",
            "Extract one 3D frame first (Slicer: Sequences module, or pick a single volume of the series).",
        )
    elif dim != 3:
        raise BadInputError(f"The image has {dim} dimensions.", "Provide a 3D volume.")
    spacing = np.array(image.GetSpacing(), dtype=np.float64)
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = direction * spacing[None, :]
    ijk_to_lps[:3, 3] = image.GetOrigin()
    return Volume(sitk.GetArrayFromImage(image), lps_matrix_to_ras(ijk_to_lps), dict(metadata or {}))


NAME_KEY = "SlicerLeap.name"  # the volume's display name in NRRD/MHA headers (NIfTI has no place for it)


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """Volume (RAS) -> SimpleITK image (LPS)."""
    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=array.ndim == 4)
    ijk_to_lps = ras_matrix_to_lps(volume.ijk_to_ras)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((ijk_to_lps[:3, :3] / spacing[None, :]).ravel().tolist())
    image.SetOrigin(ijk_to_lps[:3, 3].tolist())
    return image


def lps_vectors_to_ras(vectors: np.ndarray) -> np.ndarray:
    """Flip the x, y components of (..., 3) vectors between LPS and RAS (the map is its own inverse)."""
    return vectors * np.array([-1.0, -1.0, 1.0], dtype=vectors.dtype)


def read_volume(path: str | Path, scalar: bool = True) -> Volume:
    """Read a volume file, or the first DICOM series in a folder, into RAS."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"Input '{path}' does not exist.", "Check the path (and that the file was copied completely).")
    try:
        if path.is_dir():
            series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
            if not series:
                raise BadInputError(f"Folder '{path}' holds no DICOM series.", "Point to a folder of DICOM slices or to a volume file.")
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0]))
            image = reader.Execute()
        else:
            if path.name.lower().endswith((".nii", ".nii.gz")):
                check_nifti_file(path)
            _check_fits_in_memory(path)
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise BadInputError(
            f"Could not read '{path.name}': {str(exc).strip().splitlines()[-1]}",
            f"Use a readable NRRD, NIfTI, MHA or DICOM file ({', '.join(SUPPORTED_SUFFIXES)}).",
        ) from exc
    name = image.GetMetaData(NAME_KEY) if image.HasMetaDataKey(NAME_KEY) else _stem(path)
    return volume_from_sitk(image, {"name": name, "source": str(path)}, scalar=scalar)


def _check_fits_in_memory(path: Path) -> None:
    """From the header alone, before any voxel is read: refuse a volume larger than the free memory."""
    import psutil

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    voxels = int(np.prod(reader.GetSize(), dtype=np.int64)) * reader.GetNumberOfComponents()
    need = voxels * sitk.Image([1] * reader.GetDimension(), reader.GetPixelID()).GetSizeOfPixelComponent()
    available = psutil.virtual_memory().available
    if need > available:
        raise BadInputError(f"'{path.name}' holds {reader.GetSize()} voxels ({need / 2**30:.1f} GiB); only "
                            f"{available / 2**30:.1f} GiB of memory are free.",
                            "Crop or downsample it first (Crop Volume module), or use a machine with more memory.")


def write_volume(volume: Volume, path: str | Path, compress: bool = True) -> Path:
    """Write NRRD / NIfTI / MHA (by suffix) or, for a folder path, a DICOM series; atomically (a failed write
    leaves no partial file)."""
    path = Path(path)
    image = volume_to_sitk(volume)
    with atomic_destination(path) as temporary:
        if path.suffix == "" or path.is_dir():
            _write_dicom_series(image, temporary)
        else:
            if volume.metadata.get("name"):  # NRRD and MHA keep it: a job's outputs are named after the scene's node
                image.SetMetaData(NAME_KEY, str(volume.metadata["name"]))
            sitk.WriteImage(image, str(temporary), useCompression=compress)
    return path


def _write_dicom_series(image: sitk.Image, folder: Path) -> Path:
    """Minimal scalar DICOM series writer (one file per slice), geometry in the standard tags."""
    folder.mkdir(parents=True, exist_ok=True)
    if image.GetPixelID() not in (sitk.sitkInt16, sitk.sitkUInt16, sitk.sitkUInt8, sitk.sitkInt8):
        image = sitk.Cast(image, sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    uid = "1.2.826.0.1.3680043.2.1125." + str(abs(hash((image.GetOrigin(), image.GetSize()))) % 10**12)
    tags = {
        "0020|000d": uid + ".1",  # study instance UID
        "0020|000e": uid + ".2",  # series instance UID
        "0020|0037": "\\".join(f"{v:.10f}" for v in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7])),
        "0008|0060": "OT",
        "0018|0050": f"{image.GetSpacing()[2]:.10f}",
    }
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        sl.SetMetaData("0020|0032", "\\".join(f"{v:.10f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))))
        sl.SetMetaData("0020|0013", str(k + 1))
        sl.SetMetaData("0008|0018", f"{uid}.3.{k + 1}")
        writer.SetFileName(str(folder / f"slice{k:04d}.dcm"))
        writer.Execute(sl)
    return folder


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".seg.nrrd") + SUPPORTED_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
