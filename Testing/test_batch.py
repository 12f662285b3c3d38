"""Folders of scans and tables of pairs: one worker job each, serial or on a Dask LocalCluster, resumable, a bad file
reported while the others go on, and Ctrl+C leaves no job folder and no worker behind."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import psutil
import pytest

from phantoms import sphere_phantom
from slicerleap.batch import register_pairs, superres_folder
from slicerleap.errors import SlicerLeapError
from slicerleap.io import read_volume, write_volume
from slicerleap.jobs.job_folders import PREFIX


def cli(*args, env=None, timeout=600):
    return subprocess.run(["slicerleap", *args], capture_output=True, text=True, timeout=timeout, env=env)


def _folder_with_a_bad_file(folder, n_good=5):
    folder.mkdir()
    for n in range(n_good):
        write_volume(sphere_phantom(16, spacing=(1.0, 1.0, 3.0), seed=n), folder / f"case{n}.nii.gz")
    (folder / "broken.nii.gz").write_bytes(b"not a scan")
    return folder


def test_two_dask_workers_write_what_the_serial_run_writes_and_a_rerun_skips_what_is_done(tmp_path):
    source = _folder_with_a_bad_file(tmp_path / "in")
    serial = {r.name: r for r in superres_folder(source, tmp_path / "serial", method="sinc")}
    dask = {r.name: r for r in superres_folder(source, tmp_path / "dask", method="sinc", workers=2)}
    assert serial["broken.nii.gz"].status == dask["broken.nii.gz"].status == "bad-input"
    assert "not a readable NIfTI" in dask["broken.nii.gz"].message and "Fix:" in dask["broken.nii.gz"].message
    for n in range(5):
        name = f"case{n}.nii.gz"
        assert serial[name].status == dask[name].status == "done"
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes()
        record = json.loads((tmp_path / "dask" / f"{name}.result.json").read_text())
        assert record["status"] == "done" and record["outputs"]["volume"]["bytes"] == (tmp_path / "dask" / name).stat().st_size
    assert not (tmp_path / "dask" / "broken.nii.gz").exists() and not (tmp_path / "dask" / "broken.nii.gz.result.json").exists()

    # a rerun skips the five; a damaged output is redone, and so is everything when the parameters change
    with open(tmp_path / "dask" / "case3.nii.gz", "r+b") as damaged:
        damaged.truncate(100)
    again = {r.name: r.status for r in superres_folder(source, tmp_path / "dask", method="sinc", workers=2)}
    assert again == {**{f"case{n}.nii.gz": "skipped" for n in (0, 1, 2, 4)}, "case3.nii.gz": "done", "broken.nii.gz": "bad-input"}
    assert (tmp_path / "dask" / "case3.nii.gz").read_bytes() == (tmp_path / "serial" / "case3.nii.gz").read_bytes()
    changed = superres_folder(source, tmp_path / "dask", method="sinc", spacing=[1.0, 1.0, 1.5])
    assert sorted(r.status for r in changed) == ["bad-input"] + ["done"] * 5
    np.testing.assert_allclose(read_volume(tmp_path / "dask" / "case0.nii.gz").spacing, [1.0, 1.0, 1.5], atol=1e-5)


def test_register_pairs_from_a_table_writes_each_pairs_files(tmp_path):
    write_volume(sphere_phantom(20, seed=1), tmp_path / "fixed.nrrd")
    for n in range(2):
        write_volume(sphere_phantom(20, seed=2 + n, origin=(-29.0 + n, -20.0, 10.0)), tmp_path / f"moving{n}.nrrd")
    labels = sphere_phantom(20, seed=2)
    write_volume(labels.with_array((labels.array > labels.array.mean()).astype(np.uint8)), tmp_path / "labels0.nrrd")
    (tmp_path / "pairs.csv").write_text("fixed,moving,moving_labels\nfixed.nrrd,moving0.nrrd,labels0.nrrd\nfixed.nrrd,moving1.nrrd,\n")
    out = cli("register", "--pairs", str(tmp_path / "pairs.csv"), "--output", str(tmp_path / "out"), "--method", "optimisation",
              "--iterations", "3", "--no-affine", "--working-spacing", "4")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 of 2 file(s) done" in out.stdout
    assert sorted(p.name for p in (tmp_path / "out" / "moving0_to_fixed").iterdir()) == ["labels.nrrd", "transform.h5", "warped.nrrd"]
    assert sorted(p.name for p in (tmp_path / "out" / "moving1_to_fixed").iterdir()) == ["transform.h5", "warped.nrrd"]
    assert read_volume(tmp_path / "out" / "moving0_to_fixed" / "warped.nrrd").array.shape == (20, 20, 20)
    rerun = register_pairs(tmp_path / "pairs.csv", tmp_path / "out", method="optimisation", iterations=3, affine=False, working_spacing_mm=4.0)
    assert [r.status for r in rerun] == ["skipped", "skipped"]

    (tmp_path / "bad.csv").write_text("fixed,moving\nfixed.nrrd,missing.nrrd\n")
    refused = cli("register", "--pairs", str(tmp_path / "bad.csv"), "--output", str(tmp_path / "out2"))
    assert refused.returncode == 2 and "missing.nrrd" in refused.stderr and "does not exist" in refused.stderr
    with pytest.raises(SlicerLeapError, match="Unknown option"):
        register_pairs(tmp_path / "pairs.csv", tmp_path / "out3", method="optimisation", iteration=3)


def test_batch_options_need_a_folder(tmp_path):
    scan = write_volume(sphere_phantom(16), tmp_path / "scan.nii.gz")
    out = cli("superres", "--input", str(scan), "--output", str(tmp_path / "fine.nrrd"), "--method", "sinc", "--workers", "2")
    assert out.returncode == 2 and "--workers and --cluster run a folder" in out.stderr


def test_ctrl_c_on_a_dask_batch_leaves_no_job_folder_and_no_worker(tmp_path):
    """Long SR4ZCT jobs on two Dask workers; SIGINT once both run: every job cancels and removes its copy of the scan."""
    source = tmp_path / "in"
    source.mkdir()
    for n in range(3):
        write_volume(sphere_phantom(24, spacing=(1.0, 1.0, 3.0), seed=n), source / f"case{n}.nii.gz")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    batch = subprocess.Popen(["slicerleap", "superres", "--input", str(source), "--output", str(tmp_path / "out"), "--method", "sr4zct",
                              "--iterations", "20000", "--workers", "2"], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and len([f for f in temp.glob(f"{PREFIX}*") if (f / "worker.log").exists()]) < 2:
        time.sleep(0.3)
    assert len(list(temp.glob(f"{PREFIX}*"))) == 2, "the two jobs did not start"
    everything = psutil.Process(batch.pid).children(recursive=True)
    batch.send_signal(signal.SIGINT)
    _, stderr = batch.communicate(timeout=120)
    assert batch.returncode != 0
    assert list(temp.glob(f"{PREFIX}*")) == [], stderr[-2000:]
    gone, alive = psutil.wait_procs(everything, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    assert not list((tmp_path / "out").glob("*.nii.gz"))
