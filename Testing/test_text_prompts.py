"""Text prompts written from masks, boxes and clicks (MPTPN's training text and the viewer's prompt templates)."""
import numpy as np
import pytest
from skimage.draw import disk, ellipse

from slicerleap.segmentation.mptpn.prompts import (describe, prompt_from_mask, region_from_box, region_from_click,
                                                   regions_from_mask)


def test_one_round_lesion_is_described_by_size_shape_and_position():
    mask = np.zeros((128, 128), np.uint8)
    mask[disk((20, 22), 6)] = 1
    assert prompt_from_mask(mask) == "one small round lesion in the upper left"
    mask[:] = 0
    mask[disk((64, 110), 14)] = 1  # ~4.7 % of the slice
    assert prompt_from_mask(mask, target="nodule") == "one medium round nodule in the right"


def test_count_shapes_and_empty_slices():
    mask = np.zeros((128, 128), np.uint8)
    assert prompt_from_mask(mask) == "no lesion"
    mask[ellipse(100, 30, 6, 30)] = 1  # wide: elongated, lower left (largest first)
    mask[disk((64, 64), 5)] = 1
    assert prompt_from_mask(mask) == "two lesions: medium elongated in the lower left, small round in the centre"
    mask[2, 2] = 1  # a speck is not a lesion
    assert len(regions_from_mask(mask)) == 2


def test_a_box_around_a_lesion_gives_the_prompt_its_mask_gives():
    mask = np.zeros((128, 128), np.uint8)
    mask[ellipse(30, 100, 5, 8)] = 1
    rows, cols = np.nonzero(mask)
    from_box = describe([region_from_box((rows.min(), rows.max() + 1), (cols.min(), cols.max() + 1))], mask.shape)
    assert from_box == prompt_from_mask(mask) == "one small oval lesion in the upper right"


def test_a_click_gives_position_and_the_chosen_size():
    assert describe([region_from_click((120, 60), (128, 128), "large")], (128, 128)) == \
        "one large round lesion in the lower centre"
    with pytest.raises(ValueError, match="size must be one of"):
        region_from_click((1, 1), (128, 128), "huge")


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="one 2D slice"):
        prompt_from_mask(np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="drag a rectangle"):
        region_from_box((5, 5), (1, 9))
