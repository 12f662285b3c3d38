"""The memory guard's estimate against the worker's measured peak, per task, on real anatomy (the MNI152 T1 from the
nilearn wheel, at 1 mm and resampled to 0.7 mm; a thick-slice copy for super-resolution).

The per-voxel constants were fitted on the two MNI grids; the real head CT of Debian's invesalius-examples is the
held-out check. Each case runs in a fresh process (`--one CASE`) so that RUSAGE_CHILDREN's ru_maxrss is the peak of that case's
worker alone; the estimate is the line the worker's input check writes to worker.log. Target: peak / estimate in
0.8-1.3 (the guard refuses what will not fit, and does not refuse what would).

    python benchmarks/memory_estimates.py --out benchmarks/memory_estimates.json
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CASES = {  # name -> (task, params, model, input maker, grid)
    "segment SKS (default model)": ("segment", {}, None, "t1"),
    "segment tissue U-Net": ("segment", {}, "brain-tissue-unet@1.0.0", "t1"),
    "register optimisation (3 mm grid)": ("register", {"method": "optimisation", "iterations": 5, "affine": False}, None, "pair"),
    "superres cubic (3 mm slices to 1 mm)": ("superres", {"method": "cubic", "spacing": [1.0, 1.0, 1.0]}, None, "thick"),
    "superres tv (3 mm slices to 1 mm)": ("superres", {"method": "tv", "spacing": [1.0, 1.0, 1.0], "iterations": 5}, None, "thick"),
}
GRIDS = {"1 mm": 1.0, "0.7 mm": 0.7, "head CT": None}  # the CT: held out from fitting the per-voxel constants
def _inputs(kind: str, spacing: float | None, folder: Path) -> dict:
    from slicerleap.data.invesalius import head_ct
    from slicerleap.data.samples import mni_t1
    from slicerleap.io import write_volume
    from slicerleap.transforms.resample import resample_to_spacing

    t1 = mni_t1() if spacing is not None else head_ct()
    spacing = spacing or float(t1.spacing[0])
    if spacing != 1.0:
        t1 = resample_to_spacing(t1.with_array(t1.array.astype(np.float32)), [spacing] * 3, "linear")
    path = write_volume(t1, folder / "t1.nrrd")
    if kind == "t1":
        return {"image": path}
    if kind == "pair":
        moved = t1.with_array(np.roll(t1.array, 3, axis=0))
        return {"fixed": path, "moving": write_volume(moved, folder / "moved.nrrd")}
    thick = resample_to_spacing(t1.with_array(t1.array.astype(np.float32)), [spacing, spacing, 3.0], "linear")
    return {"image": write_volume(thick, folder / "thick.nrrd")}


def run_one(case: str, grid: str) -> dict:
    from slicerleap.jobs.files import run_task_on_files

    task, params, model, kind = CASES[case]
    with tempfile.TemporaryDirectory() as folder:
        inputs = _inputs(kind, GRIDS[grid], Path(folder))
        result, job = run_task_on_files(task, inputs, params, model, "cpu", keep_files=True)
        log = (job.job_dir / "worker.log").read_text(encoding="utf-8", errors="replace")
        import shutil

        shutil.rmtree(job.job_dir, ignore_errors=True)
    estimates = [(int(m), int(v)) for m, v in re.findall(r"memory estimate \([^)]*\): (\d+) bytes for (\d+) working voxels", log)]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    estimate, voxels = max(estimates) if estimates else (None, None)
    return {"case": case, "grid": grid, "working_voxels": voxels, "peak_gib": round(peak / 2**30, 3),
            "estimate_gib": None if estimate is None else round(estimate / 2**30, 3),
            "peak_over_estimate": None if estimate is None else round(peak / estimate, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=2, metavar=("CASE", "GRID"), help=argparse.SUPPRESS)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--grids", nargs="*", default=list(GRIDS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return
    rows = []
    for grid in args.grids:
        for case in args.cases:
            done = subprocess.run([sys.executable, __file__, "--one", case, grid], capture_output=True, text=True)
            row = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {
                "case": case, "grid": grid, "error": done.stderr[-400:]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        from slicerleap.json_files import write_json_atomically

        write_json_atomically(args.out, {"command": " ".join(sys.argv), "rows": rows}, indent=1)


if __name__ == "__main__":
    main()
