"""The four modules' Qt-free logics end to end on a real MRML scene (slicer-core) and real worker
processes: the same scenarios as each module's ScriptedLoadableModuleTest, which needs Slicer desktop.

Kept small for 2 CPU cores: 32^3 phantoms at 2 mm, few iterations, a tiny U-Net; SR4ZCT's quality check uses
a 64^3 block of real anatomy (the MNI T1) and a small training budget.
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import slicer
import slicer.util
import vtk

ROOT = Path(__file__).resolve().parents[1]
for module in ("SlicerLeapCommon", "SKSSegmentation", "RegistrationDL", "SuperResolution", "FedTools"):
    sys.path.insert(0, str(ROOT / module))  # as Slicer does for each scripted module's folder

from FedToolsLib.logic import FedToolsLogic  # noqa: E402
from RegistrationDLLib.logic import RegistrationDLLogic  # noqa: E402
from SKSSegmentationLib.logic import SKSSegmentationLogic  # noqa: E402
from SuperResolutionLib.logic import SuperResolutionLogic  # noqa: E402

from slicerleap import Volume  # noqa: E402
from slicerleap.errors import BadInputError  # noqa: E402
from slicerleap.jobs import JobFailed  # noqa: E402
from slicerleap.models import ModelCatalog  # noqa: E402
from slicerleap.scene import labels_to_segmentation_node, new_scene_context, node_to_volume, volume_to_node  # noqa: E402
from slicerleap.scene.segmentations import hex_to_rgb, segmentation_node_to_labels  # noqa: E402

SPACING = 2.0
LPS_LIKE = np.diag([-1.0, -1.0, 1.0])  # the usual axis flips of a scanner volume seen in RAS
ORIGIN = (60.0, 50.0, -20.0)
PHANTOM_LABELS = [{"value": 1, "name": "Bright sphere", "color": "#e0c060"},
                  {"value": 2, "name": "Dim sphere", "color": "#4080e0"}]


def phantom(shift_vox=(0, 0, 0), size=32, seed=0):
    """Two spheres (label 1 bright, label 2 dim) on a noisy background; `shift_vox` moves them (i, j, k)."""
    k, j, i = np.mgrid[:size, :size, :size].astype(np.float32)
    si, sj, sk = shift_vox
    labels = np.zeros((size, size, size), np.int16)
    labels[(i - 11 - si) ** 2 + (j - 12 - sj) ** 2 + (k - 16 - sk) ** 2 < 6.5 ** 2] = 1
    labels[(i - 22 - si) ** 2 + (j - 20 - sj) ** 2 + (k - 15 - sk) ** 2 < 5 ** 2] = 2
    rng = np.random.default_rng(seed)
    image = np.choose(labels, [100.0, 600.0, 350.0]) + rng.normal(0, 15, labels.shape)
    return image.astype(np.int16), labels


def add_volume(ctx, array, name):
    return volume_to_node(ctx, Volume.from_geometry(array, (SPACING,) * 3, ORIGIN, LPS_LIKE), name)


def add_segmentation(ctx, labels, reference_node, name, specs=PHANTOM_LABELS):
    volume = Volume.from_geometry(labels, (SPACING,) * 3, ORIGIN, LPS_LIKE)
    return labels_to_segmentation_node(ctx, volume, specs, name, reference_node=reference_node)


def ijk_to_ras(node):
    return node_to_volume(node).ijk_to_ras


@pytest.fixture(scope="module")
def ctx():
    return new_scene_context()


@pytest.fixture(scope="module")
def trained_model(ctx, tmp_path_factory):
    """FedTools' local training on two phantom cases, in an isolated user catalog ($SLICERLEAP_HOME)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLICERLEAP_HOME", str(tmp_path_factory.mktemp("slicerleap-home")))
        images, segmentations = [], []
        for n, shift in enumerate([(0, 0, 0), (2, -1, 1)]):
            image, labels = phantom(shift, seed=n)
            images.append(add_volume(ctx, image, f"case {n}"))
            segmentations.append(add_segmentation(ctx, labels, images[-1], f"case {n} segmentation"))
        records = []
        outputs = FedToolsLogic(ctx).process(
            images, segmentations, model_id="phantom-unet@1.0.0", epochs=1, iterations_per_epoch=2,
            channels=(4, 8, 16), patch=(16, 16, 16), spacing_mm=(2, 2, 2), on_progress=records.append)
        yield {"card": outputs["model"], "records": records, "images": images}


