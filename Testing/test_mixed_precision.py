"""bf16 mixed-precision training: where "auto" picks it, early refusal of a bad name, and — for each of the
three trainers — that training steps really run in bf16 while validation and prediction stay fp32."""
import numpy as np
import pytest
import torch

from phantoms import blob_case, organ_lesion_phantom
from slicerleap import Volume, mixed_precision
from slicerleap.errors import BadInputError
from slicerleap.mixed_precision import autocast, resolve_precision
from slicerleap.segmentation.mptpn import trainer as mptpn_trainer
from slicerleap.segmentation.teacher_student import training as teacher_student_training
from slicerleap.segmentation.boxes import boxes_from_labels
from slicerleap.segmentation.mptpn.trainer import MPTPNTrainingConfig, predict, train_mptpn
from slicerleap.segmentation.mptpn.prompted_slices import prompted_slices
from slicerleap.segmentation.slice_data import prepare_case, slice_input_spec
from slicerleap.segmentation.sks.trainer import train_slice_model
from slicerleap.segmentation.slice_training import SliceTrainingConfig
from slicerleap.segmentation.teacher_student.training import TeacherStudentConfig, prepare_box_case, train_box_unet


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_exactly_where_it_is_native_and_explicit_choices_are_kept(monkeypatch, native):
    monkeypatch.setattr(mixed_precision, "bf16_is_native", lambda device: native)
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"


def test_a_device_without_a_bf16_path_is_not_picked_by_auto():
    assert resolve_precision("auto", "meta") == "fp32"


@pytest.mark.parametrize("make", [lambda: TeacherStudentConfig(precision="fp16"), lambda: SliceTrainingConfig(precision="fp16"),
                                  lambda: MPTPNTrainingConfig(precision="fp16")])
def test_an_unknown_precision_is_refused_when_the_config_is_made(make):
    with pytest.raises(BadInputError, match="fp16") as err:
        make()
    assert "fp32, bf16, auto" in err.value.fix


def test_autocast_runs_convolutions_in_bf16_and_leaves_fp32_alone():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    with autocast("cpu", "bf16"):
        low = conv(x)
    with autocast("cpu", "fp32"):
        full = conv(x)
    assert low.dtype == torch.bfloat16 and full.dtype == torch.float32
    assert torch.equal(full, conv(x))
    assert torch.allclose(low.float(), full, atol=0.05, rtol=0.02)  # bf16 keeps ~3 significant digits
    with pytest.raises(ValueError, match="resolved"):
        autocast("cpu", "auto")


def record_conv_dtypes(net, seen: list):
    """Log (training?, dtype) of the network's first convolution's output on every forward pass."""
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda module, args, out: seen.append((net.training, out.dtype)))
    return net


def assert_bf16_training_fp32_evaluation(seen):
    assert {d for training, d in seen if training} == {torch.bfloat16}, seen
    assert {d for training, d in seen if not training} == {torch.float32}, seen


def test_teacher_trains_in_bf16_and_validates_in_fp32(monkeypatch):
    seen, build = [], teacher_student_training.build_box_unet
    monkeypatch.setattr(teacher_student_training, "build_box_unet", lambda *a: record_conv_dtypes(build(*a), seen))
    image, labels = (Volume.from_geometry(a, (1.5, 1.5, 2.0)) for a in organ_lesion_phantom(0))
    case = prepare_box_case(image, slice_input_spec(1.5), boxes_from_labels(labels), labels)
    config = TeacherStudentConfig(features=(8, 16, 32, 64, 128), crop=32, iterations=2, iterations_per_epoch=2, precision="bf16")
    train_box_unet("teacher", [case], [case], config, "cpu")
    assert_bf16_training_fp32_evaluation(seen)


def test_sks_trains_both_stages_in_bf16_and_validates_in_fp32(monkeypatch):
    from slicerleap.models import networks

    seen, build = [], networks.build_network
    monkeypatch.setattr(networks, "build_network", lambda *a: record_conv_dtypes(build(*a), seen))
    image, labels = blob_case(0)
    case = prepare_case(image, slice_input_spec(1.5), labels)
    config = SliceTrainingConfig(sks=dict(embed_dim=8, depths=(1, 1, 1), num_heads=(1, 1, 2), window=4), crop=32, batch_size=2,
                                 coarse_iterations=2, iterations=2, iterations_per_epoch=2, precision="bf16")
    train_slice_model([case], [case], [case], config, "cpu", lambda *a: None)
    assert_bf16_training_fp32_evaluation(seen)


def test_mptpn_trains_in_bf16_predicts_in_fp32_and_its_text_vectors_stay_fp32(monkeypatch):
    from slicerleap.segmentation.mptpn import text_encoder

    seen, build = [], mptpn_trainer.build
    monkeypatch.setattr(mptpn_trainer, "build", lambda *a: record_conv_dtypes(build(*a), seen))
    image, labels = blob_case(3)
    slices = prompted_slices(prepare_case(image, slice_input_spec(1.5, context=0), labels), 32, empty_share=0.5)
    config = MPTPNTrainingConfig(img_size=32, net={"channels": 4, "patch": 8, "heads": 1}, iterations=2, pretrain_iterations=0,
                                 batch_size=2, precision="bf16")
    text_encoder._encode_one.cache_clear()  # the prompts are first encoded inside a bf16 training step
    net = train_mptpn(slices, config, "cpu")[0]
    predict(net, slices.images[:2], slices.prompts[:2], "cpu")
    assert_bf16_training_fp32_evaluation(seen)
    cached = [text_encoder._encode_one(p.strip())[0] for p in slices.prompts]
    assert all(v.dtype == torch.float32 for v in cached)
    fresh = text_encoder._encode_one.__wrapped__(slices.prompts[0].strip())[0]
    assert np.allclose(cached[0].numpy(), fresh.numpy(), atol=1e-5)  # same vectors as an fp32 encoding
