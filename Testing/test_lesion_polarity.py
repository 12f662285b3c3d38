"""Lesion polarity: hypo/hyper-intense lesions are told apart as the generator made them on real anatomy, mirroring
reverses each lesion's contrast (partial-volume edge included) and leaves the rest of the scan alone, and the slice
trainer's mirrored copies reach stage 2."""
import numpy as np
import pytest
from scipy import ndimage

from slicerleap.data.samples import sample_data_available
from slicerleap.segmentation.sks.lesion_polarity import lesion_polarities, mirror_lesion_contrast


def two_lesion_phantom():
    """Tissue at 1.0 with texture; a dark lesion (0.7) and a bright one (1.3), each with a partial-volume shell."""
    rng = np.random.default_rng(0)
    image = 1.0 + 0.02 * rng.standard_normal((24, 40, 40))
    lesion = np.zeros(image.shape, bool)
    z, y, x = np.ogrid[:24, :40, :40]
    for (cy, cx), level in (((12, 12), 0.7), ((28, 28), 1.3)):
        r = np.sqrt((z - 12) ** 2 + (y - cy) ** 2 + (x - cx) ** 2)
        share = np.clip(5.5 - r, 0, 1)  # 1 inside r < 4.5, partial out to 5.5
        image = (1 - share) * image + share * level
        lesion |= share > 0.5
    return image.astype(np.float32), lesion


def test_phantom_polarities_and_mirror():
    image, lesion = two_lesion_phantom()
    polarities = lesion_polarities(image, lesion)
    assert sorted(p for _, p in polarities) == ["hyper", "hypo"]
    dark = next(m for m, p in polarities if p == "hypo")
    assert dark[12, 12, 12] and not dark[12, 28, 28]
    mirrored = mirror_lesion_contrast(image, lesion)
    assert mirrored[12, 12, 12] == pytest.approx(1.3, abs=0.08) and mirrored[12, 28, 28] == pytest.approx(0.7, abs=0.08)
    assert sorted(p for _, p in lesion_polarities(mirrored, lesion)) == ["hyper", "hypo"]
    assert {tuple(np.argwhere(m)[0]): p for m, p in lesion_polarities(mirrored, lesion)}[tuple(np.argwhere(dark)[0])] == "hyper"
    # the partial-volume shell is mirrored too: no dark rim left around the now-bright lesion
    shell = ndimage.binary_dilation(dark, iterations=1) & ~dark
    assert mirrored[shell].min() > 0.94 and image[shell].min() < 0.9
    # tissue beyond the edge is untouched
    far = ~ndimage.binary_dilation(lesion, iterations=1)
    assert np.array_equal(mirrored[far], image[far])
    assert np.array_equal(image, two_lesion_phantom()[0])  # the input is not changed


@pytest.mark.skipif(not sample_data_available(), reason="needs nilearn's MNI template")
def test_polarities_match_the_generator_on_real_anatomy():
    from slicerleap.data.lesion_cases import LESION_VALUE, make_lesion_case

    image, labels = make_lesion_case(40)
    lesion = labels.array == LESION_VALUE
    found = lesion_polarities(image.array, lesion)
    components, _ = ndimage.label(lesion)
    made = {}
    for description in labels.metadata["lesions"]:
        c = int(components[tuple(description["centre_kji"])])
        if c:
            made.setdefault(c, set()).add(description["polarity"])
    checked = 0
    for mask, polarity in found:
        c = int(np.bincount(components[mask]).argmax())
        if len(made.get(c, ())) == 1:  # lesions that merged with one of the other polarity are ambiguous
            assert polarity in made[c]
            checked += 1
    assert checked >= 2 and {p for _, p in found} == {"hypo", "hyper"}
    flipped = {p for _, p in lesion_polarities(mirror_lesion_contrast(image.array, lesion), lesion)}
    assert flipped == {"hypo", "hyper"}
    assert [p for _, p in lesion_polarities(mirror_lesion_contrast(image.array, lesion), lesion)] == [
        {"hypo": "hyper", "hyper": "hypo"}[p] for _, p in found]


def test_trainer_adds_mirrored_copies_of_the_lesion_class_only():
    from slicerleap.segmentation.slice_data import SliceCase
    from slicerleap.segmentation.sks.trainer import with_mirrored_lesion_copies
    from slicerleap.volume import Volume

    image, lesion = two_lesion_phantom()
    labels = lesion.astype(np.uint8) * 2
    labels[:, :, 36:] = 1  # an "organ" strip: class 1 is not mirrored
    case = SliceCase(Volume(image, np.eye(4)), labels, None, "a")
    empty = SliceCase(Volume(image, np.eye(4)), np.zeros_like(labels), None, "no lesion")
    out = with_mirrored_lesion_copies([case, empty], lesion_class=2)
    assert len(out) == 3 and out[:2] == [case, empty]
    copy = out[2]
    assert copy.labels is labels and np.array_equal(copy.grid.ijk_to_ras, case.grid.ijk_to_ras)
    assert np.array_equal(copy.image[:, :, 36:], image[:, :, 36:])
    assert copy.image[12, 12, 12] > 1.2 and copy.image[12, 28, 28] < 0.8


def test_stage2_samples_from_the_mirrored_copies_when_asked(monkeypatch):
    from slicerleap.segmentation.sks import trainer as sks_trainer
    from slicerleap.segmentation.sks.net import SKSNet
    from slicerleap.segmentation.slice_data import SliceCase
    from slicerleap.volume import Volume

    image, lesion = two_lesion_phantom()
    case = SliceCase(Volume(image, np.eye(4)), lesion.astype(np.uint8), None, "a")
    seen = []
    sample = sks_trainer.sample_slices
    monkeypatch.setattr(sks_trainer, "sample_slices", lambda cases, *a, **k: seen.append([c.name for c in cases]) or sample(cases, *a, **k))
    tiny = dict(embed_dim=8, depths=(1, 1, 1), num_heads=(1, 1, 2), window=4)
    for mirrored in (False, True):
        config = sks_trainer.SliceTrainingConfig(sks=tiny, crop=32, batch_size=2, iterations=1, mirrored_lesion_copies=mirrored)
        sks_trainer.train_segmenter(SKSNet(in_channels=3, out_channels=2, **tiny), [case], [], config, "cpu", lambda *a: None)
    assert seen == [["a"], ["a", "a (lesion contrast mirrored)"]]
