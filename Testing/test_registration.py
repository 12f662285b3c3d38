"""RegistrationDL engine: deformable cross-attention, TM-DCA and VoxelMorph training, the implicitly solved
regulariser, neural instance optimisation, random diffeomorphisms and the working grid's geometry."""
import math

import numpy as np
import pytest
import torch

from phantoms import sphere_phantom
from slicerleap.registration.deformable_cross_attention import DeformableWindowCrossAttention
from slicerleap.registration.implicit_regularisation import ImplicitRegulariser, solve_regularised_field
from slicerleap.registration.losses import RegistrationLoss, RegistrationLossConfig
from slicerleap.registration.neural_instance_optimisation import NIOConfig, neural_instance_optimisation
from slicerleap.registration.random_deformation import random_displacement, warp
from slicerleap.registration.training import (RegistrationTrainingConfig, pair_dice, tm_dca_architecture, train_registration,
                                              voxelmorph_architecture)
from slicerleap.registration.training_pairs import PairSampler, PairSamplerConfig
from slicerleap.registration.working_grid import field_in_ras, jacobian_determinant, working_grid
from slicerleap.volume import Volume

OBLIQUE_CORONAL = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # i->L, j->S, k->P


def test_offsets_move_the_queries_per_head():
    """With the offset network's output fixed at +1 token along the first axis, every head's queries are
    the reference's projected features one token further along that axis."""
    torch.manual_seed(0)
    block = DeformableWindowCrossAttention(dim=8, heads=2, window=2, offset_range=2.0).eval()
    with torch.no_grad():
        block.offsets[-1].bias.zero_()
        block.offsets[-1].bias[0::3] = math.atanh(0.5)  # range 2 * tanh(atanh(0.5)) = 1 token along axis d
    base, ref = torch.randn(1, 5, 4, 3, 8), torch.randn(1, 5, 4, 3, 8)
    sampled = block._sampled_queries(base, ref)
    expected = block.query(ref)[:, 1:]
    torch.testing.assert_close(sampled[:, :-1], expected, atol=1e-5, rtol=1e-5)


def test_cross_attention_ignores_padding_and_depends_on_both_streams():
    """Attention stays inside a (shifted, padded) window: a token's output ignores a token of another
    window and follows its own query, which comes from the reference stream."""
    torch.manual_seed(1)
    block = DeformableWindowCrossAttention(dim=8, heads=2, window=2, shift=True).eval()
    base, ref = torch.randn(1, 8, 5, 6, 7), torch.randn(1, 8, 5, 6, 7)
    with torch.no_grad():
        out = block(base, ref)
        assert torch.isfinite(out).all() and out.shape == base.shape
        far = base.clone()
        far[0, :, 4, 5, 6] = 3 * torch.randn(8)  # a token in another (shifted) window than token (1, 1, 1)
        assert not torch.allclose(block(far, ref)[..., 4, 5, 6], out[..., 4, 5, 6])
        torch.testing.assert_close(block(far, ref)[..., 1, 1, 1], out[..., 1, 1, 1])
        other_ref = ref.clone()
        other_ref[0, :, 1, 1, 1] = 3 * torch.randn(8)  # its query (not a constant shift: LayerNorm removes those)
        assert not torch.allclose(block(base, other_ref)[..., 1, 1, 1], out[..., 1, 1, 1])


@pytest.mark.parametrize("kind,gamma", [("diffusion", 2.0), ("elastic", 2.0), ("curvature", 5.0)])
def test_implicit_solve_is_the_minimiser(kind, gamma):
    """ū = argmin ½‖u − v‖² + γR(v) (periodic differences): the energy's gradient vanishes at ū."""
    torch.manual_seed(0)
    u = torch.randn(1, 3, 12, 10, 8, dtype=torch.float64)
    solved = solve_regularised_field(u, kind, gamma=gamma, mu=1.0, lam=0.5).clone().requires_grad_(True)
    forward = lambda x, a: torch.roll(x, -1, dims=a) - x  # noqa: E731
    if kind == "diffusion":
        reg = 0.5 * sum((forward(solved, a) ** 2).sum() for a in (2, 3, 4))
    elif kind == "curvature":
        lap = sum(torch.roll(solved, 1, a) - 2 * solved + torch.roll(solved, -1, a) for a in (2, 3, 4))
        reg = 0.5 * (lap ** 2).sum()
    else:
        div = sum(forward(solved[:, d:d + 1], 2 + d) for d in range(3))
        reg = 0.5 * sum((forward(solved, a) ** 2).sum() for a in (2, 3, 4)) + 0.5 * 1.5 * (div ** 2).sum()
    energy = 0.5 * ((u - solved) ** 2).sum() + gamma * reg
    energy.backward()
    assert solved.grad.abs().max() < 1e-4
    assert (u - solved).abs().max() > 0.5  # and it did smooth


