"""Image transforms on `Volume`s: resampling (physical space), intensity normalisation, input checks."""
from .resample import resample_to_reference, resample_to_spacing
from .intensity import normalise, robust_range
from .input_checks import check_scalar_volume

__all__ = ["resample_to_reference", "resample_to_spacing", "normalise", "robust_range", "check_scalar_volume"]
