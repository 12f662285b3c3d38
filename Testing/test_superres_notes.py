"""Super-resolution says what the requested grid does (issue 33): one --spacing value coarsens a finer in-plane
pixel, and an input already at the target spacing has nothing to restore. Both reach result.json and the progress."""
import numpy as np

from slicerleap.io import write_volume
from slicerleap.jobs.files import run_task_on_files
from slicerleap.volume import Volume


def _run(tmp_path, spacing, target):
    rng = np.random.default_rng(0)
    image = Volume.from_geometry(rng.random((12, 24, 24)).astype(np.float32), spacing, [0.0, 0.0, 0.0], None, {"name": "scan"})
    path = write_volume(image, tmp_path / "scan.nrrd")
    messages = []
    result, job = run_task_on_files("superres", {"image": str(path)}, {"method": "linear", "spacing": target}, device="cpu",
                                    on_progress=lambda record: messages.append(record.get("message", "")))
    job.cleanup()
    return result["metrics"]["notes"], messages


def test_one_spacing_value_that_coarsens_the_slices_is_said(tmp_path):
    notes, messages = _run(tmp_path, [0.957, 0.957, 4.5], [1.5, 1.5, 1.5])
    assert len(notes) == 1 and "coarser than the input along I (0.957 -> 1.5 mm), J" in notes[0], notes
    assert "--spacing 0.957 0.957 1.5" in notes[0] and any("coarser" in m for m in messages)


def test_a_volume_already_at_the_target_spacing_is_a_no_op_and_says_so(tmp_path):
    notes, _ = _run(tmp_path, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert any("nothing to restore" in n for n in notes), notes
    assert _run(tmp_path, [1.0, 1.0, 4.0], [1.0, 1.0, 1.0])[0] == []  # the usual case: no note
