"""Box-fill shortfall: a pseudo-label that fills its tight lesion boxes as true lesions do scores 0, one that
misses a lesion scores high, and the reference fill comes from the labelled cases."""
from types import SimpleNamespace

import numpy as np
import pytest

from slicerleap.segmentation.teacher_student.uncertainty import box_fill_reference, box_fill_shortfall, box_fills, pseudo_label_uncertainty


def ball(shape, centre, radius):
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius ** 2


def boxes_around(*lesions):
    """Box map (0 / 1 organ box / 2 lesion box): the organ box is everything, one tight box per lesion."""
    boxes = np.ones(lesions[0].shape, np.uint8)
    for lesion in lesions:
        k, j, i = (np.flatnonzero(lesion.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
        boxes[k[0]:k[-1] + 1, j[0]:j[-1] + 1, i[0]:i[-1] + 1] = 2
    return boxes


def test_a_label_that_misses_a_lesion_scores_higher_than_one_that_fills_its_boxes():
    shape = (30, 40, 40)
    a, b = ball(shape, (8, 10, 10), 5), ball(shape, (20, 28, 28), 4)
    boxes = boxes_around(a, b)
    truth = a | b
    fills = box_fills(truth, boxes)
    assert len(fills) == 2 and all(0.3 < f < 0.55 for f in fills), fills  # a voxel ball fills less than π/6 of its box
    reference = box_fill_reference([SimpleNamespace(labels=np.where(truth, 2, 1), boxes=boxes)])
    assert reference == pytest.approx(np.median(fills))
    assert box_fill_shortfall(truth, boxes, reference) == pytest.approx(0.0, abs=0.05)
    assert box_fill_shortfall(a, boxes, reference) == pytest.approx(0.5, abs=0.05)  # one of two lesions missed
    assert box_fill_shortfall(np.zeros(shape, bool), boxes, reference) == 1.0
    assert box_fill_shortfall(truth, np.ones(shape, np.uint8), reference) == 0.0  # no lesion box: nothing to miss


def test_without_lesion_boxes_a_lesion_label_is_what_looks_wrong():
    """The annotator drew only an organ box: a pseudo-label with lesion voxels in it is suspect, in proportion."""
    boxes = np.zeros((10, 20, 20), np.uint8)
    boxes[2:8, 5:15, 5:15] = 1
    lesion = np.zeros(boxes.shape, bool)
    assert pseudo_label_uncertainty(lesion, boxes) == 0.0
    lesion[3:5, 6:11, 6:11] = True
    assert pseudo_label_uncertainty(lesion, boxes) == pytest.approx(50 / 600)
