"""Lesion benchmark on real MNI anatomy: determinism, anatomical variation, lesion placement, partial
volume, visible contrast, slice labels and the on-disk cohort."""
import json

import numpy as np
import pytest
from scipy import ndimage

from slicerleap.data.samples import mni_t1, sample_data_available

pytestmark = pytest.mark.skipif(not sample_data_available(), reason="needs nilearn's MNI template")

from slicerleap.data.lesion_cases import make_lesion_case, slice_labels, write_lesion_cohort  # noqa: E402
from slicerleap.io import read_volume  # noqa: E402

BALL = ndimage.generate_binary_structure(3, 1)


@pytest.fixture(scope="module")
def cases():
    return {seed: make_lesion_case(seed) for seed in (0, 1)}


def lesion_shells(labels: np.ndarray, component: np.ndarray) -> dict[str, np.ndarray]:
    """Interior, the lesion's own edge voxels and a brain ring 3-4 voxels out."""
    inner = ndimage.binary_erosion(component, BALL)
    grown = [ndimage.binary_dilation(component, BALL, iterations=n) for n in (2, 4)]
    return {"inner": inner, "edge_in": component & ~inner, "ring": grown[1] & ~grown[0] & (labels == 1)}


def described_lesions(labels):
    """(lesion description, its connected component) for lesions whose centre voxel is labelled lesion."""
    components, _ = ndimage.label(labels.array == 2)
    for lesion in labels.metadata["lesions"]:
        index = components[tuple(lesion["centre_kji"])]
        if index:
            yield lesion, components == index


def test_same_seed_gives_the_same_case_and_geometry():
    image_a, labels_a = make_lesion_case(7, spacing_mm=3.0)
    image_b, labels_b = make_lesion_case(7, spacing_mm=3.0)
    assert np.array_equal(image_a.array, image_b.array) and np.array_equal(labels_a.array, labels_b.array)
    assert labels_a.metadata["lesions"] == labels_b.metadata["lesions"]
    assert image_a.same_geometry(labels_a) and np.allclose(image_a.spacing, 3.0)
    assert np.allclose(image_a.directions, mni_t1().directions), "keeps the template's orientation"
    assert image_a.array.dtype == np.float32 and labels_a.array.dtype == np.uint8
    assert set(np.unique(labels_a.array)) == {0, 1, 2}
    assert image_a.metadata["name"] == "lesion case 007" and image_a.metadata["modality"] == "MR"


def test_two_seeds_differ_in_anatomy(cases):
    (image_0, labels_0), (image_1, labels_1) = cases[0], cases[1]
    assert image_0.same_geometry(image_1)
    brain_0, brain_1 = labels_0.array > 0, labels_1.array > 0
    dice = 2 * (brain_0 & brain_1).sum() / (brain_0.sum() + brain_1.sum())
    assert 0.85 < dice < 0.98, f"brains should be alike but warped differently (Dice {dice:.3f})"
    volume_ml = brain_0.sum() * np.prod(labels_0.spacing) / 1000
    assert 1300 < volume_ml < 2300, volume_ml


def test_lesions_lie_within_the_brain(cases):
    for image, labels in cases.values():
        lesion = labels.array == 2
        assert 1 <= len(labels.metadata["lesions"]) <= 3 and lesion.sum() > 20
        depth_mm = ndimage.distance_transform_edt(labels.array > 0, sampling=labels.spacing[::-1])
        for described in labels.metadata["lesions"]:
            assert depth_mm[tuple(described["centre_kji"])] >= 3, "centred well inside the brain"
            assert 3 <= described["radius_mm"] <= 14
        on_brain_surface = ndimage.binary_dilation(labels.array == 0, BALL) & lesion
        assert on_brain_surface.sum() <= 0.05 * lesion.sum(), "lesions sit in parenchyma; few reach the brain's edge"


def test_lesion_edges_have_partial_volume_and_lesions_have_contrast(cases):
    checked = 0
    for image, labels in cases.values():
        wm = np.percentile(image.array[labels.array == 1], 80)  # white matter: the brightest large class on T1
        for lesion, component in described_lesions(labels):
            shells = lesion_shells(labels.array, component)
            if shells["inner"].sum() < 5:
                continue
            shells["ring"] &= np.abs(image.array - wm) < 0.15 * wm  # the white matter around it
            mean = {name: float(image.array[mask].mean()) for name, mask in shells.items()}
            assert abs(image.array[component].mean() - mean["ring"]) > 0.10 * mean["ring"], (lesion, mean)
            if lesion["necrotic_core"] or lesion["oedema_mm"]:
                continue  # a core (under a bright rim) or a dark halo breaks the simple interior -> tissue ramp
            sign = 1 if lesion["polarity"] == "hypo" else -1
            ramp = [sign * mean[name] for name in ("inner", "edge_in", "ring")]
            assert ramp[0] < ramp[1] < ramp[2], (lesion, mean)  # lesion edge voxels: part lesion, part tissue
            checked += 1
    assert checked >= 1


