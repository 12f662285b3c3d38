"""Folders of scans and tables of pairs, from Python and the CLI: one worker job per file or pair, run one after
another on this machine, or N at once on a local Dask cluster (`workers=N`), or on a Dask cluster's workers
(`cluster="tcp://host:8786"`, input and output folders on a filesystem they share). A rerun skips what is done.

    from slicerleap.batch import segment_folder, register_pairs, reconstruct_folder
    records = segment_folder("scans/", "labels/", workers=2)       # [BatchRecord(name, status, seconds, message)]
    register_pairs("pairs.csv", "registered/", method="optimisation")
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from .errors import BadInputError
from .jobs.batch import RECORD_SUFFIX, BatchItem, BatchRecord, run_serial_batch


def run_batch(items: list[BatchItem], workers: int | None = None, cluster: str | None = None, device: str = "auto",
              log=lambda text: print(text, file=sys.stderr)) -> list[BatchRecord]:
    """Serial on this machine unless `workers` or `cluster` asks for Dask."""
    if workers is not None and workers < 1:
        raise BadInputError(f"workers={workers}: at least one worker runs the jobs.", "Give a number of workers of 1 or more.")
    if workers and cluster:
        raise BadInputError("Both a number of local workers and a cluster address were given.",
                            "Give --workers N for this machine, or --cluster ADDRESS for a Dask cluster, not both.")
    if not items:
        raise BadInputError("There is nothing to run: no input files.", "Give a folder of volume files (.nrrd, .nii.gz, .mha) or a table of pairs.")
    if workers or cluster:
        from .jobs.dask_batch import run_dask_batch

        return run_dask_batch(items, workers=workers, cluster=cluster, device=device, log=log)
    return run_serial_batch(items, device, log=log)


def _volume_files(folder: Path) -> list[Path]:
    from .io import SUPPORTED_SUFFIXES

    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(SUPPORTED_SUFFIXES))


def _output_folder(source: Path, target: Path) -> None:
    from .io.output_files import check_output_path

    check_output_path(target, [source], "folder")  # folder in, folder out: never the same folder
    target.mkdir(parents=True, exist_ok=True)


def folder_items(task: str, source: str | Path, target: str | Path, params: dict, model: str | None, output: str) -> list[BatchItem]:
    """One item per volume file of `source`; each output in `target` under the input's file name."""
    source, target = Path(source), Path(target)
    if not source.is_dir():
        raise BadInputError(f"'{source}' is not a folder.", "Give a folder of volume files (.nrrd, .nii.gz, .mha).")
    _output_folder(source, target)
    return [BatchItem(p.name, task, {"image": str(p)}, params, {output: str(target / p.name)}, str(target / f"{p.name}{RECORD_SUFFIX}"), model)
            for p in _volume_files(source)]


def segment_folder(source, target, model: str | None = None, workers: int | None = None, cluster: str | None = None,
                   device: str = "auto", backend: str = "auto", force: bool = False, brain_mask: str = "auto") -> list[BatchRecord]:
    """Segment every volume of `source` with a catalog model; labelmaps in `target` under the same file names."""
    from .segmentation.inference_options import check_brain_mask

    params = {"backend": backend, "force": force, "brain_mask": check_brain_mask(brain_mask)}
    return run_batch(folder_items("segment", source, target, params, model, "segmentation"), workers, cluster, device)


def _declared(declarations, method: str, options: dict) -> dict:
    known = {p.name for p in declarations.parameters()}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BadInputError(f"Unknown option(s) {', '.join(unknown)} for {declarations.task}.", f"Use: {', '.join(sorted(known))}.")
    return declarations.resolve(method, options)


def superres_params(method: str, spacing, options: dict) -> dict:
    from .enhancement.methods import SUPERRES

    method = SUPERRES.method(method).name
    return {"method": method, "spacing": spacing, **_declared(SUPERRES, method, options)}


def superres_folder(source, target, method: str = "sr4zct", spacing=None, workers: int | None = None, cluster: str | None = None,
                    device: str = "auto", **options) -> list[BatchRecord]:
    """Restore every thick-slice volume of `source` (options as `slicerleap superres`, e.g. iterations=400)."""
    return run_batch(folder_items("superres", source, target, superres_params(method, spacing, options), None, "volume"),
                     workers, cluster, device)


