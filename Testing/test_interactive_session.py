"""Interactive segmentation (issue 35): the session on real scans that are not the MNI template (the ITK head, the
InVesalius head CT), its locality, undo and reset, the simulated annotator, and the long-lived worker process —
the same masks as in-process, a hung or killed worker reported (not hung), no copy of the scan left behind."""
import os
import signal

import numpy as np
import pytest
from scipy import ndimage

from slicerleap.data.invesalius import head_ct, head_ct_available
from slicerleap.data.itk_examples import itk_example_available, itk_example_brain
from slicerleap.errors import BadInputError
from slicerleap.jobs.interactive_process import InteractiveSessionProcess
from slicerleap.jobs.job import JobFailed
from slicerleap.segmentation.interactive.click_simulator import clicks_to_reach, next_click, simulate_clicks
from slicerleap.segmentation.interactive.session import InteractiveSession
from slicerleap.segmentation.metrics import overlap_metrics
from slicerleap.volume import Volume

needs_itk = pytest.mark.skipif(not itk_example_available(), reason="ITK example data not installed")
needs_ct = pytest.mark.skipif(not head_ct_available(), reason="InVesalius head CT not installed")


def _deepest_voxel(mask):
    depth = ndimage.distance_transform_edt(mask)
    return np.unravel_index(int(np.argmax(depth)), mask.shape)


def _ras(volume, kji):
    return volume.ijk_to_ras_points([kji[::-1]])[0]


@pytest.fixture(scope="module")
def itk_head():
    image, labels = itk_example_brain()
    return image, labels.array == 2  # white matter


@needs_itk
def test_a_click_grows_the_structure_only_inside_its_reach_and_undo_restores_it(itk_head):
    image, white = itk_head
    session = InteractiveSession(image, reach_mm=20)
    click = _deepest_voxel(white)
    region = session.add_point(_ras(image, click), positive=True)
    mask = session.mask_array
    outside = np.ones(mask.shape, bool)
    outside[region] = False
    assert mask[click] and not mask[outside].any()
    for axis, s in enumerate(region):  # 20 mm each way on the 2 x 2 x 3 mm grid (k is the 3 mm axis)
        assert s.stop - s.start <= 2 * int(np.ceil(20 / image.spacing[::-1][axis])) + 1
    inside_white = overlap_metrics(mask[region], white[region])
    assert inside_white["precision"] > 0.8, inside_white  # it grew into white matter, not into everything
    before = mask.copy()
    session.add_point(_ras(image, click), positive=False)  # the same place, negative: what it added goes again
    assert session.mask_array.sum() < before.sum()
    session.undo()
    assert np.array_equal(session.mask_array, before) and session.clicks == 1
    session.undo()
    assert not session.mask_array.any() and session.undo() is None


@needs_itk
def test_correcting_an_existing_mask_changes_it_only_near_the_clicks(itk_head):
    image, white = itk_head
    start = ndimage.binary_erosion(white, iterations=2)  # a pseudo-label that misses the border
    session = InteractiveSession(image, initial_mask=image.with_array(start.astype(np.uint8)), reach_mm=15)
    scores = simulate_clicks(session, white, 5)
    assert scores[-1] > overlap_metrics(start, white)["dice"]
    changed = session.mask_array != start
    touched = np.zeros(changed.shape, bool)
    for interaction in session.history:
        touched[interaction.region] = True
    assert changed.any() and not changed[~touched].any()
    session.reset()
    assert np.array_equal(session.mask_array, start) and session.clicks == 0


@needs_ct
def test_clicks_on_a_real_head_ct_reach_the_bone_and_more_clicks_do_better():
    ct = head_ct()
    parts, _ = ndimage.label(ct.array > 300)
    skull = parts == np.argmax(np.bincount(parts.ravel())[1:]) + 1  # 400k voxels: no click reaches all of it
    session = InteractiveSession(ct)
    scores = simulate_clicks(session, skull, 5, rng=np.random.default_rng(0))
    assert scores[0] > 0.03 and scores[-1] > 3 * scores[0], scores
    assert all(h.prompt.positive for h in session.history)  # what a click grows is bone: no leak to correct
    assert max(h.seconds for h in session.history) < 5