def test_implicit_regulariser_pulls_towards_a_smoother_field():
    u = torch.randn(1, 3, 10, 10, 10, requires_grad=True)
    ImplicitRegulariser("diffusion")(u).backward()
    smoother = u.detach() - 5.0 * u.grad  # a gradient step on the term lowers the field's roughness
    rough = lambda v: sum(((v - torch.roll(v, 1, a)) ** 2).mean() for a in (2, 3, 4))  # noqa: E731
    assert rough(smoother) < rough(u.detach())


def test_random_displacement_is_diffeomorphic_and_sized():
    g = torch.Generator().manual_seed(0)
    ddf = random_displacement((24, 28, 20), 3.0, generator=g)
    assert 1.5 < ddf.abs().max() < 4.5
    grid = Volume.from_geometry(np.zeros((24, 28, 20), np.float32), spacing=(2.0, 2.0, 2.0))
    field = field_in_ras(ddf, grid, np.eye(4))
    assert jacobian_determinant(field).min() > 0


@pytest.mark.parametrize("architecture", [tm_dca_architecture(embed_dim=8, depths=[1, 1], heads=[2, 4]),
                                          voxelmorph_architecture(channels=[8, 16, 16, 16], final_conv_channels=[8, 8])],
                         ids=["tm-dca", "voxelmorph"])
def test_training_improves_label_overlap(architecture):
    """Same loop, loss and pairs for TM-DCA and VoxelMorph: training on one synthetic label-map pair raises
    the Dice of its warped labels above the unregistered overlap (the loop learns; generalisation is the
    benchmark's job), and the history records every loss part."""
    pair = PairSampler([], PairSamplerConfig(shape=(32, 32, 32), max_displacement_voxels=3.0, synthetic_labels=4), seed=7).sample()
    one_pair = type("OnePair", (), {"sample": lambda self: pair})()
    identity = type("Identity", (torch.nn.Module,), {"forward": lambda self, m, f: (m, torch.zeros((1, 3) + m.shape[2:]))})()
    before = pair_dice(identity, [pair], "cpu", [1, 2, 3, 4])
    train = RegistrationTrainingConfig(architecture=architecture, iterations=60, learning_rate=3e-3, validate_every=20,
                                       loss=RegistrationLossConfig(regulariser="diffusion", regulariser_weight=0.5))
    net, history = train_registration(one_pair, [pair], train, "cpu", n_classes=5)
    assert len(history) == 3 and all(k in history[-1] for k in ("similarity", "regulariser", "dice", "val_dice"))
    assert pair_dice(net, [pair], "cpu", [1, 2, 3, 4]) > before + 0.02, (before, history)


def test_loss_rejects_unknown_parts():
    with pytest.raises(ValueError, match="unknown similarity"):
        RegistrationLoss(RegistrationLossConfig(similarity="ssd"))
    with pytest.raises(ValueError, match="unknown regulariser"):
        RegistrationLoss(RegistrationLossConfig(regulariser="tv"))