def test_fedtools_local_training_registers_the_model(trained_model):
    card = trained_model["card"]
    assert card["id"] == "phantom-unet@1.0.0"
    assert [(l["value"], l["name"], l["color"]) for l in card["labels"]] == \
        [(l["value"], l["name"], l["color"]) for l in PHANTOM_LABELS]
    assert card["architecture"]["args"]["channels"] == [4, 8, 16]
    assert card["input"]["patch"] == [16, 16, 16] and card["input"]["spacing_mm"] == [2.0, 2.0, 2.0]
    assert Path(card["_path"]).is_file()
    listed = {c["id"]: c for c in ModelCatalog().cards()}
    assert "phantom-unet@1.0.0" in listed and listed["phantom-unet@1.0.0"]["sha256"] == card["sha256"]
    assert any(r.get("stage") == "training" for r in trained_model["records"]), "no training progress was reported"


def test_fedtools_matches_segments_across_cases_by_name(ctx):
    """A case whose segments are listed in another order still gets the first case's label values."""
    volumes, segmentations, truths = [], [], []
    for n, specs in enumerate([PHANTOM_LABELS, PHANTOM_LABELS[::-1]]):
        image, labels = phantom((n, 0, 0), seed=n)
        volumes.append(add_volume(ctx, image, f"ordered case {n}"))
        segmentations.append(add_segmentation(ctx, labels, volumes[-1], f"ordered segmentation {n}", specs))
        truths.append(labels)
    assert segmentations[1].GetSegmentation().GetNthSegment(0).GetName() == "Dim sphere"
    job = FedToolsLogic(ctx).create_local_training_job(volumes, segmentations)
    assert job.spec.params["labels"] == PHANTOM_LABELS  # these segments carry no terminology codes
    for (segmentation, volume, values), truth in zip(job.inputs["labels"], truths):
        np.testing.assert_array_equal(segmentation_node_to_labels(segmentation, volume, values).array, truth)


def test_fedtools_labels_carry_the_segments_terminology(ctx):
    from slicerleap.scene.segmentations import label_specs

    image, labels = phantom()
    volume = add_volume(ctx, image, "coded case")
    specs = [{**PHANTOM_LABELS[0], "terminology": {"category": "SCT^85756007^Tissue", "type": "SCT^389080004^Gray matter"}},
             PHANTOM_LABELS[1]]
    segmentation = add_segmentation(ctx, labels, volume, "coded segmentation", specs)
    assert label_specs(segmentation) == specs


def test_fedtools_rejects_inconsistent_cases(ctx):
    image, labels = phantom()
    volume = add_volume(ctx, image, "lonely case")
    segmentation = add_segmentation(ctx, labels, volume, "lonely segmentation")
    logic = FedToolsLogic(ctx)
    with pytest.raises(BadInputError, match="2 segmentations"):
        logic.create_local_training_job([volume], [segmentation, segmentation])
    with pytest.raises(BadInputError, match="not a valid model id"):
        logic.create_local_training_job([volume], [segmentation], model_id="My Model")
    other = add_volume(ctx, image, "other case")
    renamed = add_segmentation(ctx, labels, other, "renamed segmentation")
    renamed.GetSegmentation().GetNthSegment(0).SetName("Tumour")
    with pytest.raises(BadInputError, match="Tumour"):
        logic.create_local_training_job([volume, other], [segmentation, renamed])


def test_a_model_trained_here_declares_the_domain_of_its_training_images_and_refuses_another_modality(ctx, trained_model):
    """Issue 33: models users train get a domain measured on their training images (their cards had none, so nothing
    was checked); a real head CT given to this MR-like phantom model is refused before any work."""
    from slicerleap.data.invesalius import head_ct, head_ct_available

    domain = trained_model["card"]["domain"]
    assert domain["modality"] == "MR" and domain["foreground_ml"][0] < domain["foreground_ml"][1]
    assert "Bright sphere" in domain["label_share_max"] and "training image" in domain["source"]
    assert domain["label_outside_max"]["Dim sphere"] > 0.5  # below the tissue threshold: not reported as "outside" later
    if not head_ct_available():
        pytest.skip("needs Debian's invesalius-examples for the CT")
    ct = volume_to_node(ctx, head_ct(), "head CT")
    with pytest.raises(JobFailed, match="looks like CT"):
        SKSSegmentationLogic(ctx).process(ct, model_id="phantom-unet@1.0.0", show_result=False)


