"""Job overhead: (1) worker spawn -> first progress line, against bare interpreter start-up measured in
the same run; (2) scene -> job files -> scene round trip of a 512x512x300 int16 volume, against a raw
in-memory copy and a raw binary write of the same array.

    python benchmarks/job_overhead.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from slicerleap import Volume
from slicerleap.io import read_volume, write_volume
from slicerleap.jobs import Job, JobSpec, write_job
from slicerleap.scene import new_scene_context, node_to_volume, volume_to_node


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def spawn_to_first_progress(workdir: Path) -> float:
    image = Volume.from_geometry(np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32))
    job_dir = Path(tempfile.mkdtemp(dir=workdir))
    spec = JobSpec(task="superres", params={"method": "linear"}, inputs={"image": "inputs/image.nrrd"})
    write_volume(image, job_dir / "inputs" / "image.nrrd")
    write_job(job_dir, spec)
    started = time.perf_counter()
    job = Job(job_dir).start()
    while not job.records:
        job.poll()
        time.sleep(0.001)
    first = time.perf_counter() - started
    job.wait()
    assert job.status == "succeeded"
    job.cleanup()
    return first


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="slicerleap-bench-"))
    bare = median_time(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.repeats)
    spawn = statistics.median(spawn_to_first_progress(work) for _ in range(args.repeats))
    print(f"bare interpreter start-up:           {bare * 1000:8.1f} ms")
    print(f"worker spawn -> first progress line: {spawn * 1000:8.1f} ms  ({spawn / bare:.1f}x bare start-up)")

    ctx = new_scene_context()
    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 2000, size=(300, 512, 512), dtype=np.int16)
    volume = Volume.from_geometry(array, (0.7, 0.7, 1.25), (-180, -180, -200))
    node = volume_to_node(ctx, volume, "CT 512x512x300")
    mib = array.nbytes / 2**20

    copy_s = median_time(lambda: np.copy(array), args.repeats)
    raw_path = work / "raw.bin"
    raw_s = median_time(lambda: array.tofile(raw_path), args.repeats)
    rows = [("raw in-memory copy (baseline)", copy_s), ("raw binary write (baseline)", raw_s)]
    for compress in (False, True):
        path = work / f"vol{'_gz' if compress else ''}.nrrd"
        to_files = median_time(lambda: write_volume(node_to_volume(node), path, compress=compress), max(1, args.repeats // (3 if compress else 1)))
        back = median_time(lambda: ctx.scene.RemoveNode(volume_to_node(ctx, read_volume(path), "back")), max(1, args.repeats // (3 if compress else 1)))
        label = "gzip" if compress else "raw"
        rows.append((f"scene -> NRRD ({label})", to_files))
        rows.append((f"NRRD ({label}) -> scene", back))
    print(f"\nscene <-> files, 512x512x300 int16 ({mib:.0f} MiB), median of {args.repeats}:")
    for name, seconds in rows:
        print(f"  {name:32s} {seconds * 1000:8.1f} ms  {seconds / raw_s:6.1f}x raw write  {mib / seconds:8.0f} MiB/s")


if __name__ == "__main__":
    main()