def test_nio_improves_the_pair_and_leaves_the_network_alone():
    torch.manual_seed(0)
    net = __import__("slicerleap.models.networks", fromlist=["build_network"]).build_network(
        tm_dca_architecture(embed_dim=8, depths=[1, 1], heads=[2, 4]))
    moving, fixed, _, _ = PairSampler([], PairSamplerConfig(shape=(32, 32, 32), max_displacement_voxels=3.0), seed=3).sample()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=7)
    with torch.no_grad():
        plain = -lncc(warp(moving, net(moving, fixed)[1]), fixed).item()
    ddf = neural_instance_optimisation(net, fixed, moving, NIOConfig(scales=(0.5, 1.0), iterations=(20, 10), learning_rate=2e-3))
    refined = -lncc(warp(moving, ddf), fixed).item()
    assert ddf.shape == (1, 3, 32, 32, 32)
    assert refined > plain + 0.02, (plain, refined)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_working_grid_runs_along_ras_whatever_the_scan_orientation():
    """A coronal scan stored with i->L, j->S, k->P is put on a grid whose axes run closest to R, A, S, at
    the working spacing, covering the same place."""
    scan = sphere_phantom(20, spacing=(1.0, 2.0, 3.0), directions=OBLIQUE_CORONAL)
    grid = working_grid(scan, 2.5)
    np.testing.assert_allclose(np.abs(grid.directions), np.eye(3), atol=1e-9)
    assert (np.diag(grid.directions) > 0).all()
    np.testing.assert_allclose(grid.spacing, [2.5] * 3)
    centre = lambda v: (v.ijk_to_ras @ np.r_[(np.array(v.shape_ijk) - 1) / 2.0, 1.0])[:3]  # noqa: E731
    np.testing.assert_allclose(centre(grid), centre(scan), atol=1.5)


def test_zero_field_on_the_working_grid_is_the_affine():
    scan = sphere_phantom(12, directions=OBLIQUE_CORONAL)
    grid = working_grid(scan, 3.0)
    affine = np.eye(4)
    affine[:3, 3] = [2.0, -1.0, 4.0]
    field = field_in_ras(torch.zeros((1, 3) + grid.array.shape), grid, affine)
    np.testing.assert_allclose(field.array.reshape(-1, 3), np.tile([2.0, -1.0, 4.0], (field.array[..., 0].size, 1)), atol=1e-5)


def test_affine_recovers_a_known_rotation_scaling_and_shift_between_oblique_scans():
    """The affine pre-alignment (two levels, the finest at about 4 mm) finds a known 12 degree rotation,
    6 % scaling and 7 mm shift between an asymmetric phantom on an oblique grid and its copy on an axis-aligned
    grid: points inside the object map to within one 1.6 mm voxel of their true place."""
    from scipy.ndimage import gaussian_filter

    from slicerleap.registration.affine import affine_levels, affine_register
    from slicerleap.registration.working_grid import sample_affine

    z, y, x = np.mgrid[:64, :64, :64].astype(np.float32)
    body = ((x - 30) / 22) ** 2 + ((y - 34) / 17) ** 2 + ((z - 32) / 24) ** 2 < 1  # ellipsoid, off-centre core and a bar
    image = np.where(body, 100.0, 5.0) + 70.0 * (((x - 38) ** 2 + (y - 30) ** 2 + (z - 24) ** 2) < 64)
    image += 60.0 * ((np.abs(x - 22) < 3) & (np.abs(y - 38) < 8) & body)
    # smooth tissue-like texture (sd ~12): on piecewise-constant images MI is flat between edges and random
    # sampling leaves the affine 2-4 mm off (both this and the earlier 3-level schedule)
    image += 400.0 * gaussian_filter(np.random.default_rng(0).normal(size=image.shape), 3.0) * body
    moving = Volume.from_geometry(image.astype(np.float32), (1.5, 1.5, 1.5), (-40.0, -50.0, -45.0), OBLIQUE_CORONAL)
    centre = moving.voxel_positions_ras()[32, 32, 32]
    fixed_grid = Volume.from_geometry(np.zeros((60, 60, 60), np.float32), (1.6, 1.6, 1.6), centre - 1.6 * 29.5)  # axis-aligned
    angle = math.radians(12.0)
    truth = np.eye(4)  # moving position = truth @ fixed position
    truth[:3, :3] = 1.06 * np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    truth[:3, 3] = centre - truth[:3, :3] @ centre + [4.0, -5.0, 3.0]
    fixed = fixed_grid.with_array(sample_affine(moving, fixed_grid, truth))
    assert affine_levels(fixed.spacing) == [4, 2]
    found = affine_register(fixed, moving)
    inside = fixed.voxel_positions_ras()[fixed.array > 50][::50]
    error = np.linalg.norm(inside @ (found[:3, :3] - truth[:3, :3]).T + (found[:3, 3] - truth[:3, 3]), axis=1)
    assert error.max() < 1.6, error.max()


