"""What the SlicerLeap modules share, Qt-free: runs without the Slicer application (pip slicer-core).

Importing this package makes the SlicerLeap engine (`slicerleap`) importable: from a source checkout
it is the repository root (the module folder's parent); in an installed extension CMake puts
`slicerleap/` next to the modules, in the folder that holds this package.
Nothing heavier than the standard library is imported here, so Slicer can load the modules before the
engine's Python dependencies are installed; `ensure_dependencies()` installs them on first use.
The one Qt part, the job panel of the module widgets, is in `SlicerLeapCommonLib.job_panel`.
"""
import importlib.util
import logging
import sys
from pathlib import Path


def _make_engine_importable() -> None:
    if importlib.util.find_spec("slicerleap") is not None:
        return
    lib_dir = Path(__file__).resolve().parent
    for candidate in (lib_dir.parent.parent, lib_dir.parent):  # source checkout, installed extension
        if (candidate / "slicerleap" / "__init__.py").is_file():
            sys.path.insert(0, str(candidate))
            return


_make_engine_importable()


def ensure_dependencies(requester: str = "SlicerLeap", federated: bool = False) -> None:
    """Install the engine's missing Python packages (asks the user first in the Slicer desktop); with
    `federated`, also Flower. Call it before the first job (Apply, `process`), never at import time."""
    from slicerleap.scene.dependencies import ensure_dependencies as ensure  # needs only what Slicer ships

    ensure(requester=requester, federated=federated)


def engine_installed(federated: bool = False) -> bool:
    """Whether the engine's Python packages (and, with `federated`, Flower) are installed; asks nothing."""
    from slicerleap.scene.dependencies import missing_packages  # needs only what Slicer ships

    return not missing_packages(federated=federated)


def in_slicer_desktop() -> bool:
    """Whether this runs inside the Slicer application (slice views to show results in), not on slicer-core."""
    import slicer

    return hasattr(slicer, "app")


def logProgress(record: dict) -> None:
    """Job progress records go to the application log when a script runs a blocking `process`."""
    if record.get("message"):
        logging.info(record["message"])
