"""`slicerleap info`: versions, the device a job would use, and the installed models."""
from __future__ import annotations


def cmd_info(args) -> int:
    import platform

    import torch

    from .. import __version__
    from ..device import describe_device, select_device
    from ..models import get_catalog

    print(f"SlicerLeap {__version__} on Python {platform.python_version()} ({platform.platform()})")
    versions = {"torch": torch.__version__}
    for name in ("monai", "SimpleITK", "numpy", "vtk"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", None) or module.Version_VersionString()
        except Exception:  # noqa: BLE001 - optional packages
            versions[name] = "not installed"
    from importlib.metadata import PackageNotFoundError, version

    try:
        versions["slicer-core"] = version("slicer-core")
    except PackageNotFoundError:
        versions["slicer-core"] = "not installed (scene features unavailable)"
    for k, v in versions.items():
        print(f"  {k:12s} {v}")
    print(f"device: {describe_device(select_device('auto'))}")
    print("models:")
    for card in get_catalog().cards():
        print(f"  {card['id']:32s} {card['task']:14s} {card['modality']:4s} {card.get('title', '')}")
    return 0


def add_commands(sub) -> None:
    sub.add_parser("info", help="versions, device and installed models").set_defaults(func=cmd_info)
