"""Resampling in physical space with SimpleITK. Volumes keep their orientation; only the grid changes."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..io.image_io import volume_from_sitk, volume_to_sitk
from ..volume import Volume

INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,  # cubic B-spline
    "sinc": sitk.sitkWelchWindowedSinc,
    "label": sitk.sitkLabelGaussian,
}


def _resample(image: sitk.Image, reference: sitk.Image, interpolator: str, default: float, extrapolate: bool = False) -> sitk.Image:
    return sitk.Resample(image, reference, sitk.Transform(), INTERPOLATORS[interpolator], float(default), image.GetPixelID(), extrapolate)


def resample_to_spacing(volume: Volume, spacing_mm, interpolator: str = "linear", default: float = 0.0) -> Volume:
    """Same field of view and orientation, new voxel size (mm, i/j/k). Grid centred on the original extent."""
    image = volume_to_sitk(volume)
    spacing_mm = np.asarray(spacing_mm, dtype=np.float64)
    old_size = np.array(image.GetSize(), dtype=np.float64)
    old_spacing = np.array(image.GetSpacing())
    new_size = np.maximum(1, np.round(old_size * old_spacing / spacing_mm)).astype(int)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    # keep the centre of the field of view fixed
    centre_index_old = (old_size - 1) / 2.0
    centre = np.array(image.GetOrigin()) + direction @ (centre_index_old * old_spacing)
    origin = centre - direction @ ((new_size - 1) / 2.0 * spacing_mm)
    reference = sitk.Image([int(s) for s in new_size], image.GetPixelID())
    reference.SetSpacing(spacing_mm.tolist())
    reference.SetDirection(image.GetDirection())
    reference.SetOrigin(origin.tolist())
    out = _resample(image, reference, interpolator, default)
    return volume_from_sitk(out, dict(volume.metadata))


def resample_to_reference(volume: Volume, reference: Volume, interpolator: str = "linear", default: float = 0.0,
                          extrapolate: bool = False) -> Volume:
    """`volume` sampled on `reference`'s grid (physical overlap; outside -> `default`, or the nearest
    value when `extrapolate`)."""
    ref_image = volume_to_sitk(reference.with_array(np.zeros(reference.array.shape[:3], dtype=volume.array.dtype)))
    out = _resample(volume_to_sitk(volume), ref_image, interpolator, default, extrapolate)
    return volume_from_sitk(out, dict(volume.metadata))
