"""No copy of a patient's scan outlives its job: signals to the CLI, a SIGKILL (swept at the next start), a folder
of scans with a bad file in it, and an error message that names a log which exists."""
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from phantoms import sphere_phantom
from slicerleap.io import write_volume
from slicerleap.jobs import Job, JobFailed
from slicerleap.jobs.job_folders import PREFIX, new_job_folder, sweep_stale_job_folders


def _start_long_job(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    temp = tmp_path / "tmp"
    temp.mkdir()
    scan = write_volume(sphere_phantom(24, spacing=(1.0, 1.0, 3.0)), tmp_path / "scan.nii.gz")
    env = {**os.environ, "TMPDIR": str(temp)}
    cli = subprocess.Popen(["slicerleap", "superres", "--input", str(scan), "--output", str(tmp_path / "out.nrrd"),
                            "--method", "sr4zct", "--iterations", "20000"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # until the worker runs with the staged copy of the scan in its job folder
        folders = list(temp.glob(f"{PREFIX}*"))
        if folders and (folders[0] / "worker.log").exists() and psutil.Process(cli.pid).children():
            return cli, temp
        time.sleep(0.2)
    cli.kill()
    raise AssertionError("the job did not start")


def _workers_of(cli_pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(cli_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_cli_stops_the_worker_and_removes_the_job_folder(tmp_path, sig):
    cli, temp = _start_long_job(tmp_path)
    workers = _workers_of(cli.pid)
    time.sleep(1.0)
    cli.send_signal(sig)
    _, err = cli.communicate(timeout=60)
    assert cli.returncode == 130, err[-800:]
    assert "interrupted" in err
    assert not list(temp.glob(f"{PREFIX}*")), "a copy of the scan was left in the temp folder"
    assert not (tmp_path / "out.nrrd").exists()
    gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, "the worker outlived the CLI"


def test_after_a_sigkill_the_worker_stops_and_the_next_start_sweeps_its_folder(tmp_path):
    cli, temp = _start_long_job(tmp_path)
    workers = _workers_of(cli.pid)
    cli.kill()
    cli.wait(timeout=30)
    gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, "an orphaned worker went on running"
    assert list(temp.glob(f"{PREFIX}*")), "SIGKILL cannot be caught: the folder is still there until the next start"
    env = {**os.environ, "TMPDIR": str(temp)}
    again = subprocess.run(["slicerleap", "segment", "--input", str(tmp_path / "missing.nii.gz"), "--output", str(tmp_path / "o.nrrd")],
                           env=env, capture_output=True, text=True)
    assert again.returncode == 2
    assert not list(temp.glob(f"{PREFIX}*")), "the next start did not sweep the dead job's folder"


def test_the_sweep_keeps_folders_of_live_jobs_and_folders_the_user_kept(tmp_path):
    live = new_job_folder("segment", tmp_path)
    kept = new_job_folder("segment", tmp_path)
    (kept / "owner.json").unlink()  # what Job.cleanup() does with --keep-files
    dead = new_job_folder("segment", tmp_path)
    (dead / "owner.json").write_text('{"pid": 999999999, "started": 1.0}')
    assert sweep_stale_job_folders(tmp_path) == [dead]
    assert live.exists() and kept.exists() and not dead.exists()


def test_a_folder_of_scans_goes_on_past_a_bad_file_and_reports_each(tmp_path):
    (tmp_path / "in").mkdir()
    write_volume(sphere_phantom(24), tmp_path / "in" / "a.nii.gz")
    (tmp_path / "in" / "b.nii.gz").write_bytes(b"not a scan")
    write_volume(sphere_phantom(24, seed=3), tmp_path / "in" / "c.nrrd")
    done = subprocess.run(["slicerleap", "segment", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                           "--model", "brain-tissue-unet@1.0.0"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-800:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.nii.gz", "a.nii.gz.result.json", "c.nrrd", "c.nrrd.result.json"]
    table = done.stdout
    assert "b.nii.gz  bad-input" in table and "a.nii.gz  done" in table and "c.nrrd    done" in table
    assert "2 of 3 file(s) done, 1 not" in table


def test_an_error_naming_the_worker_log_names_a_file_that_exists(tmp_path):
    job_dir = new_job_folder("segment", tmp_path)
    (job_dir / "job.json").write_text("{ broken", encoding="utf-8")  # the worker fails inside: an internal error
    job = Job(job_dir).start()
    job.wait(timeout=120)
    with pytest.raises(JobFailed) as failed:
        job.result()
    job.cleanup()
    assert not job_dir.exists()
    named = [word.strip("().,") for word in failed.value.message.split() if word.strip("().,").endswith("worker.log")]
    assert named and Path(named[0]).is_file(), failed.value.message
    assert "JSONDecodeError" in Path(named[0]).read_text()