def test_sks_segmentation_with_the_trained_model(ctx, trained_model):
    image, _ = phantom((1, 1, 0), seed=7)
    volume = add_volume(ctx, image, "patient")
    logic = SKSSegmentationLogic(ctx)  # the fixture's user catalog stays in effect for this module
    assert "phantom-unet@1.0.0" in [c["id"] for c in logic.available_models()]
    outputs = logic.process(volume, model_id="phantom-unet@1.0.0", probability=True)
    segmentation, probability = outputs["segmentation"], outputs["probability"]
    assert segmentation.IsA("vtkMRMLSegmentationNode")
    assert segmentation.GetAttribute("SlicerLeap.model") == "phantom-unet@1.0.0"
    card_colours = {l["name"]: hex_to_rgb(l["color"]) for l in trained_model["card"]["labels"]}
    segments = segmentation.GetSegmentation()
    assert segments.GetNumberOfSegments() > 0
    for n in range(segments.GetNumberOfSegments()):  # only the card's labels, with the card's names and colours
        segment = segments.GetNthSegment(n)
        assert segment.GetName() in card_colours, segment.GetName()
        np.testing.assert_allclose(segment.GetColor(), card_colours[segment.GetName()], atol=1e-6)
        labelmap = segmentation.GetBinaryLabelmapInternalRepresentation(segments.GetNthSegmentID(n))
        image_to_world = vtk.vtkMatrix4x4()
        labelmap.GetImageToWorldMatrix(image_to_world)
        np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(image_to_world), ijk_to_ras(volume), atol=1e-6)
    assert probability.IsA("vtkMRMLScalarVolumeNode")
    np.testing.assert_allclose(ijk_to_ras(probability), ijk_to_ras(volume), atol=1e-6)
    p = node_to_volume(probability).array
    assert p.shape == image.shape and 0.0 <= p.min() and p.max() <= 1.0 + 1e-6


def test_sks_segmentation_rejects_bad_inputs(ctx):
    logic = SKSSegmentationLogic(ctx)
    with pytest.raises(BadInputError, match="No input volume"):
        logic.create_job(None)
    labelmap = ctx.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "a labelmap")
    with pytest.raises(BadInputError, match="not a scalar volume"):
        logic.create_job(labelmap)


def test_registration_recovers_a_shift(ctx):
    fixed_image, _ = phantom(seed=1)
    moving_image, _ = phantom((2, 1, -1), seed=2)
    fixed, moving = add_volume(ctx, fixed_image, "fixed"), add_volume(ctx, moving_image, "moving")
    logic = RegistrationDLLogic(ctx)
    outputs = logic.process(fixed, moving, iterations=10, working_spacing_mm=4.0, affine=False, levels=1, smoothness=0.5)
    transform, warped, jacobian = outputs["transform"], outputs["warped"], outputs["jacobian"]
    assert transform.IsA("vtkMRMLGridTransformNode")
    assert transform.GetNodeReference("fixedVolume") is fixed and transform.GetNodeReference("movingVolume") is moving
    assert warped.IsA("vtkMRMLScalarVolumeNode") and jacobian.IsA("vtkMRMLScalarVolumeNode")
    np.testing.assert_allclose(ijk_to_ras(warped), ijk_to_ras(fixed), atol=1e-6)
    error_before = np.abs(moving_image.astype(np.float32) - fixed_image).mean()
    error_after = np.abs(node_to_volume(warped).array - fixed_image).mean()
    assert error_after < 0.8 * error_before, (error_before, error_after)
    logic.apply_to_moving(transform, moving)
    assert moving.GetParentTransformNode() is transform


def test_registration_rejects_identical_volumes(ctx):
    image, _ = phantom()
    volume = add_volume(ctx, image, "same")
    with pytest.raises(BadInputError, match="same volume"):
        RegistrationDLLogic(ctx).create_job(volume, volume)


def test_superresolution_restores_thin_slices(ctx):
    image, _ = phantom(seed=3)
    thick = Volume.from_geometry(image[::4], (SPACING, SPACING, 4 * SPACING), ORIGIN, LPS_LIKE)
    node = volume_to_node(ctx, thick, "thick slices")
    outputs = SuperResolutionLogic(ctx).process(node, method="bspline", spacing=SPACING)
    restored = node_to_volume(outputs["volume"])
    assert outputs["volume"].IsA("vtkMRMLScalarVolumeNode")
    np.testing.assert_allclose(restored.spacing, [SPACING] * 3, atol=1e-6)
    np.testing.assert_allclose(restored.directions, LPS_LIKE, atol=1e-6)
    centre = lambda v: (v.ijk_to_ras @ np.r_[(np.array(v.shape_ijk) - 1) / 2.0, 1.0])[:3]  # noqa: E731
    np.testing.assert_allclose(centre(restored), centre(thick), atol=1e-6)
    assert restored.shape_ijk == (32, 32, 32)
    assert restored.array.dtype == image.dtype  # the scanner's integer type is kept


