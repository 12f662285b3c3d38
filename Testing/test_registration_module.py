"""RegistrationDL end to end on a real scene (slicer-core): the bundled network + NIO registers two volumes
stored in different orientations through the module Logic; landmarks of the moving image land at their
known places; the CLI's .h5 transform reloads in the scene and maps points the same way; a moving
segmentation is propagated onto the fixed volume."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
for module in ("SlicerLeapCommon", "RegistrationDL"):
    sys.path.insert(0, str(ROOT / module))  # as Slicer does for each scripted module's folder

from RegistrationDLLib.logic import RegistrationDLLogic  # noqa: E402

from slicerleap.data import mni_t1, mni_tissue_labels, sample_data_available  # noqa: E402
from slicerleap.errors import BadInputError  # noqa: E402
from slicerleap.io import write_volume  # noqa: E402
from slicerleap.registration.random_deformation import random_displacement  # noqa: E402
from slicerleap.registration.working_grid import field_in_ras, sample_affine  # noqa: E402
from slicerleap.scene import labels_to_segmentation_node, volume_to_node  # noqa: E402
from slicerleap.scene.segmentations import segmentation_node_to_labels  # noqa: E402
from slicerleap.scene.transforms import load_transform_file  # noqa: E402
from slicerleap.segmentation.metrics import dice_per_class  # noqa: E402
from slicerleap.transforms import resample_to_spacing  # noqa: E402
from slicerleap.volume import Volume  # noqa: E402

pytestmark = pytest.mark.skipif(not sample_data_available(), reason="needs the MNI template from nilearn")

CORONAL_OBLIQUE = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # i->L, j->S, k->P
FIXED_SPACING = 2.0


def rotation_z(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


@pytest.fixture(scope="module")
def brain_pair():
    """fixed: the MNI brain at 2 mm (RAS axes). moving: the same anatomy seen through a rigid motion and a
    smooth deformation, sampled on a coronal grid (other axes, 2 x 2.5 x 2 mm): moving(y) = MNI(A(y + e(y))).
    A landmark y of the moving image therefore sits at A(y + e(y)) in the fixed image."""
    fixed = resample_to_spacing(mni_t1(), [FIXED_SPACING] * 3)
    labels = resample_to_spacing(mni_tissue_labels(), [FIXED_SPACING] * 3, "nearest")
    centre = (fixed.ijk_to_ras @ np.r_[(np.array(fixed.shape_ijk) - 1) / 2, 1])[:3]
    affine = np.eye(4)
    affine[:3, :3] = rotation_z(6.0)
    affine[:3, 3] = centre - affine[:3, :3] @ centre + np.array([4.0, -3.0, 2.0])
    shape_kji = (80, 80, 100)  # k (posterior), j (superior), i (left)
    spacing = np.array([2.0, 2.5, 2.0])
    origin = centre - CORONAL_OBLIQUE @ ((np.array(shape_kji[::-1]) - 1) / 2 * spacing)
    grid = Volume.from_geometry(np.zeros(shape_kji, np.float32), spacing, origin, CORONAL_OBLIQUE)
    ddf = random_displacement(shape_kji, 1.5, generator=torch.Generator().manual_seed(4))  # up to ~3-4 mm
    extra = field_in_ras(ddf, grid, np.eye(4)).array
    moving = grid.with_array(sample_affine(mni_t1(), grid, affine, extra), name="moving")
    moving_labels = grid.with_array(np.rint(sample_affine(mni_tissue_labels().with_array(
        mni_tissue_labels().array.astype(np.float32)), grid, affine, extra)).astype(np.uint8))
    return fixed.with_array(fixed.array, name="fixed"), labels, moving, moving_labels, affine, extra


def landmarks(moving: Volume, affine: np.ndarray, extra: np.ndarray, n: int = 8):
    """Moving-image voxels inside the brain, away from its border, and their true fixed-image positions."""
    rng = np.random.default_rng(0)
    inside = np.argwhere(moving.array > np.percentile(moving.array[moving.array > 0], 60))
    centre = inside.mean(0)
    near = inside[np.linalg.norm(inside - centre, axis=1) < 18]
    picks = near[rng.choice(len(near), n, replace=False)]
    ras = moving.voxel_positions_ras()
    y = np.array([ras[tuple(p)] for p in picks])
    e = np.array([extra[tuple(p)] for p in picks])
    x = (y + e) @ affine[:3, :3].T + affine[:3, 3]
    return x, y


def map_points(node, points):
    return np.array([node.GetTransformFromParent().TransformPoint(p.tolist()) for p in points])


def _register_in_the_scene(scene_ctx, brain_pair):
    fixed, fixed_labels, moving, moving_labels, affine, extra = brain_pair
    fixed_node = volume_to_node(scene_ctx, fixed, "fixed")
    moving_node = volume_to_node(scene_ctx, moving, "moving")
    segmentation = labels_to_segmentation_node(scene_ctx, moving_labels, [{"value": 1, "name": "Grey matter", "color": "#d7a98c"},
                                                                          {"value": 2, "name": "White matter", "color": "#f2eadb"}],
                                               "moving tissue", reference_node=moving_node)
    logic = RegistrationDLLogic(scene_ctx)
    assert logic.default_method() == "network"
    outputs = logic.process(fixed_node, moving_node, moving_segmentation=segmentation)  # network + field refinement
    fixed_points, moving_points = landmarks(moving, affine, extra)
    return fixed_node, moving_node, outputs, fixed_points, moving_points


def test_landmarks_land_within_a_voxel_and_labels_follow(scene_ctx, brain_pair):
    fixed_labels = brain_pair[1]
    fixed_node, moving_node, outputs, fixed_points, moving_points = _register_in_the_scene(scene_ctx, brain_pair)
    transform = outputs["transform"]
    assert transform.IsA("vtkMRMLGridTransformNode")
    assert transform.GetNodeReference("movingVolume") is moving_node
    mapped = map_points(transform, fixed_points)
    errors = np.linalg.norm(mapped - moving_points, axis=1)
    initial = np.linalg.norm(fixed_points - moving_points, axis=1)
    assert initial.mean() > 4.0  # the pair really needed registering
    assert errors.max() < FIXED_SPACING, (errors, initial)

    propagated = outputs["labels"]
    assert propagated.IsA("vtkMRMLSegmentationNode")
    assert propagated.GetSegmentation().GetNumberOfSegments() == 2
    on_fixed = segmentation_node_to_labels(propagated, fixed_node, {"Grey matter": 1, "White matter": 2}).array
    dice = dice_per_class(on_fixed, fixed_labels.array, [1, 2])
    assert min(dice.values()) > 0.7, dice


# slow (the registration twice, about 3 min): the CLI's transform file maps points as the scene's transform does;
# the CLI's register command itself runs in every CI (test_cli.py); `pytest -m slow`
@pytest.mark.slow
def test_the_cli_transform_reloads_and_maps_like_the_scene_transform(scene_ctx, brain_pair, tmp_path):
    fixed, moving = brain_pair[0], brain_pair[2]
    _, _, outputs, fixed_points, _ = _register_in_the_scene(scene_ctx, brain_pair)
    mapped = map_points(outputs["transform"], fixed_points)
    write_volume(fixed, tmp_path / "fixed.nrrd")
    write_volume(moving, tmp_path / "moving.nrrd")
    out = subprocess.run(["slicerleap", "register", "--fixed", str(tmp_path / "fixed.nrrd"), "--moving", str(tmp_path / "moving.nrrd"),
                          "--out-transform", str(tmp_path / "t.h5")], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    reloaded = load_transform_file(scene_ctx, tmp_path / "t.h5")
    np.testing.assert_allclose(map_points(reloaded, fixed_points), mapped, atol=0.3)


def test_network_method_input_errors(scene_ctx, brain_pair):
    fixed, _, moving, _, _, _ = brain_pair
    fixed_node, moving_node = volume_to_node(scene_ctx, fixed, "fixed"), volume_to_node(scene_ctx, moving, "moving")
    logic = RegistrationDLLogic(scene_ctx)
    with pytest.raises(BadInputError, match="not an installed registration model"):
        logic.create_job(fixed_node, moving_node, model="brain-tissue-unet@1.0.0")
    with pytest.raises(BadInputError, match=r"nio_iterations \(--nio-iters\) must be at least 0"):
        logic.create_job(fixed_node, moving_node, nio_iterations=-1)
    with pytest.raises(BadInputError, match=r"refine_iterations \(--refine-iters\) must be at least 0"):
        logic.create_job(fixed_node, moving_node, refine_iterations=-1)
    with pytest.raises(BadInputError, match="Unknown registration parameter"):
        logic.create_job(fixed_node, moving_node, refine_iters=5)
    with pytest.raises(BadInputError, match="not a segmentation"):
        logic.create_job(fixed_node, moving_node, moving_segmentation=moving_node)
