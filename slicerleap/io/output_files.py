"""Where outputs may go, checked before any work, and how they are written: never over an input, always atomically.

A job's output is written to a temporary name in the destination folder (same suffix, so ITK picks the same
format) and renamed over the destination at the end: a crash, a full disk or a kill leaves either the old file
or nothing, never half a file."""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

from ..errors import BadInputError

VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
TRANSFORM_SUFFIXES = (".h5", ".hdf5", ".tfm", ".txt") + VOLUME_SUFFIXES  # a vector volume is a transform too
SUFFIXES = {"volume": VOLUME_SUFFIXES, "transform": TRANSFORM_SUFFIXES}


def case_name(path: Path) -> str:
    """A volume file's name without its suffix (case.nii.gz, case.seg.nrrd -> case)."""
    name = path.name
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)].removesuffix(".seg")
    return path.stem


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _same_file(a: Path, b: Path) -> bool:
    """True when `a` and `b` name the same file or folder, through symlinks and hard links too."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: str | Path, inputs=(), kind: str = "volume", option: str = "--output") -> Path:
    """Refuse, before any work, an output that would overwrite an input (also through a link), that has a suffix
    no writer takes, or whose folder cannot be written. `kind`: "volume", "transform" or "folder"."""
    path = Path(path)
    for source in (Path(p) for p in inputs if p):
        if _same_file(path, source):
            what = "folder" if kind == "folder" else "file"
            raise BadInputError(f"{option} {what} '{path}' is the input '{source}': writing it would destroy the scan.",
                                f"Choose another output name, e.g. '{path.parent / ('results-' + path.name)}'.")
    if kind != "folder":
        allowed = SUFFIXES[kind]
        if suffix_of(path) not in allowed and not (kind == "volume" and suffix_of(path) == ""):  # no suffix: a DICOM series
            raise BadInputError(f"{option} '{path.name}' has a suffix no writer takes ('{suffix_of(path) or 'none'}').",
                                f"End the name with one of: {', '.join(allowed)}.")
        if path.is_dir() and (suffix_of(path) != "" or any(path.iterdir())):
            raise BadInputError(f"{option} '{path}' is a folder that already holds files.",
                                "Give a file name (e.g. result.nii.gz), or an empty or new folder for a DICOM series.")
    _check_writable(path if kind == "folder" else path.parent, option)
    return path


def _check_writable(folder: Path, option: str) -> None:
    """Try it: permissions alone do not tell (root, read-only mounts, a file where a folder should be)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise OSError
        probe = existing / f".slicerleap-write-test-{uuid.uuid4().hex[:8]}"
        probe.touch()
        probe.unlink()
    except OSError:
        raise BadInputError(f"{option}: the folder '{existing}' cannot be written.",
                            "Choose a folder you have write permission for.") from None


@contextmanager
def atomic_destination(path: str | Path):
    """Yield a temporary path for `path`, in a hidden folder beside it; on success its files (a detached .mhd/.nhdr
    header and its data file too, or a DICOM folder) are renamed into place, on any failure they are removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging / path.name
        for produced in sorted(staging.iterdir(), key=lambda p: p.name == path.name):  # data files before the header
            target = path.parent / produced.name
            if produced.is_dir() and target.is_dir():
                target.rmdir()  # only an empty one: check_output_path refuses a folder with files in it
            os.replace(produced, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# the command-line option that names each job output, for the messages below
OUTPUT_OPTIONS = {"segmentation": "--output", "volume": "--output", "probability": "--probability", "transform": "--out-transform",
                  "warped": "--warped", "jacobian": "--jacobian", "labels": "--labels-out", "difference": "--difference",
                  "volume2": "--output2", "pseudo": "--output", "brain": "--brain-mask-output"}


def check_outputs(inputs: dict, outputs: dict) -> None:
    """Before any work: no output over an input (links included), none twice, each with a suffix a writer takes
    and in a folder that can be written."""
    sources = [p for v in inputs.values() for p in (v if isinstance(v, (list, tuple)) else [v])]
    seen: dict = {}
    for name, destination in outputs.items():
        if not destination:
            continue
        option = OUTPUT_OPTIONS.get(name.split("_")[0], f"--{name}")
        check_output_path(destination, sources, "transform" if name == "transform" else "volume", option)
        resolved = Path(destination).resolve()
        if resolved in seen:
            raise BadInputError(f"{option} and {seen[resolved]} name the same file '{destination}'.", "Give each output its own name.")
        seen[resolved] = option
