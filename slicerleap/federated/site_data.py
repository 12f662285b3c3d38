"""A site's training data: a folder `images/` with volumes and `labels/` with the labelmap of the same
name (NRRD, NIfTI, MHA), read only by that site's own process. Cases become 2.5D slice cases on the
federation's slice grid (`slice_data.prepare_case`), so every site feeds the network the same geometry."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from ..io import read_volume
from ..segmentation.slice_data import SliceCase, prepare_case
from ..volume import Volume

VOLUME_SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha", ".mhd")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def site_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """(image, labelmap) paths of a site folder, paired by file name (without extension)."""
    folder = Path(folder)
    images, labels = folder / "images", folder / "labels"
    if not images.is_dir() or not labels.is_dir():
        raise BadInputError(f"The site folder '{folder}' needs the subfolders 'images' and 'labels'.",
                            "Put each volume in images/ and its labelmap, with the same file name, in labels/.")
    by_stem = {_stem(p): p for p in labels.iterdir() if p.name.endswith(VOLUME_SUFFIXES)}
    pairs = [(p, by_stem[_stem(p)]) for p in sorted(images.iterdir()) if p.name.endswith(VOLUME_SUFFIXES) and _stem(p) in by_stem]
    if not pairs:
        raise BadInputError(f"No image in '{images}' has a labelmap of the same name in '{labels}'.",
                            "Name each labelmap like its image (case_001.nrrd in both folders).")
    return pairs


def load_site_cases(folder: str | Path, input_spec: dict, label_value: int = 0, cache_dir: str | Path | None = None) -> list[SliceCase]:
    """Slice cases of a site; the foreground is `label_value` in the labelmaps (0: any non-zero value).

    With `cache_dir`, the prepared cases are kept there (one .npz per case, keyed by the source files' size
    and time stamp and the input spec): Flower starts a fresh ClientApp process for every message, and
    reading and resampling a site's volumes each round would cost more than the round's training."""
    cases = []
    for image_path, label_path in site_pairs(folder):
        cached = _cache_path(cache_dir, image_path, label_path, input_spec, label_value) if cache_dir else None
        if cached is not None and cached.exists():
            with np.load(cached) as data:
                case = SliceCase(Volume(data["image"], data["ijk_to_ras"]), data["labels"], None)
        else:
            image, labels = read_volume(image_path), read_volume(label_path)
            fg = labels.array == label_value if label_value else labels.array > 0
            case = prepare_case(image, input_spec, labels.with_array(fg.astype(np.uint8)))
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(".tmp.npz")
                np.savez(tmp, image=case.image, ijk_to_ras=case.grid.ijk_to_ras, labels=case.labels)
                tmp.replace(cached)  # atomic: a process killed mid-write leaves no half file
        case.name = _stem(image_path)
        cases.append(case)
    return cases


def _cache_path(cache_dir, image_path: Path, label_path: Path, input_spec: dict, label_value: int) -> Path:
    stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in (image_path, label_path)]
    key = hashlib.sha256(json.dumps([stamp, input_spec, label_value], sort_keys=True).encode()).hexdigest()[:24]
    return Path(cache_dir) / f"{_stem(image_path)}-{key}.npz"


def split_validation(cases: list[SliceCase], fraction: float = 0.25) -> tuple[list[SliceCase], list[SliceCase]]:
    """(train, validation): the last ceil(fraction·n) cases validate, when the site has two or more."""
    n_val = int(np.ceil(fraction * len(cases))) if len(cases) > 1 else 0
    return (cases[:-n_val], cases[-n_val:]) if n_val else (cases, [])