def test_folding_penalty_jacobian_is_the_field_metrics_jacobian():
    """The torch det J the folding penalty uses equals the one the metrics report (numpy, physical units),
    on the whole grid, faces included, for a field that folds somewhere."""
    from slicerleap.registration.folding_penalty import folding_penalty, jacobian_determinant_voxels

    g = torch.Generator().manual_seed(0)
    ddf = random_displacement((12, 14, 16), 2.5, generator=g) * 3.0  # strong enough to fold
    grid = Volume(np.zeros((12, 14, 16), np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
    expected = jacobian_determinant(field_in_ras(ddf, grid, np.eye(4)))
    got = jacobian_determinant_voxels(ddf)[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (expected <= 0).any()
    penalty = folding_penalty(ddf).item()
    assert penalty == pytest.approx(np.maximum(0.1 - expected, 0).mean(), rel=1e-4)
    assert folding_penalty(torch.zeros_like(ddf)).item() == 0.0


def test_folding_penalty_keeps_the_optimised_field_from_folding():
    """A large deformation with weak diffusion folds the optimised field; the penalty removes most of
    the folding at almost the same image agreement."""
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    from slicerleap.registration.folding_penalty import jacobian_determinant_voxels
    from slicerleap.registration.instance_optimisation import InstanceOptimisationConfig, refine_displacement

    moving, fixed, _, _ = PairSampler([], PairSamplerConfig(shape=(32, 32, 32), max_displacement_voxels=5.0), seed=1).sample()
    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=7)
    results = {}
    for weight in (0.0, 10.0):
        config = InstanceOptimisationConfig(levels=2, iterations=60, smoothness=0.05, folding_weight=weight)
        ddf = refine_displacement(fixed, moving, config)
        results[weight] = ((jacobian_determinant_voxels(ddf) <= 0).float().mean().item(), -lncc(warp(moving, ddf), fixed).item())
    (fold_free, similarity_free), (fold_penalised, similarity_penalised) = results[0.0], results[10.0]
    assert fold_free > 0.002, results  # the unpenalised field really folds
    assert fold_penalised < 0.25 * fold_free, results
    assert similarity_penalised > similarity_free - 0.05, results


def test_refinement_starts_from_the_given_field_and_improves_it():
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    from slicerleap.registration.instance_optimisation import InstanceOptimisationConfig, refine_displacement, refinement_schedule

    moving, fixed, _, _ = PairSampler([], PairSamplerConfig(shape=(32, 32, 32), max_displacement_voxels=3.0), seed=4).sample()
    start = random_displacement((16, 16, 16), 1.0, generator=torch.Generator().manual_seed(2))  # coarser than the pair
    unchanged = refine_displacement(fixed, moving, InstanceOptimisationConfig(levels=1, iterations=0), start)
    np.testing.assert_allclose(unchanged[:, :, ::2, ::2, ::2].mean().item(), (start * 2).mean().item(), atol=0.05)  # in voxels of the pair
    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=7)
    schedule = refinement_schedule(35, 2.5)
    assert (schedule.steps_at(1), schedule.steps_at(0)) == (30, 5)
    assert (refinement_schedule(70, 2.0).steps_at(1), refinement_schedule(90, 2.0).steps_at(0)) == (60, 30)  # more budget: finer steps
    refined = refine_displacement(fixed, moving, schedule, start)
    assert refined.shape == (1, 3, 32, 32, 32)
    assert -lncc(warp(moving, refined), fixed).item() > -lncc(warp(moving, unchanged), fixed).item() + 0.05


def test_foreground_box_covers_what_either_image_shows_plus_a_margin():
    from slicerleap.registration.foreground_box import foreground_box

    fixed, moving = torch.zeros(1, 1, 40, 50, 60), torch.zeros(1, 1, 40, 50, 60)
    fixed[..., 10:20, 12:30, 20:40] = 1.0
    moving[..., 15:25, 12:30, 20:44] = 0.8  # the moving image reaches further: the box covers both
    moving[..., 35, 45, 55] = 1.0  # a single bright noise voxel does not count
    box = foreground_box(fixed, moving, margin=3)
    assert box == (slice(5, 30), slice(7, 35), slice(15, 49)), box  # content, +2 from the 5³ mean, +3 margin
    assert foreground_box(torch.zeros_like(fixed), torch.zeros_like(fixed), margin=3) is None  # nothing shows
    assert foreground_box(torch.ones_like(fixed), moving, margin=3) is None  # no saving: the whole grid


def test_refinement_around_the_content_keeps_the_field_outside_and_on_the_box_faces():
    """Content in the middle of a larger empty grid: the field is optimised only in the box around it, the
    starting field survives outside and on the box's faces (so the field stays continuous there), and
    the images agree as well as when the whole grid is optimised."""
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    from slicerleap.registration.foreground_box import foreground_box
    from slicerleap.registration.instance_optimisation import InstanceOptimisationConfig, refine_displacement

    moving_c, fixed_c, _, _ = PairSampler([], PairSamplerConfig(shape=(32, 32, 32), max_displacement_voxels=3.0), seed=4).sample()
    fixed, moving = torch.zeros(1, 1, 64, 64, 64), torch.zeros(1, 1, 64, 64, 64)
    fixed[..., 16:48, 16:48, 16:48], moving[..., 16:48, 16:48, 16:48] = fixed_c, moving_c
    start = random_displacement((64, 64, 64), 0.5, generator=torch.Generator().manual_seed(1))
    box = foreground_box(fixed, moving, margin=9)
    assert box is not None
    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=7)
    results = {}
    for crop in (True, False):
        config = InstanceOptimisationConfig(levels=2, iterations=30, fine_iterations=10, smoothness=0.5, crop_to_foreground=crop)
        results[crop] = refine_displacement(fixed, moving, config, start)
    cropped = results[True]
    outside = torch.ones(64, 64, 64, dtype=torch.bool)
    outside[box] = False
    outside[tuple(slice(s.start + 1, s.stop - 1) for s in box)] = False  # the box's interior moves; its faces do not
    assert torch.equal(cropped[:, :, outside], start[:, :, outside])
    assert not torch.allclose(cropped, start)
    agreement = {crop: -lncc(warp(moving, ddf), fixed).item() for crop, ddf in results.items()}
    assert agreement[True] > -lncc(warp(moving, start), fixed).item() + 0.05, agreement
    assert agreement[True] > agreement[False] - 0.02, agreement