def test_superresolution_rejects_unknown_method(ctx):
    image, _ = phantom()
    with pytest.raises(BadInputError, match="Unknown super-resolution method"):
        SuperResolutionLogic(ctx).create_job(add_volume(ctx, image, "v"), method="nearest")


def _rotation(axis, degrees) -> np.ndarray:
    """3x3 rotation by `degrees` about `axis` (Rodrigues)."""
    u = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    cross = np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    angle = np.radians(degrees)
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


def _rotated(volume: Volume, rotation: np.ndarray) -> Volume:
    """The same voxels with the whole IJK->RAS mapping rotated about the RAS origin (an oblique acquisition)."""
    m = volume.ijk_to_ras.copy()
    m[:3, :3] = rotation @ volume.ijk_to_ras[:3, :3]
    m[:3, 3] = rotation @ volume.ijk_to_ras[:3, 3]
    return Volume(volume.array, m, dict(volume.metadata))


def _mni_block(size: int = 64) -> Volume:
    """A size^3 block of the 1 mm MNI T1 (real anatomy) around the centre of the brain's bounding box."""
    from slicerleap.data import mni_t1

    t1 = mni_t1()
    brain = np.argwhere(t1.array > 0)
    lo = (brain.min(axis=0) + brain.max(axis=0)) // 2 - size // 2  # (k, j, i)
    m = t1.ijk_to_ras.copy()
    m[:3, 3] = (t1.ijk_to_ras @ [lo[2], lo[1], lo[0], 1.0])[:3]
    block = t1.array[lo[0]:lo[0] + size, lo[1]:lo[1] + size, lo[2]:lo[2] + size].astype(np.float32)
    assert block.shape == (size,) * 3
    return Volume(block, m, {"name": "MNI T1 block"})


# PSNR gain over cubic seen on this block (training seeds 0-3): 30 iterations +0.25 dB, 60 +0.48, 100 +0.61..0.84,
# 150 +0.74..0.99 (SR4ZCT ~27.1-27.4 dB, cubic 26.36 dB); 150 iterations train in ~5 s on 2 idle cores.
SR4ZCT_TEST_ITERATIONS = 150


