"""Scene layer on a real MRML scene (slicer-core): conversions, segment metadata, grid transforms,
subject hierarchy placement, parent transforms, .mrb round trip."""
import numpy as np
import pytest
import slicer
import vtk

from phantoms import phantom_labels, sphere_phantom
from slicerleap.errors import BadInputError
from slicerleap.scene import (displacement_to_grid_transform_node, grid_transform_node_to_displacement, labels_to_segmentation_node,
                              load_mrb, node_to_volume, save_mrb, segmentation_node_to_labels, volume_to_node)

OBLIQUE = np.array([[0.0, -0.6, 0.8], [1.0, 0.0, 0.0], [0.0, 0.8, 0.6]])
LABELS = [{"value": 1, "name": "Body", "color": "#ff0000", "terminology": {"category": "SCT^85756007^Tissue", "type": "SCT^85756007^Tissue"}},
          {"value": 2, "name": "Core", "color": "#00ff00"}]


def test_volume_node_round_trip_keeps_voxels_and_geometry(scene_ctx):
    vol = sphere_phantom(16, spacing=(0.7, 1.3, 2.9), directions=OBLIQUE)
    node = volume_to_node(scene_ctx, vol, "oblique")
    back = node_to_volume(node)
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.ijk_to_ras, vol.ijk_to_ras, atol=1e-9)


def test_labels_become_named_coloured_segments_with_terminology_next_to_input(scene_ctx):
    vol = sphere_phantom(16, directions=OBLIQUE)
    image = volume_to_node(scene_ctx, vol, "CT")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene_ctx.scene)
    folder = sh.CreateFolderItem(sh.GetSceneItemID(), "Patient 1")
    sh.CreateItem(folder, image)  # the desktop's subject hierarchy plugins do this on load
    labels = phantom_labels(vol)
    seg = labels_to_segmentation_node(scene_ctx, labels, LABELS, "CT segmentation", reference_node=image,
                                      attributes={"SlicerLeap.model": "m@1.0.0"})
    segmentation = seg.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(2)] == ["Body", "Core"]
    assert segmentation.GetNthSegment(0).GetColor() == pytest.approx((1.0, 0.0, 0.0))
    entry = vtk.reference("")
    segmentation.GetNthSegment(0).GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), entry)
    assert "SCT^85756007^Tissue" in str(entry)
    assert seg.GetNodeReference(seg.GetReferenceImageGeometryReferenceRole()) is image
    assert sh.GetItemParent(sh.GetItemByDataNode(seg)) == folder, "output is placed next to its input"
    assert seg.GetAttribute("SlicerLeap.model") == "m@1.0.0"
    np.testing.assert_array_equal(segmentation_node_to_labels(seg, image).array, labels.array)


def test_unknown_label_values_are_refused(scene_ctx):
    vol = sphere_phantom(8)
    with pytest.raises(BadInputError, match="values \\[2\\]"):
        labels_to_segmentation_node(scene_ctx, phantom_labels(vol), LABELS[:1], "seg")


def test_grid_transform_maps_fixed_points_into_the_moving_image(scene_ctx):
    vol = sphere_phantom(10, directions=OBLIQUE)
    rng = np.random.default_rng(0)
    field = vol.with_array(rng.normal(0, 2, vol.array.shape + (3,)))
    fixed, moving = volume_to_node(scene_ctx, vol, "fixed"), volume_to_node(scene_ctx, vol, "moving")
    node = displacement_to_grid_transform_node(scene_ctx, field, "deformable", fixed, moving)
    assert node.GetNodeReference("fixedVolume") is fixed and node.GetNodeReference("movingVolume") is moving
    for ijk in [(1, 2, 3), (5, 5, 5), (8, 1, 4)]:
        x = (vol.ijk_to_ras @ np.array([*ijk, 1.0]))[:3]
        mapped = np.array(node.GetTransformFromParent().TransformPoint(x))
        np.testing.assert_allclose(mapped - x, field.array[ijk[2], ijk[1], ijk[0]], atol=1e-6)
    np.testing.assert_allclose(grid_transform_node_to_displacement(node).array, field.array)
    # the user can apply and harden it on the moving volume
    moving.SetAndObserveTransformNodeID(node.GetID())
    scene_ctx.transforms_logic.hardenTransform(moving)
    assert moving.GetParentTransformNode() is None


def test_linear_parent_transform_is_folded_and_nonlinear_is_refused(scene_ctx):
    vol = sphere_phantom(8)
    node = volume_to_node(scene_ctx, vol, "moved")
    linear = scene_ctx.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    m = np.eye(4)
    m[:3, 3] = [10, -5, 2]
    linear.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(m))
    node.SetAndObserveTransformNodeID(linear.GetID())
    np.testing.assert_allclose(node_to_volume(node).origin, vol.origin + [10, -5, 2])
    grid = displacement_to_grid_transform_node(scene_ctx, vol.with_array(np.zeros(vol.array.shape + (3,))), "grid")
    node.SetAndObserveTransformNodeID(grid.GetID())
    with pytest.raises(BadInputError, match="non-linear transform.*Harden"):
        node_to_volume(node)


def test_output_volume_copies_input_geometry_and_parent_transform(scene_ctx):
    vol = sphere_phantom(8, directions=OBLIQUE)
    image = volume_to_node(scene_ctx, vol, "input")
    linear = scene_ctx.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    image.SetAndObserveTransformNodeID(linear.GetID())
    out = volume_to_node(scene_ctx, vol.with_array(vol.array * 2), "output", reference_node=image)
    assert out.GetTransformNodeID() == linear.GetID()
    np.testing.assert_allclose(node_to_volume(out).ijk_to_ras, node_to_volume(image).ijk_to_ras, atol=1e-9)


def test_mrb_round_trip(scene_ctx, tmp_path):
    vol = sphere_phantom(12, directions=OBLIQUE)
    image = volume_to_node(scene_ctx, vol, "CT")
    labels_to_segmentation_node(scene_ctx, phantom_labels(vol), LABELS, "seg", reference_node=image)
    displacement_to_grid_transform_node(scene_ctx, vol.with_array(np.ones(vol.array.shape + (3,))), "tf", image, image)
    path = save_mrb(scene_ctx, tmp_path / "scene.mrb")
    loaded = load_mrb(path)
    scene = loaded.scene
    volume = scene.GetFirstNodeByName("CT")
    np.testing.assert_array_equal(node_to_volume(volume).array, vol.array)
    np.testing.assert_allclose(node_to_volume(volume).ijk_to_ras, vol.ijk_to_ras, atol=1e-6)
    seg = scene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
    assert seg.GetSegmentation().GetNumberOfSegments() == 2
    np.testing.assert_array_equal(segmentation_node_to_labels(seg, volume).array, phantom_labels(vol).array)
    tf = scene.GetFirstNodeByClass("vtkMRMLGridTransformNode")
    assert tf.GetNodeReference("fixedVolume").GetName() == "CT"
    np.testing.assert_allclose(grid_transform_node_to_displacement(tf).array, 1.0, atol=1e-6)
