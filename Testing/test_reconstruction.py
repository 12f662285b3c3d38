"""MRI reconstruction from k-space: masks as fastMRI defines them, the file readers and what they refuse, the SigPy
baselines on k-space simulated from the real MNI T1, and the command from a file (and a folder) to a volume."""
import json
import subprocess

import numpy as np
import pytest

from slicerleap.batch import reconstruct_folder
from slicerleap.errors import BadInputError
from slicerleap.io import read_volume
from slicerleap.reconstruction import classical
from slicerleap.reconstruction.kspace import read_kspace
from slicerleap.reconstruction.masks import calibration_width, undersampling_mask
from slicerleap.reconstruction.simulate import simulate_kspace, write_fastmri_h5


@pytest.fixture(scope="module")
def mni_slices():
    from slicerleap.data.samples import mni_t1

    image = mni_t1().array[70:72, 20:212, 10:186].astype(np.float32)  # two axial slices, 192 x 176
    return image / image.max()


def psnr(truth, image):
    return 10 * np.log10(1.0 / np.mean((truth - image) ** 2))


@pytest.mark.parametrize("kind", ["equispaced", "random"])
@pytest.mark.parametrize("acceleration", [4, 8])
def test_masks_sample_the_centre_and_reach_the_acceleration(kind, acceleration):
    widths = [undersampling_mask(368, acceleration, kind, seed=s).sum() for s in range(20)]
    assert abs(368 / np.mean(widths) - acceleration) < 0.1 * acceleration
    mask = undersampling_mask(368, acceleration, kind, seed=3)
    low = round(368 * (0.08 if acceleration == 4 else 0.04))
    assert calibration_width(mask) >= low - 1
    assert np.array_equal(undersampling_mask(368, acceleration, kind, seed=3), mask)  # reproducible
    assert undersampling_mask(100, 1, kind).all()
    with pytest.raises(BadInputError, match="centre"):
        undersampling_mask(64, 8, kind, center_fraction=0.2)


def test_fully_sampled_zero_filled_is_the_anatomy(mni_slices):
    kspace = simulate_kspace(mni_slices[:1], n_coils=8, snr=1e6)
    np.testing.assert_allclose(classical.zero_filled(kspace[0]), mni_slices[0], atol=1e-3)


def test_sense_and_cs_beat_zero_filled_at_4x_and_8x(mni_slices):
    kspace = simulate_kspace(mni_slices[1:], n_coils=8, snr=40, seed=1)[0]
    truth = mni_slices[1]
    from slicerleap.tasks.reconstruct import reconstruct_slice

    for acceleration in (4, 8):
        mask = undersampling_mask(kspace.shape[-1], acceleration, "equispaced", seed=2)
        scores = {m: psnr(truth, reconstruct_slice(kspace, mask, m, {"lamda": lam, "iterations": 30}))
                  for m, lam in (("zero-filled", 0), ("sense", 0.01), ("cs", 0.001))}
        assert scores["sense"] > scores["zero-filled"] + 1 and scores["cs"] > scores["zero-filled"] + 1, (acceleration, scores)


