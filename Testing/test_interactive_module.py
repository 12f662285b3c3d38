"""SKSSegmentation's click mode on a real MRML scene (slicer-core) and a real worker process, on the ITK head (not the
MNI template) placed under a linear transform: Markups points in world RAS are clicks, the segment follows each one
exactly as the engine's in-process session does, undo removes the point, cancel restores the segment, and a
review-queue case corrected by clicks is accepted as "corrected (interactive, N clicks)"."""
import numpy as np
import pytest
from scipy import ndimage

from test_module_logics import SKSSegmentationLogic
from slicerleap.data.itk_examples import itk_example_available, itk_example_brain
from slicerleap.errors import BadInputError
from slicerleap.scene import labels_to_segmentation_node, node_to_volume, volume_to_node
from slicerleap.scene.provenance import DETAIL_TAG, TAG, provenance
from slicerleap.scene.segmentations import segmentation_node_to_labels
from slicerleap.segmentation.interactive.click_simulator import next_click
from slicerleap.segmentation.interactive.session import InteractiveSession
from SKSSegmentationLib.review_queue import ReviewQueue

pytestmark = pytest.mark.skipif(not itk_example_available(), reason="ITK example data not installed")
WHITE = [{"value": 1, "name": "White matter", "color": "#f2eadb"}]


@pytest.fixture(scope="module")
def head():
    image, labels = itk_example_brain()
    return image, labels.array == 2


def _deepest(mask):
    depth = ndimage.distance_transform_edt(mask)
    return np.unravel_index(int(np.argmax(depth)), mask.shape)


def _moved_volume(ctx, image):
    """The head under a translation: world RAS = the volume's RAS + (15, -7, 4) mm."""
    node = volume_to_node(ctx, image, "ITK head")
    transform = ctx.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    import slicer.util

    matrix = np.eye(4)
    matrix[:3, 3] = (15.0, -7.0, 4.0)
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    node.SetAndObserveTransformNodeID(transform.GetID())
    return node, matrix


def _world(image, matrix, kji):
    return (matrix @ np.r_[image.ijk_to_ras_points([kji[::-1]])[0], 1.0])[:3]


def test_markups_clicks_update_the_segment_like_the_engine_and_cancel_restores_it(scene_ctx, head, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    image, white = head
    volume_node, matrix = _moved_volume(scene_ctx, image)
    logic = SKSSegmentationLogic(scene_ctx).interactive
    correction = logic.start(volume_node)
    segmentation = correction.segmentation_node
    assert segmentation.GetParentTransformNode() is volume_node.GetParentTransformNode()
    local = InteractiveSession(image)  # the same clicks in the volume's own RAS, in this process
    inside = tuple(int(v) for v in np.argwhere(white)[len(np.argwhere(white)) // 2])
    correction.points[True].AddControlPointWorld(*_world(image, matrix, inside))  # what placing a point does
    assert correction.apply_new_points() == 1 and correction.apply_new_points() == 0
    local.add_point(image.ijk_to_ras_points([inside[::-1]])[0], True)
    labels = segmentation_node_to_labels(segmentation, volume_node).array > 0
    assert labels.any() and np.array_equal(labels, local.mask_array)

    click = next_click(local.mask_array, white, image.spacing[::-1])
    correction.click(_world(image, matrix, click[0]), positive=click[1])
    local.add_point(image.ijk_to_ras_points([click[0][::-1]])[0], click[1])
    assert np.array_equal(segmentation_node_to_labels(segmentation, volume_node).array > 0, local.mask_array)
    with pytest.raises(BadInputError, match="outside the image"):
        correction.click((900.0, 0.0, 0.0))
    assert correction.clicks == 2 and sum(n.GetNumberOfControlPoints() for n in correction.points.values()) == 2

    curve = scene_ctx.scene.AddNewNodeByClass("vtkMRMLMarkupsCurveNode")  # a stroke drawn as a curve
    for d in (-3, 3):
        curve.AddControlPointWorld(*_world(image, matrix, (inside[0], inside[1], inside[2] + d)))
    correction.add_curve(curve, positive=True)
    local.add_scribble([image.ijk_to_ras_points([(inside[2] + d, inside[1], inside[0])])[0] for d in (-3, 3)], True)
    assert np.array_equal(segmentation_node_to_labels(segmentation, volume_node).array > 0, local.mask_array)
    assert correction.clicks == 3 and correction.undo() and correction.clicks == 2
    local.undo()

    assert correction.undo()
    local.undo()
    assert np.array_equal(segmentation_node_to_labels(segmentation, volume_node).array > 0, local.mask_array)
    assert sum(n.GetNumberOfControlPoints() for n in correction.points.values()) == 1
    removed = correction.points[True]
    removed.RemoveNthControlPoint(removed.GetNumberOfControlPoints() - 1)  # the user deletes the last click: undone
    correction.apply_new_points()
    assert correction.clicks == 0 and not correction.session.mask_array.any()
    assert not (segmentation_node_to_labels(segmentation, volume_node).array > 0).any()
    folder = correction.session.folder
    correction.cancel()  # the segmentation was made for the session: it goes
    assert segmentation.GetScene() is None and not folder.exists()
    assert scene_ctx.scene.GetNodesByClass("vtkMRMLMarkupsFiducialNode").GetNumberOfItems() == 0


def test_a_review_queue_case_corrected_with_clicks(scene_ctx, head):
    image, white = head
    volume_node, _ = _moved_volume(scene_ctx, image)
    world = node_to_volume(volume_node)  # the scene's volumes are in world RAS, the transform folded in
    pseudo = world.with_array(ndimage.binary_erosion(white, iterations=2).astype(np.uint8))
    segmentation = labels_to_segmentation_node(scene_ctx, pseudo, WHITE, "pseudo-label", reference_node=volume_node)
    queue = ReviewQueue.create(scene_ctx)
    row = queue.add(volume_node, segmentation, 0.3, "some-teacher@1.0.0")
    logic = SKSSegmentationLogic(scene_ctx).interactive
    cancelled = logic.start_on_queue_case(queue, row)
    cancelled.click(world.ijk_to_ras_points([_deepest(white & ~(pseudo.array > 0))[::-1]])[0])
    assert not np.array_equal(segmentation_node_to_labels(segmentation, volume_node).array > 0, pseudo.array > 0)
    cancelled.cancel()  # the pseudo-label exactly as it was
    assert np.array_equal(segmentation_node_to_labels(segmentation, volume_node).array > 0, pseudo.array > 0)
    correction = logic.start_on_queue_case(queue, row)
    assert np.array_equal(correction.session.initial, pseudo.array > 0)
    for _ in range(3):  # the simulated annotator, clicking in world RAS
        current = segmentation_node_to_labels(segmentation, volume_node).array > 0
        voxel, positive = next_click(current, white, image.spacing[::-1])
        correction.click(world.ijk_to_ras_points([voxel[::-1]])[0], positive)
    after = segmentation_node_to_labels(segmentation, volume_node).array > 0
    assert (after & white).sum() > (pseudo.array.astype(bool) & white).sum()
    decided = correction.finish(queue, row)
    assert decided["status"] == "accepted" and decided["provenance"] == "corrected (interactive, 3 clicks, grow-from-clicks)"
    tags = provenance(segmentation)["White matter"]
    assert tags[TAG] == "corrected" and tags[DETAIL_TAG] == "interactive, 3 clicks, grow-from-clicks"
    assert not correction.session.running
