"""Text-prompted inference on a volume (task segment-text's engine) and the click/box prompt templates, on phantoms:
results land on the input grid of any orientation, only on the slab the prompt is about; templates use the same
words training prompts use for the same place; plain `segment` refuses a text model with a message."""
import numpy as np
import pytest
import torch

from phantoms import blob_case
from slicerleap import Volume
from slicerleap.errors import BadInputError
from slicerleap.segmentation.boxes import Box
from slicerleap.segmentation.inference import segment_volume
from slicerleap.segmentation.mptpn.trainer import MPTPNTrainingConfig, build
from slicerleap.segmentation.mptpn.prompt_templates import prompt_for_box, prompt_for_clicks
from slicerleap.segmentation.mptpn.prompt_view import as_viewed
from slicerleap.segmentation.slice_data import prepare_case, slice_input_spec
from slicerleap.segmentation.mptpn.inference import segment_with_prompt, slice_positions_mm
from slicerleap.segmentation.mptpn.prompts import position_words, prompt_from_mask, regions_from_mask

LPS_LIKE = np.diag([-1.0, -1.0, 1.0])
SPEC = slice_input_spec(1.5, context=0)


def tiny_text_model(size=32, model="mptpn"):
    config = MPTPNTrainingConfig(model=model, img_size=size, net={"channels": 4, "patch": 8, "heads": 1})
    torch.manual_seed(0)
    net = build(config)
    card = {"id": "tiny-text@0.0.1", "task": "text-segmentation", "architecture": config.architecture(),
            "input": {**SPEC, "img_size": size, "text_prompt": {"encoder": "test", "max_tokens": 32}},
            "labels": [{"value": 1, "name": "Lesion"}]}
    return card, net


def test_prompted_segmentation_lands_on_the_input_grid_only_on_the_slab():
    image, _ = blob_case(1, directions=LPS_LIKE)
    card, net = tiny_text_model()
    grid = prepare_case(image, SPEC).grid
    positions = slice_positions_mm(grid)
    with torch.no_grad():  # a bias that says "everything" makes every chosen pixel foreground
        net.head.bias.fill_(50.0)
    labels, ks, probability = segment_with_prompt(image, card, net, "one small round lesion in the centre", "cpu",
                                                  slab_mm=[positions[5], positions[7]], with_probabilities=True)
    assert labels.same_geometry(image) and probability.same_geometry(image)
    assert list(ks) == [5, 6, 7]
    per_slice = labels.array.reshape(labels.array.shape[0], -1).sum(1)  # stored k = grid k here (axial, S up)
    assert (per_slice[5:8] == labels.array[0].size).all() and per_slice.sum() == 3 * labels.array[0].size
    labels_one, ks_one, _ = segment_with_prompt(image, card, net, "lesion", "cpu", slab_mm=[positions[2] + 0.4] * 2)
    assert list(ks_one) == [2]
    _, every, _ = segment_with_prompt(image, card, net, "lesion", "cpu")
    assert len(every) == image.array.shape[0]

    with pytest.raises(BadInputError, match="No axial slice"):
        segment_with_prompt(image, card, net, "lesion", "cpu", slab_mm=[500, 600])
    with pytest.raises(BadInputError, match="prompt is empty"):
        segment_with_prompt(image, card, net, "  ", "cpu")
    with pytest.raises(BadInputError, match="text prompt"):
        segment_volume(image, card, net, "cpu")


def test_an_image_only_text_model_runs_behind_the_same_call():
    image, _ = blob_case(2)
    card, net = tiny_text_model(model="unet")
    labels, ks, _ = segment_with_prompt(image, card, net.net, "lesion", "cpu")  # the bare U-Net, as load_model gives it
    assert labels.same_geometry(image) and len(ks) == image.array.shape[0]


def test_click_and_box_templates_say_what_a_mask_at_that_place_says():
    image, lesion = blob_case(4, shape=(16, 48, 40), directions=LPS_LIKE)
    case = prepare_case(image, SPEC, lesion)
    k = int(np.argmax(case.labels.reshape(len(case.labels), -1).sum(1)))
    view_mask = as_viewed(case.labels[k] > 0)
    expected = position_words(regions_from_mask(view_mask)[0].centre, view_mask.shape)
    voxels = np.argwhere(lesion.array > 0)  # (k, j, i) of the stored volume
    centre_ras = (image.ijk_to_ras @ np.r_[voxels.mean(0)[::-1], 1.0])[:3]
    prompt, slab = prompt_for_clicks(image, SPEC, [centre_ras], size="medium")
    assert prompt == f"one medium round lesion in the {expected}" and slab[0] == pytest.approx(centre_ras[2])
    two, _ = prompt_for_clicks(image, SPEC, [centre_ras, centre_ras + [0, 0, 3]])
    assert two.startswith("two lesions:")

    corners = [(image.ijk_to_ras @ np.r_[v[::-1], 1.0])[:3] for v in (voxels.min(0), voxels.max(0))]
    low, high = np.minimum(*corners), np.maximum(*corners)
    box = Box((low + high) / 2, np.abs(high - low) + 1.5, "lesion")
    box_prompt, box_slab = prompt_for_box(image, SPEC, box)
    assert box_prompt.endswith(f"lesion in the {expected}") and box_slab[0] < centre_ras[2] < box_slab[1]
    assert prompt_from_mask(view_mask).endswith(expected)
    with pytest.raises(BadInputError, match="outside"):
        prompt_for_clicks(image, SPEC, [centre_ras + [500, 0, 0]])
    with pytest.raises(BadInputError, match="No point"):
        prompt_for_clicks(image, SPEC, np.zeros((0, 3)))


def test_slice_positions_follow_an_oblique_grid():
    rotation = np.array([[1, 0, 0], [0, np.cos(0.2), -np.sin(0.2)], [0, np.sin(0.2), np.cos(0.2)]])
    volume = Volume.from_geometry(np.zeros((5, 4, 6), np.float32), (1.0, 1.0, 2.0), (0, 0, 10), rotation)
    s = slice_positions_mm(volume)
    assert np.allclose(np.diff(s), 2 * np.cos(0.2)) and s[0] == pytest.approx(10 + np.sin(0.2) * 1.5)