def test_slice_labels_match_the_label_array(cases):
    for _, labels in cases.values():
        flags = slice_labels(labels)
        assert flags.shape == (labels.array.shape[0],) and flags.dtype == np.int8
        assert np.array_equal(flags, [(labels.array[k] == 2).any() for k in range(labels.array.shape[0])])


def test_cohort_files_read_back_with_geometry_and_slice_ranges(tmp_path, cases):
    info = write_lesion_cohort(tmp_path, 2, first_seed=0)
    ranges = json.loads((tmp_path / "slice_labels.json").read_text(encoding="utf-8"))
    assert [row["seed"] for row in info] == [0, 1] and set(ranges) == {"case_000", "case_001"}
    for row in info:
        image, labels = cases[row["seed"]]
        image_back, labels_back = read_volume(row["image"]), read_volume(row["labels"])
        assert image_back.same_geometry(image) and labels_back.same_geometry(labels)
        assert np.array_equal(labels_back.array, labels.array), "same seed, same labels (and files are lossless)"
        assert np.allclose(image_back.array, image.array)
        assert row["n_lesions"] == len(labels.metadata["lesions"])
        assert row["lesion_ml"] == pytest.approx((labels.array == 2).sum() * np.prod(labels.spacing) / 1000, abs=1e-3)
        flags = np.zeros(labels.array.shape[0], dtype=np.int8)
        for first, last in ranges[f"case_{row['seed']:03d}"]["lesion_slices"]:
            assert first <= last
            flags[first:last + 1] = 1
        assert np.array_equal(flags, slice_labels(labels_back))


def test_tissue_cases_vary_the_real_anatomy_and_label_its_white_matter():
    from slicerleap.data.lesion_cases import make_tissue_case

    (a, wm_a), (b, wm_b) = make_tissue_case(3, spacing_mm=3.0), make_tissue_case(4, spacing_mm=3.0)
    assert a.same_geometry(wm_a) and set(np.unique(wm_a.array)) == {0, 1}
    assert 0.05 < wm_a.array.mean() < 0.3 and not np.array_equal(wm_a.array, wm_b.array)  # warps differ
    assert np.median(a.array[wm_a.array == 1]) > 1.2 * np.median(a.array[(wm_a.array == 0) & (a.array > 0.2 * a.array.max())])
    again, _ = make_tissue_case(3, spacing_mm=3.0)
    assert np.array_equal(again.array, a.array)


def test_lesions_in_a_second_real_brain_keep_its_geometry_and_sit_in_its_white_matter():
    """The ITK example head (another subject and scanner) as the anatomy: its field of view and orientation, lesions
    inside its brain mask with the contrast they were drawn with, and a different brain from the template's."""
    from slicerleap.data.itk_examples import itk_example_available, itk_example_brain

    if not itk_example_available():
        pytest.skip("needs Debian's insighttoolkit5-examples")
    image, labels = make_lesion_case(3, spacing_mm=3.0, anatomy="itk-head")
    head, tissue = itk_example_brain()
    assert np.allclose(image.directions, head.directions) and np.allclose(image.spacing, 3.0)
    assert labels.metadata["anatomy"] == "itk-head" and image.metadata["name"] == "itk-head lesion case 003"
    brain_ml = (labels.array > 0).sum() * 27 / 1000
    head_brain_ml = (head.array > 0).sum() * np.prod(head.spacing) / 1000
    assert abs(brain_ml - head_brain_ml) / head_brain_ml < 0.2, (brain_ml, head_brain_ml)
    assert (labels.array == 2).sum() > 0
    for lesion, component in described_lesions(labels):
        brain = image.array[ndimage.binary_dilation(component, BALL, iterations=3) & (labels.array == 1)]
        darker = np.median(image.array[component]) < np.median(brain)
        assert darker == (lesion["polarity"] == "hypo"), lesion
    with pytest.raises(ValueError, match="Unknown anatomy"):
        make_lesion_case(3, anatomy="knee")
