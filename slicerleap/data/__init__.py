"""Real anatomy that ships inside installed packages (no download at run time)."""
from .samples import mni_t1, mni_tissue_labels, sample_data_available

__all__ = ["mni_t1", "mni_tissue_labels", "sample_data_available"]