def read_pairs(table: str | Path) -> list[dict]:
    """A CSV with a header row `fixed,moving[,moving_labels]`; relative paths are relative to the table's folder."""
    table = Path(table)
    try:
        with open(table, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise BadInputError(f"Cannot read the table of pairs '{table}': {exc.strerror}.", "Give a CSV file with columns fixed,moving[,moving_labels].") from None
    if not rows or not {"fixed", "moving"} <= set(rows[0]):
        raise BadInputError(f"'{table}' has no rows under a header with the columns fixed and moving.",
                            "Write a header row 'fixed,moving' (and ',moving_labels' to propagate labels), then one pair per row.")
    pairs = []
    for n, row in enumerate(rows, 2):
        pair = {k: (table.parent / row[k].strip()) for k in ("fixed", "moving", "moving_labels") if (row.get(k) or "").strip()}
        if "fixed" not in pair or "moving" not in pair:
            raise BadInputError(f"Row {n} of '{table}' lacks a fixed or a moving volume.", "Give both paths on every row.")
        for path in pair.values():
            if not path.exists():
                raise BadInputError(f"Row {n} of '{table}': '{path}' does not exist.", "Fix the path (relative paths start at the table's folder).")
        pairs.append({k: str(v) for k, v in pair.items()})
    return pairs


def register_items(pairs: list[dict], target: str | Path, params: dict, model: str | None) -> list[BatchItem]:
    """One item per pair: `target/<moving>_to_<fixed>/` gets transform.h5, warped.nrrd (and labels.nrrd)."""
    from .io.output_files import case_name

    target = Path(target)
    for pair in pairs:
        _output_folder(Path(pair["moving"]), target)
    items = []
    for pair in pairs:
        name = f"{case_name(Path(pair['moving']))}_to_{case_name(Path(pair['fixed']))}"
        outputs = {"transform": str(target / name / "transform.h5"), "warped": str(target / name / "warped.nrrd")}
        if pair.get("moving_labels"):
            outputs["labels"] = str(target / name / "labels.nrrd")
        items.append(BatchItem(name, "register", dict(pair), params, outputs, str(target / f"{name}{RECORD_SUFFIX}"), model))
    return items


def registration_params(method: str | None, model: str | None, options: dict) -> dict:
    """The default method: the network when a registration model is named or installed, else per-pair optimisation."""
    from .models import get_catalog
    from .registration.methods import REGISTRATION

    if method is None:
        method = "network" if model or any(c["task"] == "registration" for c in get_catalog().cards()) else "optimisation"
    return {"method": method, **_declared(REGISTRATION, method, options)}


def register_pairs(pairs, target, method: str | None = None, model: str | None = None, workers: int | None = None,
                   cluster: str | None = None, device: str = "auto", **options) -> list[BatchRecord]:
    """Register every pair (a CSV path, or a list of {"fixed", "moving"[, "moving_labels"]} dicts)."""
    pairs = read_pairs(pairs) if isinstance(pairs, (str, Path)) else pairs
    params = registration_params(method, model, options)
    return run_batch(register_items(pairs, target, params, model if params["method"] == "network" else None), workers, cluster, device)


def reconstruction_params(method: str, spacing, options: dict) -> dict:
    from .reconstruction.methods import RECONSTRUCTION

    method = RECONSTRUCTION.method(method).name
    if spacing is not None and (len(spacing) != 3 or min(spacing) <= 0):
        raise BadInputError(f"spacing {list(spacing)} is not three positive numbers (mm).", "Give x y z in mm, e.g. 1 1 3.")
    return {"method": method, "spacing": list(spacing) if spacing else None, **_declared(RECONSTRUCTION, method, options)}


def named_after(kspace_file: str | Path, params: dict) -> dict:
    """A reconstruction job's parameters with the output volume named after its k-space file and method."""
    return {**params, "output_name": f"{Path(kspace_file).stem} ({params['method']})"}


def kspace_items(source: str | Path, target: str | Path, params: dict, model: str | None = None) -> list[BatchItem]:
    """One item per k-space file (.h5, .npy) of `source`; each volume in `target` as <name>.nrrd."""
    from .io.kspace_files import kspace_files

    source, target = Path(source), Path(target)
    _output_folder(source, target)
    return [BatchItem(p.name, "reconstruct", {"kspace": str(p)}, named_after(p, params), {"volume": str(target / f"{p.stem}.nrrd")},
                      str(target / f"{p.name}{RECORD_SUFFIX}"), model) for p in kspace_files(source)]


def reconstruct_folder(source, target, method: str = "sense", spacing=None, model: str | None = None, workers: int | None = None,
                       cluster: str | None = None, device: str = "auto", **options) -> list[BatchRecord]:
    """Reconstruct every k-space file of `source` (options as `slicerleap reconstruct`, e.g. acceleration=4, mask="random")."""
    return run_batch(kspace_items(source, target, reconstruction_params(method, spacing, options), model), workers, cluster, device)
