"""MPTPN's training path on phantoms: the viewer's geometry of a prompt, prompted slices from a case, SimSiam
stage 1, stage 2 with the image-only baseline in the same loop, and the five metrics."""
import numpy as np
import pytest
import torch

from phantoms import blob_case
from slicerleap import Volume
from slicerleap.segmentation.metrics import prompted_metrics
from slicerleap.segmentation.mptpn.pretraining import pretrain_prior
from slicerleap.segmentation.mptpn.trainer import MPTPNTrainingConfig, build, predict, train_mptpn
from slicerleap.segmentation.mptpn.prompt_view import SquareFit, as_viewed
from slicerleap.segmentation.mptpn.prompted_slices import prompted_slices
from slicerleap.segmentation.slice_data import prepare_case, slice_input_spec
from slicerleap.segmentation.mptpn.prompts import mislocate

TINY = {"channels": 4, "patch": 8, "heads": 1}


def test_the_view_puts_patient_right_on_the_left_and_anterior_on_top():
    image = np.zeros((3, 20, 30), np.float32)  # RAS grid: [k, j (A), i (R)]
    image[1, 18, 27] = 1  # far right, far anterior
    volume = Volume.from_geometry(image, [1.0, 1.0, 1.0])
    view = as_viewed(volume.array[1])
    assert np.unravel_index(view.argmax(), view.shape) == (1, 2)  # top left of the screen
    assert np.array_equal(as_viewed(view), volume.array[1])


def test_square_fit_round_trips_a_smooth_view():
    rows, cols = np.mgrid[:50, :70]
    view = np.sin(rows / 9.0) * np.cos(cols / 11.0)
    fit = SquareFit(50, 70, 32)
    x = fit.to_model_input(view[None].astype(np.float32))
    assert tuple(x.shape) == (1, 1, 32, 32) and x[0, 0, 0].abs().max() == 0  # padding rows are zeros
    assert np.abs(fit.from_model_input(x)[0] - view).mean() < 0.05
    assert SquareFit(32, 32, 32).to_model_input(view[None, :32, :32].astype(np.float32)).shape == (1, 1, 32, 32)


def phantom_case(seed=3):
    image, labels = blob_case(seed, shape=(16, 40, 40), spacing=(1.5, 1.5, 3.0))
    return prepare_case(image, slice_input_spec(1.5, context=0), labels)


def test_prompted_slices_describe_what_the_view_shows():
    case = phantom_case()
    slices = prompted_slices(case, 32, empty_share=0.5)
    lesion = [p for p in slices.prompts if p != "no lesion"]
    assert lesion and all(p.startswith("one ") for p in lesion)
    assert 0 < sum(p == "no lesion" for p in slices.prompts) <= len(lesion) // 2 + 1
    for prompt, mask in zip(slices.prompts, slices.masks):
        assert (prompt == "no lesion") == (mask.sum() == 0)
    rows, cols = np.argwhere(slices.masks[slices.prompts.index(lesion[0]), 0].numpy()).mean(0) / 32
    expected = ("upper" if rows < 1 / 3 else "lower" if rows > 2 / 3 else "") + (" left" if cols < 1 / 3 else " right" if cols > 2 / 3 else "")
    assert all(word in lesion[0] for word in expected.split())
    assert slices.subset([0, 1]).images.shape[0] == 2
    assert mislocate("one small round lesion in the upper left") == "one small round lesion in the lower right"
    assert mislocate("one lesion in the centre") == "one lesion in the upper left"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_stage_one_and_two_train_and_the_baseline_runs_in_the_same_loop(precision):
    slices = prompted_slices(phantom_case(), 32, empty_share=0.5)
    config = MPTPNTrainingConfig(img_size=32, net=TINY, iterations=30, pretrain_iterations=3, batch_size=4, learning_rate=3e-3,
                                 precision=precision)
    records = []
    net, history, _ = train_mptpn(slices, config, "cpu", report=lambda f, m, r: records.append((f, m)))
    assert [h["stage"] for h in history].count(1) == 3 and history[-1]["stage"] == 2
    assert any("SimSiam" in m for _, m in records) and records[-1][0] == pytest.approx(1.0)
    assert np.mean([h["loss"] for h in history[-5:]]) < np.mean([h["loss"] for h in history[3:8]])
    probs = predict(net, slices.images, slices.prompts, "cpu")
    assert probs.shape == slices.masks.shape and 0 <= probs.min() and probs.max() <= 1
    stopped = train_mptpn(slices, config, "cpu", stop=lambda: True)[1]
    assert stopped == []
    baseline, history, _ = train_mptpn(slices, MPTPNTrainingConfig(model="unet", unet_channels=(4, 8), iterations=3, batch_size=2), "cpu")
    assert all(h["stage"] == 2 for h in history) and predict(baseline, slices.images, slices.prompts, "cpu").shape == probs.shape


def test_a_shared_stage_one_initialises_an_ablation_where_layers_match():
    slices = prompted_slices(phantom_case(), 32)
    full = build(MPTPNTrainingConfig(img_size=32, net=TINY)).eval()
    before = {k: v.clone() for k, v in full.state_dict().items()}
    pretrain_prior(full, slices.images, slices.prompts, 2, "cpu", batch_size=4)
    changed = [k for k, v in full.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert any(k.startswith("down.") for k in changed) and not any(k.startswith(("msff", "head")) for k in changed)
    ablation = MPTPNTrainingConfig(img_size=32, net={**TINY, "msff": False}, iterations=0, pretrain_iterations=0)
    net = train_mptpn(slices, ablation, "cpu", initial=full.state_dict())[0]
    assert torch.equal(net.state_dict()["x1.0.weight"], full.state_dict()["x1.0.weight"])


def test_prompted_metrics():
    truth = np.zeros((4, 4), bool)
    truth[:2, :2] = True
    pred = np.zeros((4, 4), bool)
    pred[:2, :1] = True
    m = prompted_metrics(pred, truth)
    assert m["dice"] == pytest.approx(2 * 2 / 6) and m["precision"] == 1 and m["recall"] == 0.5
    assert m["accuracy"] == pytest.approx(14 / 16) and m["miou"] == pytest.approx((0.5 + 12 / 14) / 2)
