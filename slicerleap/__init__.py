"""SlicerLeap engine: label-efficient deep learning for 3D Slicer, usable without Slicer."""
from .volume import Volume

__version__ = "0.1.0"
__all__ = ["Volume", "__version__"]
