"""Which files hold raw k-space, and the JSON beside a .npy: file naming only (reading is reconstruction/kspace.py),
so that staging a job's inputs (jobs/) need not know about reconstruction."""
from __future__ import annotations

from pathlib import Path

KSPACE_SUFFIXES = (".h5", ".hdf5", ".npy")


def kspace_files(folder: Path) -> list[Path]:
    """The k-space files of a folder, sorted (none when it is not a folder)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in KSPACE_SUFFIXES) if folder.is_dir() else []


def sidecar_of(path: Path) -> Path:
    """The JSON beside a .npy that gives its spacing and orientation."""
    return path.with_suffix(".json")