def test_a_field_moved_to_a_finer_working_grid_keeps_its_physical_displacement():
    """The same RAS displacement on a 2.5 mm and a 2 mm working grid of an oblique scan: a smooth field's
    vectors (in each grid's voxels) map to the same millimetres at the same positions."""
    from slicerleap.registration.working_grid import ddf_on_grid, displacement_on_grid

    scan = Volume(np.zeros((30, 36, 40), np.float32), np.eye(4))
    scan.ijk_to_ras[:3, :3] = OBLIQUE_CORONAL @ np.diag([1.2, 1.5, 2.0])
    coarse, fine = working_grid(scan, 2.5), working_grid(scan, 2.0)
    ddf = random_displacement(coarse.array.shape, 1.5, generator=torch.Generator().manual_seed(3))
    moved = ddf_on_grid(ddf, coarse, fine)
    assert moved.shape[2:] == fine.array.shape
    coarse_ras = field_in_ras(ddf, coarse, np.eye(4))
    expected = displacement_on_grid(coarse_ras, fine)
    got = field_in_ras(moved, fine, np.eye(4)).array
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.abs(expected).max() > 1.0  # a real displacement, in mm


def test_refinement_runs_as_fine_as_the_fixed_image_allows():
    from slicerleap.registration.instance_optimisation import refinement_spacing

    def scan(spacing):
        return Volume(np.zeros((4, 4, 4), np.float32), np.diag(list(spacing) + [1.0]))

    assert refinement_spacing(2.5, scan((1.0, 1.0, 1.0))) == 2.0  # no finer than 2 mm: a step costs the cube
    assert refinement_spacing(2.5, scan((2.0, 2.0, 3.0))) == 2.0
    assert refinement_spacing(2.5, scan((2.2, 2.2, 2.2))) == 2.2
    assert refinement_spacing(2.5, scan((3.0, 3.0, 3.0))) == 2.5  # never coarser than the network's grid
