"""SKS: network topology and ablation switches, 2.5D slice data on any orientation, the two training
stages, post-processing, and the CLI train → segment path on files (real worker processes)."""
import json
import subprocess

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from slicerleap.errors import BadInputError
from slicerleap.io import read_volume, write_volume
from slicerleap.segmentation.metrics import overlap_metrics
from slicerleap.segmentation.postprocess import postprocess_labels
from slicerleap.segmentation.sks.net import SKSNet
from slicerleap.segmentation.sks.trainer import train_slice_model
from slicerleap.segmentation.slice_data import flags_to_ranges, prepare_case, ranges_to_flags, slice_labels_on_grid
from slicerleap.segmentation.slice_training import SliceTrainingConfig
from slicerleap.volume import Volume, reorient_to_ras_axes

from phantoms import blob_case

TINY = dict(embed_dim=8, depths=(1, 1, 1), num_heads=(1, 1, 2), window=4)
SPEC = {"spacing_mm": [1.5, 1.5, None], "slice_axis": "axial", "slice_context": 1,
        "normalisation": {"kind": "percentile", "lower": 0.5, "upper": 99.5}}


@pytest.mark.parametrize("switches", [{}, {"coarse_branch": False}, {"prompt_skip": False}, {"rcs": False}])
def test_sks_net_shapes_and_ablation_switches(switches):
    net = SKSNet(**TINY, **switches)
    x = torch.randn(2, 3, 45, 37)  # not a multiple of the patch grid: padded inside, cropped back
    logits, slice_logits = net(x, return_slice_logits=True)
    assert logits.shape == (2, 2, 45, 37)
    assert (slice_logits is None) == (switches.get("coarse_branch") is False)
    logits.sum().backward()
    assert net.fine.embed.weight.grad.abs().sum() > 0
    if switches.get("coarse_branch", True):
        # the coarse branch reaches the segmentation through FSS (and the prompt skip when on)
        assert net.coarse.embed.weight.grad.abs().sum() > 0
        assert net.fusers[0].weight.shape == (8, 16)  # W in R^{C x 2C}


def test_ablations_change_the_decoder_inputs():
    full, no_prompt, no_rcs = SKSNet(**TINY), SKSNet(**TINY, prompt_skip=False), SKSNet(**TINY, rcs=False)
    assert full.skip_merges[0].in_features == 3 * 8  # decoder + RCS skip + prompt skip
    assert no_prompt.skip_merges[0].in_features == 2 * 8 and no_rcs.skip_merges[0].in_features == 2 * 8
    assert isinstance(SKSNet(**TINY, coarse_branch=False, rcs=False).skip_merges[0], torch.nn.Identity)


def test_reorientation_keeps_every_voxel_where_it_was():
    rng = np.random.default_rng(0)
    for t in range(40):
        directions = Rotation.random(random_state=t).as_matrix() if t % 2 else np.eye(3)[rng.permutation(3)] * rng.choice([-1, 1], 3)
        vol = Volume.from_geometry(rng.random((5, 6, 7)), spacing=rng.uniform(0.5, 3, 3), origin=rng.normal(0, 50, 3), directions=directions)
        out = reorient_to_ras_axes(vol)
        a = np.lexsort(np.round(vol.voxel_positions_ras().reshape(-1, 3), 6).T)
        b = np.lexsort(np.round(out.voxel_positions_ras().reshape(-1, 3), 6).T)
        np.testing.assert_allclose(vol.voxel_positions_ras().reshape(-1, 3)[a], out.voxel_positions_ras().reshape(-1, 3)[b], atol=1e-6)
        np.testing.assert_array_equal(vol.array.ravel()[a], out.array.ravel()[b])
        assert np.all(np.diag(out.directions) > 0)
        if t % 2 == 0:
            np.testing.assert_allclose(out.directions, np.eye(3), atol=1e-12)


