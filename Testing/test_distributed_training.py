"""Training on several processes (torchrun, gloo on CPU): two processes that split every batch follow the loss
trajectory of one process with the same global batch (instance-norm U-Net; tolerance: float32 summation order),
end with the same weights, and only the first process writes the model and its catalog entry."""
import json
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file

from phantoms import sphere_phantom
from slicerleap.io import write_volume


def _cases(folder):
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    for n in range(3):
        image = sphere_phantom(24, seed=n)
        write_volume(image, folder / "images" / f"case{n}.nrrd")
        write_volume(image.with_array((image.array > np.percentile(image.array, 70)).astype(np.uint8)), folder / "labels" / f"case{n}.nrrd")


def _train(folder, out, model_id, *extra):
    done = subprocess.run(["slicerleap", "train", "segmentation", "--images", str(folder / "images"), "--labels", str(folder / "labels"),
                           "--out", str(out), "--id", model_id, "--epochs", "2", "--iterations-per-epoch", "3", "--batch-size", "2",
                           "--patch", "16", "16", "16", "--channels", "4", "8", "--spacing", "2", "2", "2", *extra],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "card.json").read_text()), load_file(str(out / "model.safetensors")), done


def test_two_gloo_processes_follow_the_single_process_trajectory(tmp_path):
    _cases(tmp_path / "data")
    one_card, one_weights, _ = _train(tmp_path / "data", tmp_path / "one", "ddp-one@1.0.0")
    two_card, two_weights, two = _train(tmp_path / "data", tmp_path / "two", "ddp-two@1.0.0", "--nproc-per-node", "2")
    one_losses = [v for h in one_card["evaluation"]["history"] for v in h["iteration_losses"]]
    two_losses = [v for h in two_card["evaluation"]["history"] for v in h["iteration_losses"]]
    assert len(one_losses) == len(two_losses) == 6
    np.testing.assert_allclose(two_losses, one_losses, rtol=1e-4)
    assert one_losses[-1] != one_losses[0]  # it trained
    assert set(one_weights) == set(two_weights)  # no DDP "module." prefix in the written model
    # the same function: a conv bias in front of instance norm gets a ~0 gradient that Adam's normalisation turns into
    # rounding-sized steps in either direction, so weights are compared through what the networks compute
    import torch
    from slicerleap.models.networks import build_network

    x = torch.randn(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    outputs = []
    for card, weights in ((one_card, one_weights), (two_card, two_weights)):
        net = build_network(card["architecture"]).eval()
        net.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
        with torch.no_grad():
            outputs.append(net(x).numpy())
    np.testing.assert_allclose(outputs[1], outputs[0], atol=2e-3 * np.abs(outputs[0]).max())
    assert [h["val_dice"] for h in two_card["evaluation"]["history"]] == pytest.approx([h["val_dice"] for h in one_card["evaluation"]["history"]], abs=1e-3)
    assert two.stdout.count("registered ddp-two@1.0.0") == 1


def test_a_batch_that_does_not_split_is_refused_before_training(tmp_path):
    _cases(tmp_path / "data")
    done = subprocess.run(["slicerleap", "train", "segmentation", "--images", str(tmp_path / "data" / "images"), "--labels",
                           str(tmp_path / "data" / "labels"), "--out", str(tmp_path / "m"), "--batch-size", "3", "--nproc-per-node", "2",
                           "--patch", "16", "16", "16", "--channels", "4", "8"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "cannot be split evenly between 2 processes" in done.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("options, message", [(["--nnodes", "2"], "--rdzv-endpoint"), (["--nproc-per-node", "0"], "1 or more")])
def test_process_options_are_checked(tmp_path, options, message):
    _cases(tmp_path / "data")
    done = subprocess.run(["slicerleap", "train", "segmentation", "--images", str(tmp_path / "data" / "images"), "--labels",
                           str(tmp_path / "data" / "labels"), "--out", str(tmp_path / "m"), *options], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr


def test_sks_teacher_registration_and_mptpn_trainers_end_with_the_same_model_on_every_process(tmp_path):
    """Under torchrun each process trains on its share of every batch (SKS, teacher) or on its own pair (registration);
    the processes must end with identical weights and see the same (gathered) validation scores."""
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("ddp_trainers.py")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    first, second = (json.loads((tmp_path / f"rank{r}_of_2.json").read_text()) for r in (0, 1))
    for trainer in ("sks", "teacher", "registration", "mptpn"):
        assert first[trainer]["weights"] == second[trainer]["weights"], trainer
        assert first[trainer]["history"] == second[trainer]["history"], trainer
    assert [h["training_stage"] for h in first["sks"]["history"]] == [1, 1, 2, 2]
    assert all(h["val_dice"] is not None for h in first["sks"]["history"] if h["training_stage"] == 2)
    assert len(first["registration"]["history"]) == 2 and "organ_dice" in first["teacher"]["history"][-1]
    assert [h["stage"] for h in first["mptpn"]["history"]] == [1, 1, 2, 2, 2, 2]
