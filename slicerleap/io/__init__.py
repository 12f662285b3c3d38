"""File IO: the only place where RAS (Slicer) meets LPS (NRRD, NIfTI, MHA, DICOM, ITK)."""
from .image_io import read_volume, write_volume, SUPPORTED_SUFFIXES
from .transform_io import read_displacement, write_displacement_transform

__all__ = ["read_volume", "write_volume", "SUPPORTED_SUFFIXES", "read_displacement", "write_displacement_transform"]