def test_slice_labels_follow_a_flipped_scan_and_refuse_another_plane():
    image, _ = blob_case(0)
    flags = np.zeros(16, np.int8)
    flags[3:6] = 1
    flipped = image.with_array(image.array[::-1].copy())  # stored inferior<-superior: k runs towards I
    flipped.ijk_to_ras[:3, 2] *= -1
    flipped.ijk_to_ras[:3, 3] = image.ijk_to_ras[:3, 3] + image.ijk_to_ras[:3, 2] * 15
    case = prepare_case(flipped, SPEC, slice_labels=flags)
    np.testing.assert_array_equal(case.slice_labels, flags[::-1])  # the model reads them inferior to superior
    sagittal = Volume.from_geometry(image.array, spacing=(1.5, 1.5, 3.0), directions=[[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    with pytest.raises(BadInputError, match="plane"):
        slice_labels_on_grid(flags, sagittal, prepare_case(sagittal, SPEC).grid)
    with pytest.raises(BadInputError, match="16"):
        prepare_case(image, SPEC, slice_labels=flags[:10])
    assert flags_to_ranges(ranges_to_flags([[3, 5], [9, 9]], 16)) == [[3, 5], [9, 9]]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_two_stage_training_freezes_the_guidance_branch_and_learns(precision):
    pixel = [prepare_case(*blob_case(s)[:1], SPEC, blob_case(s)[1]) for s in range(2)]
    weak = []
    for s in range(2, 6):
        image, labels = blob_case(s)
        weak.append(prepare_case(image, SPEC, slice_labels=(labels.array.reshape(16, -1).max(1) > 0).astype(int)))
    config = SliceTrainingConfig(sks=TINY, crop=32, batch_size=4, coarse_iterations=6, iterations=30, iterations_per_epoch=10,
                                 learning_rate=3e-3, precision=precision)
    records = []
    torch.manual_seed(0)
    net, history, _ = train_slice_model(pixel, weak, pixel[:1], config, "cpu", lambda f, m, r: records.append((f, r)))
    stage1 = {k: v.clone() for k, v in net.coarse.state_dict().items()}
    assert [r["training_stage"] for r in history] == [1, 2, 2, 2]
    assert 0 < records[0][0] < records[-1][0] == pytest.approx(1.0)
    assert history[-1]["loss"] < history[1]["loss"]  # stage-2 loss went down
    assert all(not p.requires_grad for p in net.coarse.parameters())
    # a second stage-2 run from here must not change the frozen branch
    from slicerleap.segmentation.sks.trainer import train_segmenter
    train_segmenter(net, pixel, [], SliceTrainingConfig(sks=TINY, crop=32, batch_size=2, iterations=2), "cpu", lambda *a: None)
    for k, v in net.coarse.state_dict().items():
        assert torch.equal(v, stage1[k]), k


def test_equal_validation_scores_keep_the_later_weights(monkeypatch):
    """Validation Dice 0 at every check (lesions too small to hit early on) must not leave the first check's weights."""
    from slicerleap.segmentation.sks import trainer as sks_trainer

    pixel = [prepare_case(*blob_case(s)[:1], SPEC, blob_case(s)[1]) for s in range(2)]
    monkeypatch.setattr(sks_trainer, "mean_dice", lambda *a, **k: 0.0)
    net = SKSNet(in_channels=3, out_channels=2, **TINY)
    states = []
    def keep_state(fraction, message, record):
        states.append({k: v.detach().clone() for k, v in net.state_dict().items()})
    config = SliceTrainingConfig(sks=TINY, crop=32, batch_size=2, iterations=6, iterations_per_epoch=2, learning_rate=3e-3)
    history = sks_trainer.train_segmenter(net, pixel, pixel[:1], config, "cpu", keep_state)
    assert [h["iteration"] for h in history] == [2, 4, 6] and len(states) == 3
    assert any(not torch.equal(states[0][k], states[-1][k]) for k in states[0])
    for k, v in net.state_dict().items():
        assert torch.equal(v, states[-1][k]), k


def test_postprocessing_by_label_role():
    labels = [{"value": 1, "name": "Liver", "color": "#aa0000", "role": "organ"},
              {"value": 2, "name": "Tumour", "color": "#00aa00", "role": "lesion"}]
    a = np.zeros((10, 20, 20), np.int16)
    a[2:8, 2:12, 2:12] = 1
    a[4:6, 5:8, 5:8] = 2        # lesion inside the organ
    a[4, 6, 9] = 0              # a hole in the organ
    a[1, 18:20, 18:20] = 1      # stray organ island
    a[8:10, 15:18, 15:18] = 2   # lesion far from the organ
    a[3, 3, 3] = 2              # one-voxel lesion inside the organ
    out = postprocess_labels(a, labels, (1.0, 1.0, 1.0), {"min_lesion_mm3": 2})
    assert out[1, 18, 18] == 0 and out[4, 6, 9] == 1 and out[9, 16, 16] == 0
    assert out[4, 6, 6] == 2 and out[3, 3, 3] == 1
    assert np.array_equal(postprocess_labels(a, labels, (1, 1, 1), {"largest_organ": False, "fill_holes": False,
                                                                      "lesions_inside_organ": False}), a)


def test_overlap_metrics():
    p, t = np.zeros(10, bool), np.zeros(10, bool)
    assert overlap_metrics(p, t)["dice"] == 1.0
    p[:4], t[2:6] = True, True
    m = overlap_metrics(p, t)
    assert m == {"dice": 0.5, "jaccard": 2 / 6, "precision": 0.5, "recall": 0.5}
    assert overlap_metrics(np.zeros(10, bool), t)["precision"] == 0.0


def test_cli_trains_sks_and_segments_an_oblique_scan_on_its_own_grid(tmp_path):
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    table = {}
    for s in range(4):
        image, labels = blob_case(s)
        write_volume(image, tmp_path / "images" / f"case{s}.nrrd")
        if s < 2:
            write_volume(labels, tmp_path / "labels" / f"case{s}.nrrd")
        else:
            table[f"case{s}"] = {"lesion_slices": flags_to_ranges(labels.array.reshape(16, -1).max(1))}
    (tmp_path / "slices.json").write_text(json.dumps(table), encoding="utf-8")
    out = subprocess.run(["slicerleap", "train", "sks", "--images", str(tmp_path / "images"), "--labels", str(tmp_path / "labels"),
                          "--slice-labels", str(tmp_path / "slices.json"), "--out", str(tmp_path / "model"), "--id", "test-sks@0.0.1",
                          "--iterations", "4", "--coarse-iterations", "2"], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)
    assert out.returncode == 0, out.stderr
    assert "2 case(s) with pixel labels, 2 with slice labels" in out.stderr and "stage 1" in out.stderr
    card = json.loads((tmp_path / "model" / "card.json").read_text(encoding="utf-8"))
    assert card["architecture"]["name"] == "slicerleap.SKSNet" and card["input"]["slice_context"] == 1 and len(card["sha256"]) == 64

    oblique = Rotation.from_euler("xyz", [20, -10, 95], degrees=True).as_matrix()
    scan, _ = blob_case(9, shape=(12, 36, 30), spacing=(0.9, 1.1, 2.5), directions=oblique)
    write_volume(scan, tmp_path / "scan.nii.gz")
    out = subprocess.run(["slicerleap", "segment", "--model", "test-sks@0.0.1", "--input", str(tmp_path / "scan.nii.gz"),
                          "--output", str(tmp_path / "seg.nrrd"), "--probability", str(tmp_path / "p.nrrd")],
                         capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)
    assert out.returncode == 0, out.stderr
    seg, prob = read_volume(tmp_path / "seg.nrrd"), read_volume(tmp_path / "p.nrrd")
    assert seg.array.shape == scan.array.shape and set(np.unique(seg.array)) <= {0, 1}
    np.testing.assert_allclose(seg.ijk_to_ras, read_volume(tmp_path / "scan.nii.gz").ijk_to_ras, atol=1e-5)
    assert 0.0 <= prob.array.min() and prob.array.max() <= 1.0

    out = subprocess.run(["slicerleap", "train", "sks", "--images", str(tmp_path / "images"), "--labels", str(tmp_path / "labels"),
                          "--out", str(tmp_path / "m2")], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120)
    assert out.returncode == 2 and "neither a labelmap nor slice labels" in out.stderr


def test_balanced_cross_entropy_gives_each_class_the_same_weight_and_is_a_stage2_loss():
    import torch
    import torch.nn.functional as F

    from slicerleap.segmentation.balanced_loss import balanced_cross_entropy
    from slicerleap.segmentation.slice_training import segmentation_loss

    target = torch.zeros(1, 1, 10, 10, dtype=torch.long)
    target[0, 0, 4, 4] = 1  # one lesion pixel among 99 background pixels
    logits = torch.zeros(1, 2, 10, 10)
    logits[0, 0] = 5.0  # background confidently right ...
    logits[0, 0, 4, 4], logits[0, 1, 4, 4] = 0.0, -3.0  # ... the lesion pixel predicted background: the only large error
    per_pixel = F.cross_entropy(logits, target[:, 0], reduction="none")
    expected = 0.5 * per_pixel[0, 4, 4] + 0.5 * (per_pixel.sum() - per_pixel[0, 4, 4]) / 99
    assert torch.isclose(balanced_cross_entropy(logits, target), expected)
    assert balanced_cross_entropy(logits, target) > 10 * F.cross_entropy(logits, target[:, 0])  # the plain mean hides it
    assert torch.isfinite(segmentation_loss("dice_balanced_ce")(logits.requires_grad_(), target))
    with pytest.raises(ValueError, match="unknown segmentation loss"):
        segmentation_loss("focal")


def test_a_stopped_stage_2_run_goes_on_where_it_was_and_ends_as_an_unbroken_run(tmp_path):
    """A benchmark run killed mid-training (a session ends) resumes from its last validation: the same weights and
    history as a run that was never stopped, and no state file left behind."""
    from slicerleap.segmentation.sks.trainer import train_segmenter

    pixel = [prepare_case(*blob_case(s)[:1], SPEC, blob_case(s)[1]) for s in range(2)]
    config = SliceTrainingConfig(sks=TINY, crop=32, batch_size=2, iterations=8, iterations_per_epoch=2, learning_rate=3e-3, seed=3)

    def fresh_net():
        torch.manual_seed(0)
        return SKSNet(in_channels=3, out_channels=2, **TINY)

    unbroken = fresh_net()
    torch.manual_seed(1)
    expected = train_segmenter(unbroken, pixel, pixel[:1], config, "cpu", lambda *a: None)

    class Killed(Exception):
        pass

    def killed_at_the_second_check(fraction, message, record):
        if record["iteration"] == 4:
            raise Killed
    resume = tmp_path / "run.resume.pt"
    killed = fresh_net()
    torch.manual_seed(1)
    with pytest.raises(Killed):
        train_segmenter(killed, pixel, pixel[:1], config, "cpu", killed_at_the_second_check, resume_file=str(resume))
    assert resume.exists()  # saved at the first check (iteration 2): the killed check did not save
    resumed = fresh_net()
    torch.manual_seed(99)  # the saved generator state wins over whatever the new process has
    history = train_segmenter(resumed, pixel, pixel[:1], config, "cpu", lambda *a: None, resume_file=str(resume))
    assert [h["iteration"] for h in history] == [2, 4, 6, 8]
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in expected])
    for k, v in unbroken.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v)
    assert not resume.exists()