def test_readers_take_the_fastmri_layout_and_npy_and_refuse_the_rest(tmp_path, mni_slices):
    kspace = simulate_kspace(mni_slices, n_coils=4, snr=40)
    write_fastmri_h5(tmp_path / "multi.h5", kspace, (0.9, 1.1, 3.0), mask=np.ones(kspace.shape[-1], bool))
    read = read_kspace(tmp_path / "multi.h5")
    assert read.multicoil and read.data.shape == kspace.shape and read.mask.all()
    np.testing.assert_allclose(read.spacing_mm, (0.9, 1.1, 3.0), rtol=1e-5)
    assert read.recon_size == kspace.shape[-2:]
    import h5py

    with h5py.File(tmp_path / "single.h5", "w") as handle:
        handle["kspace"] = kspace[:, 0]
    single = read_kspace(tmp_path / "single.h5")
    assert not single.multicoil and single.data.shape == (2, 1) + kspace.shape[-2:] and single.spacing_mm is None
    np.save(tmp_path / "scan.npy", kspace)
    (tmp_path / "scan.json").write_text(json.dumps({"spacing_mm": [1, 1, 2]}))
    assert read_kspace(tmp_path / "scan.npy").spacing_mm == (1.0, 1.0, 2.0)

    bad = {"real.npy": np.abs(kspace), "rank2.npy": kspace[0, 0], "rank5.npy": kspace[None]}
    for name, array in bad.items():
        np.save(tmp_path / name, array)
    with pytest.raises(BadInputError, match="real-valued"):
        read_kspace(tmp_path / "real.npy")
    for name in ("rank2.npy", "rank5.npy"):
        with pytest.raises(BadInputError, match="dimensions"):
            read_kspace(tmp_path / name)
    nan = kspace.copy()
    nan[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(BadInputError, match="NaN"):
        read_kspace(tmp_path / "nan.npy")
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["reconstruction_rss"] = np.abs(kspace[:, 0])
    with pytest.raises(BadInputError, match="no dataset 'kspace'"):
        read_kspace(tmp_path / "other.h5")
    write_fastmri_h5(tmp_path / "badmask.h5", kspace, (1, 1, 1), mask=np.ones(10, bool))
    with pytest.raises(BadInputError, match="mask has 10 lines"):
        read_kspace(tmp_path / "badmask.h5")
    (tmp_path / "scan.json").write_text(json.dumps({"spacing_mm": [1, -1, 2]}))
    with pytest.raises(BadInputError, match="positive"):
        read_kspace(tmp_path / "scan.npy")
    (tmp_path / "image.nrrd").write_text("x")
    with pytest.raises(BadInputError, match="not a k-space file"):
        read_kspace(tmp_path / "image.nrrd")


def cli(*args):
    return subprocess.run(["slicerleap", "reconstruct", *args], capture_output=True, text=True, timeout=600)


def test_the_command_writes_a_volume_with_the_files_geometry_and_refuses_undersampling_twice(tmp_path, mni_slices):
    kspace = simulate_kspace(mni_slices, n_coils=4, snr=40)
    write_fastmri_h5(tmp_path / "scan.h5", kspace, (0.9, 1.1, 3.0))
    done = cli("--kspace", str(tmp_path / "scan.h5"), "--output", str(tmp_path / "recon.nii.gz"), "--method", "cs",
               "--acceleration", "4", "--mask", "random", "--iterations", "10")
    assert done.returncode == 0, done.stderr[-2000:]
    volume = read_volume(tmp_path / "recon.nii.gz")
    assert volume.array.shape == mni_slices.shape
    np.testing.assert_allclose(volume.spacing, (0.9, 1.1, 3.0), rtol=1e-5)
    assert psnr(mni_slices, volume.array) > 22
    assert "ISMRMRD header" in done.stdout and '"coils": 4' in done.stdout

    # a prospectively undersampled file: its mask is used, and undersampling it again is refused
    mask = undersampling_mask(kspace.shape[-1], 4, "equispaced")
    write_fastmri_h5(tmp_path / "under.h5", kspace * mask, (1, 1, 1), mask=mask)
    done = cli("--kspace", str(tmp_path / "under.h5"), "--output", str(tmp_path / "zf.nrrd"), "--method", "zero-filled")
    assert done.returncode == 0 and f'"lines": {mask.sum()}' in done.stdout, done.stderr[-2000:]
    refused = cli("--kspace", str(tmp_path / "under.h5"), "--output", str(tmp_path / "again.nrrd"), "--mask", "random")
    assert refused.returncode == 2 and "already undersampled" in refused.stderr

    # single-coil .npy with its JSON; no header and no JSON: 1 mm, said so
    np.save(tmp_path / "one.npy", kspace[:, 0])
    done = cli("--kspace", str(tmp_path / "one.npy"), "--output", str(tmp_path / "one.nrrd"), "--method", "zero-filled")
    assert done.returncode == 0 and "1 mm isotropic" in done.stdout, done.stderr[-2000:]


def test_a_folder_of_kspace_files_from_the_python_api(tmp_path, mni_slices):
    (tmp_path / "in").mkdir()
    for n in range(2):
        write_fastmri_h5(tmp_path / "in" / f"scan{n}.h5", simulate_kspace(mni_slices[:1], n_coils=4, seed=n), (1, 1, 3))
    records = reconstruct_folder(tmp_path / "in", tmp_path / "out", method="zero-filled", acceleration=4.0, mask="equispaced")
    assert [r.status for r in records] == ["done", "done"]
    assert read_volume(tmp_path / "out" / "scan1.nrrd").metadata.get("name") == "scan1 (zero-filled)"


def test_a_varnet_trained_from_the_command_line_reconstructs_a_file(tmp_path, mni_slices):
    """`train recon` on fully sampled files (one held out for validation), then `reconstruct --method varnet` with it:
    the pipeline, not the quality (a few steps; benchmarks/RESULTS.md measures quality)."""
    (tmp_path / "train").mkdir()
    small = mni_slices[:, ::3, ::3]  # 64 x 59
    for n in range(2):
        write_fastmri_h5(tmp_path / "train" / f"subject{n}.h5", simulate_kspace(small, n_coils=4, seed=n), (3, 3, 3))
    trained = subprocess.run(["slicerleap", "train", "recon", "--data", str(tmp_path / "train"), "--out", str(tmp_path / "model"),
                              "--id", "test-varnet@1.0.0", "--iterations", "4", "--cascades", "1"], capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    assert card["task"] == "reconstruction" and card["modality"] == "MR" and "1 other file" in card["training_data"]
    write_fastmri_h5(tmp_path / "scan.h5", simulate_kspace(small, n_coils=4, seed=5), (3, 3, 3))
    done = cli("--kspace", str(tmp_path / "scan.h5"), "--output", str(tmp_path / "varnet.nrrd"), "--method", "varnet",
               "--model", "test-varnet@1.0.0", "--acceleration", "4", "--mask", "equispaced")
    assert done.returncode == 0, done.stderr[-3000:]
    volume = read_volume(tmp_path / "varnet.nrrd")
    assert volume.array.shape == small.shape and np.isfinite(volume.array).all() and volume.array.max() > 0
    refused = cli("--kspace", str(tmp_path / "scan.h5"), "--output", str(tmp_path / "x.nrrd"), "--method", "varnet",
                  "--model", "brain-tissue-unet@1.0.0")
    assert refused.returncode == 2 and "reconstruction model" in refused.stderr


def test_data_consistency_keeps_the_measured_lines_and_gives_back_a_fully_sampled_input(mni_slices):
    """MFormer's hard data consistency: measured lines win, the rest is the prediction; fully sampled k-space passes
    through a consistent cascade unchanged (with sensitivities normalised to unit RSS, as ESPIRiT's and ours are)."""
    import torch

    from slicerleap.reconstruction.data_consistency import consistent_image, data_consistency, kspace_to_image
    from slicerleap.reconstruction.simulate import coil_maps
    from slicerleap.reconstruction.varnet import as_network_input

    kspace = simulate_kspace(mni_slices[:1, ::2, ::2], n_coils=4, snr=1e6)[0]
    mask = undersampling_mask(kspace.shape[-1], 4, "equispaced")
    measured, m = as_network_input(kspace * mask, mask, 1.0, "cpu")
    predicted = torch.randn_like(measured)
    mixed = data_consistency(predicted, measured, m)
    assert torch.equal(mixed[..., mask, :], measured[..., mask, :]) and torch.equal(mixed[..., ~mask, :], predicted[..., ~mask, :])

    full, everything = as_network_input(kspace, np.ones(kspace.shape[-1], bool), 1.0, "cpu")
    maps = torch.view_as_real(torch.as_tensor(coil_maps(4, kspace.shape[-2:])))[None]
    truth = kspace_to_image(full, maps)
    wrong = torch.randn_like(truth)  # whatever the network predicted, a fully sampled measurement overrides it
    np.testing.assert_allclose(consistent_image(wrong, full, everything, maps).numpy(), truth.numpy(), atol=1e-5)
