"""Throughput of a folder of scans: one file after another (the local runner) vs a Dask LocalCluster with 1 and 2
workers, in the same run, on the same folder. Each file is one `segment` job with the bundled default model
(brain-lesion-sks) on a lesion case made from the MNI template at 2 mm (91x109x91; real anatomy, warped per seed).

    python benchmarks/batch_throughput.py --files 20 --out benchmarks/batch_throughput.json

Dask's per-file overhead over the local runner = (Dask with 1 worker - serial) / files. On a 2-core machine
`--workers 2` gives each job one thread (the serial run's jobs use both cores), so the speed-up measures how much
of one job's time is single-threaded (start-up, reading, writing) rather than a doubling of compute."""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from slicerleap.batch import segment_folder
from slicerleap.data.lesion_cases import make_lesion_case
from slicerleap.io import write_volume
from slicerleap.json_files import write_json_atomically


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--spacing", type=float, default=2.0)
    ap.add_argument("--out", default=str(Path(__file__).with_name("batch_throughput.json")))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "scans"
        source.mkdir()
        for seed in range(args.files):
            write_volume(make_lesion_case(seed, spacing_mm=args.spacing)[0], source / f"case{seed:02d}.nii.gz")
        runs = {}
        for name, workers in (("serial (local runner)", None), ("Dask, 1 worker", 1), ("Dask, 2 workers", 2)):
            started = time.perf_counter()
            records = segment_folder(source, Path(tmp) / name.replace(" ", "_"), workers=workers)
            seconds = time.perf_counter() - started
            assert all(r.status == "done" for r in records), [(r.name, r.message) for r in records if r.status != "done"]
            runs[name] = {"workers": workers, "seconds": round(seconds, 1), "files_per_minute": round(60 * args.files / seconds, 2),
                          "mean_job_seconds": round(sum(r.seconds for r in records) / len(records), 2)}
            print(name, runs[name], flush=True)
    serial = runs["serial (local runner)"]["seconds"]
    result = {"command": f"python benchmarks/batch_throughput.py --files {args.files} --out {args.out}",
              "files": args.files, "volume": f"MNI lesion case at {args.spacing} mm", "model": "default (brain-lesion-sks@1.0.0)",
              "cores": len(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(), "runs": runs,
              "dask_overhead_per_file_s": round((runs["Dask, 1 worker"]["seconds"] - serial) / args.files, 2),
              "speedup_2_workers": round(serial / runs["Dask, 2 workers"]["seconds"], 2)}
    write_json_atomically(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
