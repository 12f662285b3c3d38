"""Qt-free logic of the FedTools module: runs without the Slicer application (pip slicer-core).
The engine bootstrap and the dependency installer are shared, in SlicerLeapCommon/SlicerLeapCommonLib."""
import SlicerLeapCommonLib  # noqa: F401  (makes the SlicerLeap engine importable for logic.py)
