"""FedICRA's building blocks (slicerleap.federated.fedicra): sparse labels simulated from masks, the sparse-label
losses, the site-code calibrated U-Net and its shared/personalised split, adaptive aggregation."""
import numpy as np
import pytest
import torch

from slicerleap.federated.fedicra.adaptive_aggregation import blend, learn_aggregation_weights
from slicerleap.federated.fedicra.losses import gated_crf_loss, partial_cross_entropy, partial_dice, site_code_contrast
from slicerleap.federated.fedicra.network import FedICRAUNet, split_state
from slicerleap.federated.fedicra.weak_labels import KINDS, UNLABELLED, weak_label


def two_blobs(size=64):
    yy, xx = np.mgrid[:size, :size]
    return ((yy - 20) ** 2 + (xx - 20) ** 2 < 8 ** 2) | ((yy - 44) ** 2 / 4 + (xx - 42) ** 2 < 12 ** 2)


@pytest.mark.parametrize("kind", KINDS)
def test_weak_labels_never_contradict_the_mask_and_mark_every_object(kind):
    mask = two_blobs()
    label = weak_label(mask, kind, np.random.default_rng(0))
    assert label.shape == mask.shape and set(np.unique(label)) <= {0, 1, UNLABELLED}
    assert not np.any((label == 1) & ~mask) and not np.any((label == 0) & mask)  # sparse, but never wrong
    from scipy import ndimage

    objects, count = ndimage.label(mask)
    assert count == 2 and all(np.any((label == 1) & (objects == n)) for n in (1, 2))
    assert np.any(label == 0)
    labelled = float(np.mean(label != UNLABELLED))
    assert labelled == 1.0 if kind == "full" else labelled < 0.95
    empty = weak_label(np.zeros_like(mask), kind, np.random.default_rng(0))
    assert not np.any(empty == 1) and np.any(empty == 0)