@needs_itk
def test_a_box_keeps_the_object_at_its_centre_and_a_scribble_adds_along_its_stroke(itk_head):
    image, white = itk_head
    centre = np.array(_deepest_voxel(white))
    low, high = centre - [2, 6, 6], centre + [2, 6, 6]
    session = InteractiveSession(image)
    region = session.add_box(_ras(image, tuple(low)), _ras(image, tuple(high)))
    assert [s.stop - s.start for s in region] == [5, 13, 13]
    box_mask = session.mask_array[region]
    assert box_mask[tuple(np.array(box_mask.shape) // 2)]
    assert overlap_metrics(box_mask, white[region])["precision"] > 0.8
    session.reset()
    stroke = [_ras(image, tuple(centre + [0, 0, d])) for d in (-4, 4)]
    session.add_scribble(stroke, positive=True)
    for d in range(-4, 5):
        assert session.mask_array[tuple(centre + [0, 0, d])]


def test_prompts_off_the_image_and_masks_off_its_grid_are_refused():
    image = Volume.from_geometry(np.random.default_rng(0).normal(size=(10, 12, 14)).astype(np.float32), spacing=(1, 1, 2))
    session = InteractiveSession(image)
    with pytest.raises(BadInputError, match="outside the image"):
        session.add_point((100.0, 0.0, 0.0))
    with pytest.raises(BadInputError, match="n x 3"):
        session.add_scribble([1.0, 2.0])
    with pytest.raises(BadInputError, match="no voxel"):
        session.add_box((-50, -50, -50), (-40, -40, -40))
    with pytest.raises(BadInputError, match="shape"):
        InteractiveSession(image, initial_mask=np.zeros((3, 3, 3)))
    with pytest.raises(BadInputError, match="grid"):
        InteractiveSession(image, initial_mask=Volume.from_geometry(np.zeros((10, 12, 14)), spacing=(1, 1, 1)))
    assert session.clicks == 0


def test_the_simulated_annotator_clicks_the_centre_of_the_largest_error():
    truth = np.zeros((20, 20, 20), bool)
    truth[2:9, 2:9, 2:9] = True  # 343 voxels missed
    mask = np.zeros_like(truth)
    mask[12:17, 12:17, 12:17] = True  # 125 voxels too many
    assert next_click(mask, truth, (1, 1, 1)) == ((5, 5, 5), True)
    truth[2:9, 2:9, 2:9] = False
    assert next_click(mask, truth, (1, 1, 1)) == ((14, 14, 14), False)
    assert next_click(mask, mask, (1, 1, 1)) is None
    assert clicks_to_reach([0.5, 0.86, 0.91], 0.85) == 2 and clicks_to_reach([0.5, 0.86], 0.9) == 3


@needs_itk
def test_the_worker_process_gives_the_in_process_masks_and_leaves_nothing_behind(itk_head, tmp_path):
    image, white = itk_head
    start = image.with_array(ndimage.binary_erosion(white, iterations=2).astype(np.uint8))
    local = InteractiveSession(image, initial_mask=start)
    with InteractiveSessionProcess(image, initial_mask=start, root=tmp_path) as remote:
        assert remote.ready["model"] == "grow-from-clicks"
        click = _ras(image, _deepest_voxel(white & ~start.array.astype(bool)))
        assert remote.add_point(click, positive=True) == local.add_point(click, positive=True)
        assert np.array_equal(remote.mask_array, local.mask_array)
        with pytest.raises(BadInputError, match="outside the image"):
            remote.add_point((1000.0, 0.0, 0.0))
        remote.undo()
        local.undo()
        assert np.array_equal(remote.mask_array, local.mask_array) and remote.running
        folder = remote.folder
        assert folder.exists() and not (folder / "image.nrrd").exists()  # the scan lives in the worker's memory only
    assert not folder.exists() and list(tmp_path.iterdir()) == []


@needs_itk
@pytest.mark.parametrize("how", ["hung", "killed"])
def test_a_hung_or_killed_worker_is_reported_not_waited_for(itk_head, tmp_path, how):
    image, white = itk_head
    remote = InteractiveSessionProcess(image, root=tmp_path, timeout_s=3)
    pid, folder = remote.process.pid, remote.folder
    os.kill(pid, signal.SIGSTOP if how == "hung" else signal.SIGKILL)
    with pytest.raises(JobFailed, match="did not answer within 3 s" if how == "hung" else "ended unexpectedly|not running"):
        remote.add_point(_ras(image, _deepest_voxel(white)))
    assert not folder.exists() and not remote.running
    with pytest.raises(JobFailed, match="not running"):
        remote.undo()


@needs_itk
@needs_ct
def test_train_a_click_network_from_the_cli_then_click_with_it(itk_head, tmp_path):
    """`slicerleap train interactive` registers a click network; a session uses it by id (in this process and in the
    worker process); on a CT it is refused, naming the classical model as the way out."""
    import subprocess

    from slicerleap.io import write_volume

    image, white = itk_head
    region = (slice(15, 45), slice(30, 100), slice(30, 100))
    for folder, volume in (("images", image.crop(region)), ("labels", image.crop(region).with_array(
            itk_example_brain()[1].array[region]))):
        (tmp_path / folder).mkdir()
        write_volume(volume, tmp_path / folder / "head.nrrd")
    out = subprocess.run(["slicerleap", "train", "interactive", "--images", str(tmp_path / "images"), "--labels",
                          str(tmp_path / "labels"), "--out", str(tmp_path / "model"), "--id", "test-clicks@1.0.0",
                          "--modality", "MR", "--iterations", "3", "--batch-size", "2"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "registered test-clicks@1.0.0" in out.stdout and (tmp_path / "model" / "model.safetensors").is_file()
    session = InteractiveSession(image, model="test-clicks@1.0.0")
    click = _ras(image, _deepest_voxel(white))
    changed = session.add_point(click, positive=True)
    outside = np.ones(white.shape, bool)
    outside[changed] = False
    assert session.refiner.name == "test-clicks@1.0.0" and not session.mask_array[outside].any()
    with InteractiveSessionProcess(image, model="test-clicks@1.0.0", root=tmp_path) as remote:
        assert remote.ready["model"] == "test-clicks@1.0.0"
        remote.add_point(click, positive=True)
        assert np.array_equal(remote.mask_array, session.mask_array)
    with pytest.raises(BadInputError, match="grow-from-clicks"):
        InteractiveSession(head_ct(), model="test-clicks@1.0.0")


def test_a_box_on_a_tilted_scan_changes_only_the_voxels_inside_it():
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    k, j, i = np.mgrid[:24, :40, :40]
    array = np.where((i - 20) ** 2 + (j - 20) ** 2 + (k - 12) ** 2 < 8 ** 2, 200.0, 20.0) + np.random.default_rng(0).normal(0, 5, k.shape)
    image = Volume.from_geometry(array.astype(np.float32), spacing=(1.0, 1.0, 1.5), directions=rotation)
    centre = image.ijk_to_ras_points([[20, 20, 12]])[0]
    session = InteractiveSession(image)
    region = session.add_box(centre - 10, centre + 10)
    positions = image.voxel_positions_ras()
    inside = np.all((positions >= centre - 10 - 1e-6) & (positions <= centre + 10 + 1e-6), axis=-1)
    outside_box = np.zeros(inside.shape, bool)
    outside_box[region] = ~inside[region]
    assert outside_box.any() and not session.mask_array[outside_box].any()  # the grid-aligned region is larger
    assert session.mask_array[tuple(np.array([12, 20, 20]))]


@needs_itk
@needs_ct
def test_the_default_model_is_the_classical_one_unless_a_click_network_is_chosen_and_fits_the_scan(itk_head, tmp_path, monkeypatch):
    """No default click network (the bundled one is not: it did no better on held-out scans) -> grow-from-clicks. A
    network made the default is used on an MR scan; on a CT it would be refused, so the session falls back to the
    classical model and says why (not silently)."""
    from slicerleap.models import get_catalog

    image, _ = itk_head
    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path))
    assert InteractiveSession(image).refiner.name == "grow-from-clicks"
    get_catalog().set_default("brain-clicks@1.0.0")
    chosen = InteractiveSession(image)
    assert chosen.refiner.name == "brain-clicks@1.0.0"
    fallback = InteractiveSession(head_ct())
    assert fallback.refiner.name == "grow-from-clicks"
    assert fallback.warnings and "grow-from-clicks instead" in fallback.warnings[0] and "CT" in fallback.warnings[0]