def test_superresolution_sr4zct_beats_cubic_on_oblique_real_anatomy():
    """SR4ZCT through the module logic and a real worker, on real anatomy with an oblique orientation: a 64^3 block of
    the 1 mm MNI T1 (the truth `hr`) averaged into 4 mm slices, both rotated by 20 degrees about an oblique axis.
    The result lies on the 1 mm grid of `hr` (same directions, covering the thick slices' extent), is closer to `hr`
    than cubic interpolation of the same slices, and the difference output is exactly result minus cubic, on its grid."""
    from slicerleap.demo import psnr, thick_slices
    from slicerleap.transforms import resample_to_reference

    rotation = _rotation((1.0, 2.0, 0.5), 20.0)
    hr_straight = _mni_block()
    hr, thick = _rotated(hr_straight, rotation), _rotated(thick_slices(hr_straight, 4), rotation)
    assert thick.array.shape == (16, 64, 64)
    np.testing.assert_allclose(thick.spacing, [1.0, 1.0, 4.0], atol=1e-9)
    ctx = new_scene_context()
    node = volume_to_node(ctx, thick, "oblique thick slices")

    outputs = SuperResolutionLogic(ctx).process(node, method="sr4zct", spacing=None, iterations=SR4ZCT_TEST_ITERATIONS,
                                                difference_from_cubic=True, timeout=300)
    restored, thick_in = node_to_volume(outputs["volume"]), node_to_volume(node)

    # geometry: 1 mm isotropic, the input's oblique directions, the thick slices' physical extent
    np.testing.assert_allclose(restored.spacing, [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(restored.directions, thick_in.directions, atol=1e-6)
    assert not np.allclose(np.abs(restored.directions), np.eye(3), atol=0.1)  # really oblique
    assert restored.shape_ijk == (64, 64, 64)
    k_unit = thick_in.directions[:, 2]
    first_in, last_in = thick_in.origin, (thick_in.ijk_to_ras @ [0, 0, 15, 1.0])[:3]
    first_out, last_out = restored.origin, (restored.ijk_to_ras @ [0, 0, 63, 1.0])[:3]
    np.testing.assert_allclose(first_out, first_in - (4.0 - 1.0) / 2.0 * k_unit, atol=1e-6)  # half a thick slice minus half a voxel
    np.testing.assert_allclose(last_out, last_in + (4.0 - 1.0) / 2.0 * k_unit, atol=1e-6)
    n = hr.array.shape[0]  # the 1 mm truth lies exactly on the output grid
    assert restored.array.shape[1:] == hr.array.shape[1:] and restored.array.shape[0] >= n
    np.testing.assert_allclose(restored.ijk_to_ras, hr.ijk_to_ras, atol=1e-6)

    # quality: closer to the truth than cubic interpolation of the same thick slices
    cubic = resample_to_reference(thick_in, restored, "bspline", extrapolate=True)
    psnr_sr4zct, psnr_cubic = psnr(hr.array, restored.array[:n]), psnr(hr.array, cubic.array[:n])
    assert psnr_sr4zct > psnr_cubic + 0.3, f"SR4ZCT {psnr_sr4zct:.2f} dB vs cubic {psnr_cubic:.2f} dB PSNR"

    # the difference output: SR4ZCT minus cubic, on the same grid
    difference = outputs["difference"]
    assert difference.IsA("vtkMRMLScalarVolumeNode") and difference is not outputs["volume"]
    difference_volume = node_to_volume(difference)
    assert difference_volume.same_geometry(restored)
    data_range = float(hr.array.max() - hr.array.min())
    np.testing.assert_allclose(difference_volume.array, restored.array - cubic.array, atol=1e-3 * data_range)


def test_superresolution_dmdip_restores_two_contrasts_on_oblique_real_anatomy():
    """dmDIP through the module logic with a second contrast: 4 mm box-profile slices of a 64^3 block of the MNI T1
    and of a second contrast on the same oblique grid. Both restored volumes lie on the 1 mm grid of the truth,
    each next to its input, and the first beats cubic interpolation of the same slices."""
    from slicerleap.demo import psnr, thick_slices
    from slicerleap.transforms import resample_to_reference

    rotation = _rotation((2.0, -1.0, 0.5), 25.0)
    hr_straight = _mni_block()
    hr = _rotated(hr_straight, rotation)
    thick = _rotated(thick_slices(hr_straight, 4), rotation)
    ctx = new_scene_context()
    first = volume_to_node(ctx, thick, "T1 thick")
    second = volume_to_node(ctx, thick.with_array(np.sqrt(np.maximum(thick.array, 0.0)) * 10.0), "T2 thick")

    outputs = SuperResolutionLogic(ctx).process(first, method="dmdip", second_volume=second, iterations=5, timeout=600)
    assert set(outputs) == {"volume", "volume2"}
    restored, restored2 = node_to_volume(outputs["volume"]), node_to_volume(outputs["volume2"])
    n = hr.array.shape[0]
    for volume in (restored, restored2):
        np.testing.assert_allclose(volume.ijk_to_ras, hr.ijk_to_ras, atol=1e-6)  # the truth's 1 mm oblique grid
        assert volume.array.shape == hr.array.shape and np.isfinite(volume.array).all()
    assert outputs["volume2"].GetName().startswith("T2 thick")
    cubic = resample_to_reference(node_to_volume(first), restored, "bspline", extrapolate=True)
    psnr_dmdip, psnr_cubic = psnr(hr.array, restored.array[:n]), psnr(hr.array, cubic.array[:n])
    assert psnr_dmdip > psnr_cubic + 0.3, f"dmDIP {psnr_dmdip:.2f} dB vs cubic {psnr_cubic:.2f} dB PSNR"


def test_superresolution_tv_reconstruction_on_oblique_real_anatomy():
    """TV reconstruction through the module logic: 4 mm box-profile slices of an oblique 64^3 MNI block come back
    on the truth's 1 mm grid, closer to it than cubic interpolation, and reproduce the measured slices."""
    from slicerleap.demo import psnr, thick_slices
    from slicerleap.transforms import resample_to_reference

    rotation = _rotation((2.0, -1.0, 0.5), 25.0)
    hr_straight = _mni_block()
    hr, thick = _rotated(hr_straight, rotation), _rotated(thick_slices(hr_straight, 4), rotation)
    ctx = new_scene_context()
    node = volume_to_node(ctx, thick, "T1 thick")
    before = ctx.scene.GetNumberOfNodes()
    restored = node_to_volume(SuperResolutionLogic(ctx).process(node, method="tv", iterations=100, timeout=600)["volume"])
    assert ctx.scene.GetNumberOfNodes() > before
    np.testing.assert_allclose(restored.ijk_to_ras, hr.ijk_to_ras, atol=1e-6)
    cubic = resample_to_reference(node_to_volume(node), restored, "bspline", extrapolate=True)
    n = hr.array.shape[0]
    psnr_tv, psnr_cubic = psnr(hr.array, restored.array[:n]), psnr(hr.array, cubic.array[:n])
    assert psnr_tv > psnr_cubic + 0.3, f"TV {psnr_tv:.2f} dB vs cubic {psnr_cubic:.2f} dB PSNR"
    import torch

    from slicerleap.enhancement.dmdip import SliceProfile

    again = SliceProfile(restored.array.shape[0], 1.0, 4.0, 4.0, "cpu").degrade(torch.from_numpy(np.moveaxis(restored.array, 0, -1).copy()))
    np.testing.assert_allclose(np.moveaxis(again.numpy(), -1, 0), thick.array, atol=1e-3 * float(np.abs(thick.array).max()))


def test_superresolution_sr4zct_continues_training_from_a_saved_result(ctx):
    """An SR4ZCT result keeps its network (a checkpoint referenced by a node attribute); a later job continues from
    it: one more iteration then stays close to the 30-iteration result, unlike one iteration from scratch. A result
    without a network, a tampered checkpoint and another input volume are refused with a clear message."""
    import json

    from slicerleap.enhancement.checkpoints import CHECKPOINT_ATTRIBUTE

    image, _ = phantom(seed=7)
    thick = volume_to_node(ctx, Volume.from_geometry(image[::4], (SPACING, SPACING, 4 * SPACING), ORIGIN, LPS_LIKE), "thick to resume")
    logic = SuperResolutionLogic(ctx)
    first = logic.process(thick, method="sr4zct", iterations=30)["volume"]
    reference = json.loads(first.GetAttribute(CHECKPOINT_ATTRIBUTE))
    assert reference["iterations_done"] == 30 and reference["network"] == "unet"
    resumed = logic.process(thick, method="sr4zct", iterations=1, resume_from=first)["volume"]
    assert json.loads(resumed.GetAttribute(CHECKPOINT_ATTRIBUTE))["iterations_done"] == 31
    fresh = logic.process(thick, method="sr4zct", iterations=1)["volume"]
    a, b, c = (node_to_volume(n).array.astype(np.float64) for n in (first, resumed, fresh))
    assert np.abs(b - a).mean() < 0.5 * np.abs(c - a).mean()

    cubic = logic.process(thick, method="cubic")["volume"]
    with pytest.raises(BadInputError, match="not restored by SR4ZCT"):
        logic.create_job(thick, method="sr4zct", resume_from=cubic)
    with pytest.raises(BadInputError, match="Only SR4ZCT"):
        logic.create_job(thick, method="dmdip", resume_from=first)
    other = volume_to_node(ctx, Volume.from_geometry(image[:24:3], (SPACING, SPACING, 3 * SPACING), ORIGIN, LPS_LIKE), "other")
    nodes_before = ctx.scene.GetNumberOfNodes()
    with pytest.raises(JobFailed, match="different spacing_mm.*Fix:"):
        logic.process(other, method="sr4zct", iterations=1, resume_from=first)
    path = Path(os.environ["SLICERLEAP_HOME"]) / "checkpoints" / f"{reference['id']}.safetensors"
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(JobFailed, match="failed verification.*Fix:"):
        logic.process(thick, method="sr4zct", iterations=1, resume_from=first)
    assert ctx.scene.GetNumberOfNodes() == nodes_before  # failed jobs leave the scene as it was


def test_superresolution_checks_the_dmdip_inputs(ctx):
    image, _ = phantom()
    thick = volume_to_node(ctx, Volume.from_geometry(image[::4], (SPACING, SPACING, 4 * SPACING), ORIGIN, LPS_LIKE), "thick T1")
    same_grid = volume_to_node(ctx, Volume.from_geometry(image[::4] * 2, (SPACING, SPACING, 4 * SPACING), ORIGIN, LPS_LIKE), "thick T2")
    shifted = volume_to_node(ctx, Volume.from_geometry(image[::4], (SPACING, SPACING, 4 * SPACING), (61.0, 50.0, -20.0), LPS_LIKE), "moved")
    logic = SuperResolutionLogic(ctx)
    job = logic.create_job(thick, method="dmdip", second_volume=same_grid, iterations=20, degradation="kspace")
    assert set(job.inputs) == {"image", "image2"}
    assert job.spec.params == {"method": "dmdip", "spacing": None, "difference_from_cubic": False, "iterations": 20,
                               "time_budget_s": 0.0, "thickness_mm": 0.0, "degradation": "kspace", "tv_weight": 0.5, "seed": 0,
                               "output_name2": "thick T2"}
    assert set(logic.create_job(thick, method="dmdip").inputs) == {"image"}  # single-modal
    for options, message in [({"second_volume": shifted}, "not on the same voxel grid"), ({"second_volume": thick}, "input volume itself"),
                             ({"degradation": "gaussian"}, "'gaussian' is not one of: slice-profile, kspace"), ({"iterations": 0}, "at least 1")]:
        with pytest.raises(BadInputError, match=message):
            logic.create_job(thick, method="dmdip", **options)
    with pytest.raises(BadInputError, match="dmDIP only"):
        logic.create_job(thick, method="sr4zct", second_volume=same_grid)


def test_superresolution_difference_from_cubic_with_an_interpolator(ctx):
    """The difference output comes with every method: for cubic B-spline itself it is zero."""
    image, _ = phantom(seed=5)
    thick = Volume.from_geometry(image[::4], (SPACING, SPACING, 4 * SPACING), ORIGIN, LPS_LIKE)
    outputs = SuperResolutionLogic(ctx).process(volume_to_node(ctx, thick, "thick for difference"), method="cubic",
                                                difference_from_cubic=True)
    assert set(outputs) == {"volume", "difference"}
    restored, difference = node_to_volume(outputs["volume"]), node_to_volume(outputs["difference"])
    assert difference.same_geometry(restored) and restored.shape_ijk == (32, 32, 32)
    np.testing.assert_allclose(difference.array, 0.0, atol=1e-3)


def test_superresolution_checks_the_sr4zct_settings(ctx):
    image, _ = phantom()
    thick = volume_to_node(ctx, Volume.from_geometry(image[::4], (SPACING, SPACING, 4 * SPACING), ORIGIN, LPS_LIKE), "thick")
    logic = SuperResolutionLogic(ctx)
    job = logic.create_job(thick, iterations=50, time_budget_s=0, thickness_mm=0, network="msd", difference_from_cubic=True)
    assert job.spec.params == {"method": "sr4zct", "spacing": None, "difference_from_cubic": True, "iterations": 50,
                               "time_budget_s": 0.0, "thickness_mm": 0.0, "network": "msd", "seed": 0}  # 0 = no limit / = spacing
    job = logic.create_job(thick, time_budget_s=90, thickness_mm=10.0, spacing=1.0)
    assert job.spec.params["time_budget_s"] == 90.0 and job.spec.params["thickness_mm"] == 10.0
    assert logic.create_job(thick, method="linear").spec.params == {"method": "linear", "spacing": None, "difference_from_cubic": False}
    assert logic.create_job(thick, method="cubic").spec.params["method"] == "bspline"
    for options, message in [({"iterations": 0}, "at least 1"), ({"iterations": 2.5}, "must be int"),
                             ({"iterations": "many"}, "must be int"), ({"time_budget_s": -1}, "must be at least 0 s"),
                             ({"thickness_mm": -2.0}, "must be at least 0 mm"), ({"network": "resnet"}, "'resnet' is not one of: unet, msd"),
                             ({"iterations_per_slab": 3}, "Unknown super-resolution parameter")]:
        with pytest.raises(BadInputError, match=message):
            logic.create_job(thick, **options)
    isotropic = add_volume(ctx, image, "isotropic")
    with pytest.raises(BadInputError, match="nearly isotropic"):
        logic.create_job(isotropic, method="sr4zct")
    logic.create_job(isotropic, method="bspline")  # the interpolators take any volume
    rectangular = volume_to_node(ctx, Volume.from_geometry(image[::4], (SPACING, 1.5 * SPACING, 4 * SPACING), ORIGIN), "rectangular")
    with pytest.raises(BadInputError, match="square in-plane pixels"):
        logic.create_job(rectangular)


@pytest.mark.parametrize("module", ["SlicerLeapCommon", "SKSSegmentation", "RegistrationDL", "SuperResolution", "FedTools"])
def test_the_modules_own_self_tests_pass_outside_slicer(module, tmp_path):
    """Each module's ScriptedLoadableModuleTest, run on slicer-core with stand-ins for Qt and Slicer's
    scripted-module classes (Testing/slicer_module_harness.py): it exercises the module file and its self-test,
    which drives the module's one Logic as a console script would, and keeps the self-test's own assertions honest."""
    import os
    import subprocess

    env = {**os.environ, "SLICERLEAP_HOME": str(tmp_path)}  # SKSSegmentation's test uses the default (bundled) model
    out = subprocess.run([sys.executable, str(ROOT / "Testing" / "slicer_module_harness.py"), module],
                         capture_output=True, text=True, encoding="utf-8", errors="replace", env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert "Test passed" in out.stdout


def test_the_shared_job_panel_outside_slicer():
    """The job lifecycle the four widgets share (SlicerLeapCommonLib.job_panel.JobPanelMixin), driven with
    stand-in widgets and a scripted job: Apply/Cancel, progress and log, non-blocking Cancel, blocking
    cancel on scene close and cleanup, cancelled jobs logged without an error dialog, errors shown."""
    import subprocess

    out = subprocess.run([sys.executable, str(ROOT / "Testing" / "slicer_module_harness.py"), "--job-panel"],
                         capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert "Job panel check passed" in out.stdout


# -- the dependency installer the modules call before their first job ------------------------------
_INSTALLER_SCRIPT = """
import sys, types, json
sys.path.insert(0, sys.argv[1])
calls = []
for name in filter(None, sys.argv[2].split(",")):
    sys.modules[name] = None  # as if not installed: importing it fails
import slicer, slicer.util
slicer.util.pip_install = lambda *args, **kwargs: calls.append(["pip_install", list(args)])
if sys.argv[3] == "packaging":
    packaging = types.ModuleType("slicer.packaging")
    packaging.load_requirements = lambda path: ["req:" + path]
    packaging.pip_ensure = lambda reqs, **kwargs: calls.append(["pip_ensure", reqs, kwargs])
    sys.modules["slicer.packaging"] = packaging
import SlicerLeapCommonLib
try:
    SlicerLeapCommonLib.ensure_dependencies(requester="Test")
    error = None
except Exception as exc:
    error = [type(exc).__name__, str(exc)]
print(json.dumps({"calls": calls, "error": error}))
"""


def _run_installer(blocked: str, packaging: bool) -> dict:
    import json
    import subprocess

    out = subprocess.run([sys.executable, "-c", _INSTALLER_SCRIPT, str(ROOT / "SlicerLeapCommon"), blocked,
                          "packaging" if packaging else "util"], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_installer_runs_without_the_scene_package_and_uses_pip_ensure():
    """psutil missing: slicerleap.scene cannot be imported, the installer is loaded on its own and asks
    slicer.packaging.pip_ensure for the extension's requirements, keeping torch out of the dependency walk."""
    result = _run_installer("psutil", packaging=True)
    (name, requirements, kwargs), = result["calls"]
    assert name == "pip_ensure" and requirements == ["req:" + str(ROOT / "Resources" / "requirements.txt")]
    assert kwargs["skip_packages"] == ["torch"] and kwargs["requester"] == "Test"
    assert result["error"][0] == "MissingDependencyError" and "psutil" in result["error"][1]  # still blocked here


def test_installer_falls_back_to_pip_install_on_older_slicer():
    result = _run_installer("nibabel", packaging=False)
    assert result["calls"] == [["pip_install", [["-r", str(ROOT / "Resources" / "requirements.txt")]]]]


def test_installer_never_pulls_torch_from_pypi_outside_the_desktop():
    result = _run_installer("torch", packaging=True)
    assert result["calls"] == []
    assert result["error"][0] == "MissingDependencyError" and "PyTorch is not installed" in result["error"][1]


def test_nothing_is_installed_when_everything_is_there():
    assert _run_installer("", packaging=True) == {"calls": [], "error": None}


def test_superresolution_reconstructs_kspace_into_a_volume_node(ctx, tmp_path):
    from slicerleap.reconstruction.simulate import simulate_kspace, write_fastmri_h5

    image, _ = phantom(seed=4)
    slices = (image[10:12] / image.max()).astype(np.float32)
    write_fastmri_h5(tmp_path / "knee.h5", simulate_kspace(slices, n_coils=4, snr=100), (0.5, 0.6, 3.0))
    before = ctx.scene.GetNumberOfNodes()
    outputs = SuperResolutionLogic(ctx).reconstruct(tmp_path / "knee.h5", method="sense", acceleration=2, mask="equispaced", center_fraction=0.25,
                                                    iterations=10, timeout=600)
    node = outputs["volume"]
    assert node.IsA("vtkMRMLScalarVolumeNode") and node.GetName() == "knee (sense)"
    volume = node_to_volume(node)
    assert volume.array.shape == slices.shape
    np.testing.assert_allclose(volume.spacing, (0.5, 0.6, 3.0), rtol=1e-5)
    assert ctx.scene.GetNumberOfNodes() > before
    np.save(tmp_path / "magnitude.npy", np.abs(slices))
    with pytest.raises(BadInputError, match="real-valued"):
        SuperResolutionLogic(ctx).create_reconstruction_job(tmp_path / "magnitude.npy")
    with pytest.raises(BadInputError, match="Unknown option"):
        SuperResolutionLogic(ctx).create_reconstruction_job(tmp_path / "knee.h5", accel=4)