def test_partial_cross_entropy_ignores_unlabelled_pixels():
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    sparse = torch.full((2, 8, 8), UNLABELLED, dtype=torch.uint8)
    assert partial_cross_entropy(logits, sparse).item() == 0.0
    sparse[0, 2, 3], sparse[1, 5, 5] = 1, 0
    loss = partial_cross_entropy(logits, sparse)
    loss.backward()
    grad = logits.grad.abs().sum(1)
    assert (grad > 0).sum() == 2 and grad[0, 2, 3] > 0 and grad[1, 5, 5] > 0
    expected = torch.nn.functional.cross_entropy(torch.stack([logits[0, :, 2, 3], logits[1, :, 5, 5]]), torch.tensor([1, 0]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_partial_dice_scores_labelled_pixels_only():
    """Unlabelled pixels change nothing; a perfect foreground on the labelled pixels scores 0; no labelled foreground, 0."""
    sparse = torch.full((1, 8, 8), UNLABELLED, dtype=torch.uint8)
    sparse[0, 2:4, 2:4], sparse[0, 6, :] = 1, 0
    perfect = torch.zeros(1, 2, 8, 8)
    perfect[:, 1][sparse == 1], perfect[:, 0][sparse != 1] = 1.0, 1.0
    assert partial_dice(perfect, sparse).item() == pytest.approx(0.0, abs=1e-6)
    noisy = perfect.clone()
    noisy[:, 1][sparse == UNLABELLED] = 1.0  # foreground predicted where nobody labelled: not penalised
    assert partial_dice(noisy, sparse).item() == pytest.approx(0.0, abs=1e-6)
    wrong = perfect.clone()
    wrong[:, 1][sparse == 0] = 1.0  # foreground on labelled background: penalised
    assert partial_dice(wrong, sparse).item() > 0.3
    assert partial_dice(wrong, torch.where(sparse == 1, 0, sparse)).item() == 0.0


def test_gated_crf_prefers_labels_that_follow_the_image_edges():
    mask = torch.from_numpy(two_blobs().astype(np.float32))[None, None]
    image = mask * 0.8 + 0.1
    aligned = torch.cat([1 - mask, mask], dim=1)
    shifted_mask = torch.roll(mask, shifts=6, dims=3)
    shifted = torch.cat([1 - shifted_mask, shifted_mask], dim=1)
    uncertain = torch.full_like(aligned, 0.5)
    crf = lambda p: gated_crf_loss(p, image).item()
    assert crf(aligned) < crf(shifted) and crf(aligned) < crf(uncertain)
    gate = torch.zeros_like(mask)
    assert gated_crf_loss(shifted, image, gate=gate).item() == 0.0


def test_scr_unet_splits_shared_and_personal_parts_and_the_site_code_matters():
    torch.manual_seed(0)
    net = FedICRAUNet(3, 2, sites=3, channels=(8, 8, 16, 16, 32, 8))
    x = torch.randn(2, 3, 32, 32)
    logits, code = net(x, 1, return_code=True)
    assert logits.shape == (2, 2, 32, 32) and code.shape == (2, 32) and bool(((code > 0) & (code < 1)).all())
    assert not torch.allclose(net(x, 0), net(x, 2))  # the calibrated site code changes the bottleneck
    shared, personal = split_state(net.state_dict())
    assert set(shared) | set(personal) == set(net.state_dict()) and not set(shared) & set(personal)
    assert any(k.startswith("scr.") for k in shared) and any(k.startswith("down_4.") for k in shared)
    assert all(k.startswith(("upcat_", "final_conv")) for k in personal)
    codes = net.site_codes(x)
    assert codes.shape == (3, 32)
    loss = site_code_contrast(codes, 1)
    loss.backward()
    assert loss.item() < 0


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_adaptive_aggregation_interpolates_and_learns_toward_the_better_decoder(norm):
    torch.manual_seed(0)
    net = FedICRAUNet(1, 2, sites=2, channels=(4, 4, 8, 8, 8, 4), norm=norm)
    _, decoder = split_state(net.state_dict())
    global_decoder = {k: v.clone() for k, v in decoder.items()}
    local_decoder = {k: v + 0.5 * torch.randn_like(v) if v.is_floating_point() else v for k, v in decoder.items()}
    ones = {k: torch.ones_like(v) for k, v in decoder.items() if v.is_floating_point()}
    zeros = {k: torch.zeros_like(v) for k, v in ones.items()}
    assert all(torch.equal(blend(global_decoder, local_decoder, ones)[k], local_decoder[k]) for k in ones)
    assert all(torch.equal(blend(global_decoder, local_decoder, zeros)[k], global_decoder[k]) for k in ones)
    # the data agree with the global decoder: AA must move W down from 1 and lower the loss
    x = torch.randn(4, 1, 32, 32)
    net.load_state_dict({**net.state_dict(), **global_decoder})
    with torch.no_grad():
        target = net(x, 0).argmax(1)
    loss = lambda logits, t: torch.nn.functional.cross_entropy(logits, t)

    def batches():
        while True:
            yield (x, 0), target

    def loss_with(weights):
        from torch.func import functional_call

        with torch.no_grad():
            return loss(functional_call(net, {**net.state_dict(), **blend(global_decoder, local_decoder, weights)}, (x, 0)), target).item()

    state_before = {k: v.clone() for k, v in net.state_dict().items()}
    weights = learn_aggregation_weights(net, global_decoder, local_decoder, batches(), loss, steps=30, lr=0.05)
    assert all(torch.equal(state_before[k], v) for k, v in net.state_dict().items())  # AA leaves the net as it was
    parameters = dict(net.named_parameters())
    assert set(weights) == {k for k in decoder if k in parameters}  # no W for batch-norm statistics
    buffers = [k for k in decoder if k not in parameters]
    assert bool(buffers) == (norm == "batch")
    assert all(torch.equal(blend(global_decoder, local_decoder, weights)[k], local_decoder[k]) for k in buffers)  # stay personal
    assert all(float(w.min()) >= 0.0 and float(w.max()) <= 1.0 for w in weights.values())
    assert np.mean([float(w.mean()) for w in weights.values()]) < 0.9
    assert loss_with(weights) < loss_with(ones)


# slow (about 1.5 min, three seeded trainings); the FedICRA round itself runs in every CI; `pytest -m slow`
@pytest.mark.slow
def test_a_site_learns_from_box_labels_alone():
    """train_fedicra_round on box labels only (an inner block foreground, outside the box background; no full mask
    seen): Dice on the full masks rises well above the untrained network's in at least 2 of 3 seeded runs. (One
    90-step run was seed-fragile: 2 of 4 seeds learnt, and which ones depends on the CPU's floating-point path.
    Scribbles on these 5-pixel blobs are skeleton points: 90 steps do not learn from them; see the closing note
    of the FedICRA increment.)"""
    from phantoms import blob_case

    from slicerleap.federated.fedicra.training import sparsify, train_fedicra_round
    from slicerleap.segmentation.slice_data import prepare_case, slice_input_spec
    from slicerleap.segmentation.slice_training import SliceTrainingConfig, mean_dice

    config = SliceTrainingConfig(model="unet", crop=32, batch_size=4, learning_rate=0.01)
    spec = slice_input_spec(1.5, 1)
    cases = [prepare_case(image, spec, labels) for image, labels in map(blob_case, range(3))]
    runs = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        sparse = [sparsify(c, "box", rng) for c in cases]
        assert 0 < np.mean(sparse[0].sparse == 1) < 0.8 * np.mean(cases[0].labels > 0)  # part of the lesion is labelled
        torch.manual_seed(seed)
        net = FedICRAUNet(3, 2, sites=2, channels=(8, 8, 16, 16, 32, 8), site=1)  # answers as site 1
        before = mean_dice(net, cases, "cpu")
        loss = train_fedicra_round(net, sparse, 1, config, "cpu", 150, rng)
        runs.append((before, mean_dice(net, cases, "cpu")))
        assert np.isfinite(loss)
    assert sum(after > max(0.5, before + 0.2) for before, after in runs) >= 2, runs


def test_personal_state_keeps_the_sites_batch_norm_statistics_on_request(tmp_path):
    from slicerleap.federated.fedicra.personal import batch_norm_statistics, load_personal, personalised_state, save_personal

    torch.manual_seed(0)
    net = FedICRAUNet(3, 2, sites=2, channels=(4, 4, 8, 8, 8, 4), norm="batch")
    net(torch.randn(4, 3, 32, 32), 0)  # a training step's batch moves the running statistics away from 0 / 1
    own = batch_norm_statistics(net.state_dict())
    assert own and all(k.endswith(("running_mean", "running_var")) for k in own)
    shared, decoder = split_state(net.state_dict())
    save_personal(tmp_path / "p.safetensors", decoder, None, batch_norm_statistics(shared))
    personal = load_personal(tmp_path / "p.safetensors")
    global_state = FedICRAUNet(3, 2, sites=2, channels=(4, 4, 8, 8, 8, 4), norm="batch").state_dict()
    assert personalised_state(global_state, personal) is global_state  # no W yet, statistics not asked for
    mixed = personalised_state(global_state, personal, own_statistics=True)
    assert all(torch.equal(mixed[k], own[k]) for k in own)
    assert all(torch.equal(mixed[k], global_state[k]) for k in global_state if k not in own)
