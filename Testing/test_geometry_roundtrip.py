"""Property test: array -> file -> Volume -> scene node -> file keeps voxels and IJK->RAS (1e-6)."""
import numpy as np
import pytest

from geometry_cases import random_geometry_volume
from slicerleap.io import read_volume, write_volume
from slicerleap.scene import node_to_volume, save_node, volume_to_node

N_CASES = 210
FORMATS = [".nrrd", ".nii.gz", ".mha"]


def test_random_geometries_round_trip_through_files_and_scene(scene_ctx, tmp_path):
    rng = np.random.default_rng(20261122)
    worst = 0.0
    for case in range(N_CASES):
        dtype = [np.int16, np.uint8, np.float32, np.int32][case % 4]
        original = random_geometry_volume(rng, dtype)
        suffix_in, suffix_out = FORMATS[case % 3], FORMATS[(case // 3) % 3]
        first = write_volume(original, tmp_path / f"in{case}{suffix_in}")
        loaded = read_volume(first)
        node = volume_to_node(scene_ctx, loaded, f"case{case}")
        from_node = node_to_volume(node)
        second = tmp_path / f"out{case}{suffix_out}"
        save_node(node, second)  # written by Slicer's own storage node
        final = read_volume(second)
        for stage, vol in (("file", loaded), ("node", from_node), ("node->file", final)):
            assert vol.array.shape == original.array.shape, (case, stage)
            np.testing.assert_array_equal(vol.array, original.array, err_msg=f"case {case} {stage}")
            err = np.abs(vol.ijk_to_ras - original.ijk_to_ras).max()
            worst = max(worst, err)
            assert err < 1e-6, f"case {case} ({suffix_in}->{suffix_out}) {stage}: IJK->RAS off by {err}"
        scene_ctx.scene.RemoveNode(node)
    print(f"worst IJK->RAS error over {N_CASES} geometries: {worst:.2e}")


def test_ras_lps_convention_matches_slicer_for_a_known_file(scene_ctx, tmp_path):
    """An LPS file origin (10, 20, 30) must appear in Slicer at RAS (-10, -20, 30), in our reader and in MRML's."""
    import SimpleITK as sitk

    from slicerleap.scene import load_node

    image = sitk.Image(4, 3, 2, sitk.sitkInt16)
    image.SetOrigin((10, 20, 30))
    image.SetSpacing((1, 2, 3))
    sitk.WriteImage(image, str(tmp_path / "lps.nrrd"))
    ours = read_volume(tmp_path / "lps.nrrd")
    np.testing.assert_allclose(ours.origin, [-10, -20, 30])
    np.testing.assert_allclose(ours.ijk_to_ras[:3, :3], np.diag([-1, -2, 3]))
    slicers = node_to_volume(load_node(scene_ctx, tmp_path / "lps.nrrd"))
    np.testing.assert_allclose(slicers.ijk_to_ras, ours.ijk_to_ras, atol=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dicom_series_round_trip(tmp_path, seed):
    rng = np.random.default_rng(seed)
    original = random_geometry_volume(rng, np.int16)
    if np.linalg.det(original.directions) < 0:  # DICOM slice order defines k: mirror-free grids only
        original.ijk_to_ras[:3, 2] *= -1
    folder = write_volume(original, tmp_path / "series")
    loaded = read_volume(folder)
    np.testing.assert_array_equal(loaded.array, original.array)
    np.testing.assert_allclose(loaded.ijk_to_ras, original.ijk_to_ras, atol=1e-4)  # DICOM stores decimal strings


def test_a_volume_keeps_its_name_through_nrrd_so_job_outputs_are_named_after_the_scene_node(tmp_path):
    from slicerleap.volume import Volume

    volume = Volume(np.zeros((3, 4, 5), np.float32), np.eye(4), {"name": "MRHead (copy)"})
    assert read_volume(write_volume(volume, tmp_path / "image.nrrd")).metadata["name"] == "MRHead (copy)"
    assert read_volume(write_volume(volume, tmp_path / "image.nii.gz")).metadata["name"] == "image"  # NIfTI: the file's stem
