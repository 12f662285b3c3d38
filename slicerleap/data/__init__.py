"""Real anatomy that ships inside installed packages (no download at run time)."""
from . import lesion_cases
from .samples import mni_t1, mni_tissue_labels, sample_data_available

__all__ = ["lesion_cases", "mni_t1", "mni_tissue_labels", "sample_data_available"]
