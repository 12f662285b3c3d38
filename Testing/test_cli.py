"""The `slicerleap` command as a user runs it (real subprocesses, real worker)."""
import subprocess
import sys

import numpy as np
import SimpleITK as sitk

from phantoms import sphere_phantom
from slicerleap import Volume
from slicerleap.io import read_volume, write_volume

OBLIQUE = np.array([[0.0, -0.6, 0.8], [1.0, 0.0, 0.0], [0.0, 0.8, 0.6]])


def cli(*args, timeout=300):
    return subprocess.run(["slicerleap", *args], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout)


def test_help_and_info():
    out = cli("--help")
    assert out.returncode == 0 and "demo" in out.stdout and "segment" in out.stdout
    info = cli("info")
    assert info.returncode == 0, info.stderr
    assert "device: cpu" in info.stdout and "brain-tissue-unet@1.0.0" in info.stdout and "torch" in info.stdout


def test_segment_keeps_the_input_geometry_exactly(tmp_path):
    image = sphere_phantom(36, spacing=(1.6, 1.9, 2.7), directions=OBLIQUE)
    image.ijk_to_ras[:3, 0] *= -1  # mirrored grid too
    source = write_volume(image, tmp_path / "scan.nii.gz")
    out = cli("segment", "--input", str(source), "--output", str(tmp_path / "seg.nrrd"))
    assert out.returncode == 0, out.stderr
    seg = read_volume(tmp_path / "seg.nrrd")
    assert seg.array.shape == image.array.shape
    np.testing.assert_allclose(seg.ijk_to_ras, image.ijk_to_ras, atol=1e-6)
    assert set(np.unique(seg.array)) <= {0, 1, 2}
    assert "volume_ml" in out.stdout


def test_segment_folder_in_folder_out(tmp_path):
    (tmp_path / "in").mkdir()
    for n in range(2):
        write_volume(sphere_phantom(24, seed=n), tmp_path / "in" / f"case{n}.nrrd")
    out = cli("segment", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["case0.nrrd", "case0.nrrd.result.json", "case1.nrrd", "case1.nrrd.result.json"]


def test_superres_and_register_write_their_files(tmp_path):
    thick = write_volume(sphere_phantom(20, spacing=(1.0, 1.0, 3.0)), tmp_path / "thick.nrrd")
    out = cli("superres", "--input", str(thick), "--output", str(tmp_path / "fine.nii.gz"), "--method", "sinc", "--spacing", "1")
    assert out.returncode == 0, out.stderr
    np.testing.assert_allclose(read_volume(tmp_path / "fine.nii.gz").spacing, [1, 1, 1], atol=1e-5)

    fixed = write_volume(sphere_phantom(24, seed=1), tmp_path / "fixed.nrrd")
    moving = write_volume(sphere_phantom(24, seed=2, origin=(-28.0, -21.0, 11.0)), tmp_path / "moving.nrrd")
    out = cli("register", "--fixed", str(fixed), "--moving", str(moving), "--out-transform", str(tmp_path / "t.h5"),
              "--warped", str(tmp_path / "warped.nrrd"), "--method", "optimisation", "--iterations", "5", "--no-affine",
              "--working-spacing", "4")
    assert out.returncode == 0, out.stderr
    transform = sitk.ReadTransform(str(tmp_path / "t.h5"))
    assert transform.GetDimension() == 3
    warped = read_volume(tmp_path / "warped.nrrd")
    np.testing.assert_allclose(warped.ijk_to_ras, read_volume(fixed).ijk_to_ras, atol=1e-6)


def test_bad_inputs_get_clear_messages(tmp_path):
    four_d = sitk.Image([8, 8, 8, 3], sitk.sitkFloat32)
    sitk.WriteImage(four_d, str(tmp_path / "series.nii.gz"))
    out = cli("segment", "--input", str(tmp_path / "series.nii.gz"), "--output", str(tmp_path / "x.nrrd"))
    assert out.returncode == 2 and "4D" in out.stderr and "Fix:" in out.stderr
    out = cli("segment", "--input", str(tmp_path / "missing.nrrd"), "--output", str(tmp_path / "x.nrrd"))
    assert out.returncode == 2 and "does not exist" in out.stderr
    flat = write_volume(sphere_phantom(12).with_array(np.zeros((12, 12, 12), np.float32)), tmp_path / "flat.nrrd")
    out = cli("segment", "--input", str(flat), "--output", str(tmp_path / "x.nrrd"))
    assert out.returncode == 2 and "constant" in out.stderr
    out = cli("segment", "--input", str(flat), "--output", str(tmp_path / "x.nrrd"), "--model", "nope@1.0.0")
    assert out.returncode == 2 and "Unknown model" in out.stderr


def test_worker_entry_point_usage():
    out = subprocess.run([sys.executable, "-m", "slicerleap.worker"], capture_output=True, text=True, encoding="utf-8", errors="replace")
    assert out.returncode == 2 and "usage" in out.stderr


def test_superres_dmdip_with_a_second_contrast(tmp_path):
    thick = sphere_phantom(20, spacing=(1.0, 1.0, 3.0))
    first = write_volume(thick, tmp_path / "t1.nrrd")
    second = write_volume(thick.with_array(thick.array.max() - thick.array), tmp_path / "t2.nrrd")
    out = cli("superres", "--method", "dmdip", "--input", str(first), "--input2", str(second), "--iterations", "2",
              "--output", str(tmp_path / "t1_fine.nrrd"), "--output2", str(tmp_path / "t2_fine.nrrd"))
    assert out.returncode == 0, out.stderr
    for name in ("t1_fine.nrrd", "t2_fine.nrrd"):
        np.testing.assert_allclose(read_volume(tmp_path / name).spacing, [1, 1, 1], atol=1e-6)
    shifted = thick.with_array(thick.array)
    shifted.ijk_to_ras = thick.ijk_to_ras.copy()
    shifted.ijk_to_ras[0, 3] += 5.0
    write_volume(shifted, tmp_path / "moved.nrrd")
    out = cli("superres", "--method", "dmdip", "--input", str(first), "--input2", str(tmp_path / "moved.nrrd"),
              "--output", str(tmp_path / "x.nrrd"))
    assert out.returncode == 2 and "same voxel grid" in out.stderr and "Fix:" in out.stderr


def test_superres_tv_reconstruction_reproduces_kspace_truncated_slices(tmp_path):
    """`--method tv --degradation kspace`: the result on the 1 mm grid, and truncating its k-space along the
    slice axis gives back the measured slices."""
    import torch

    from slicerleap.enhancement.dmdip import kspace_truncate

    fine = sphere_phantom(24, spacing=(1.0, 1.0, 1.0))
    low = kspace_truncate(torch.from_numpy(np.moveaxis(fine.array, 0, -1).astype(np.float64)), 8)
    matrix = fine.ijk_to_ras @ np.diag([1.0, 1.0, 3.0, 1.0])
    matrix[:3, 3] += matrix[:3, 2] / 3.0  # slice centres at the centre of 3 fine pixels
    thick = Volume(np.ascontiguousarray(np.moveaxis(low.numpy(), -1, 0), dtype=np.float32), matrix)
    out = cli("superres", "--method", "tv", "--degradation", "kspace", "--iterations", "30", "--input",
              str(write_volume(thick, tmp_path / "thick.nrrd")), "--output", str(tmp_path / "fine.nrrd"))
    assert out.returncode == 0, out.stderr
    restored = read_volume(tmp_path / "fine.nrrd")
    np.testing.assert_allclose(restored.ijk_to_ras, fine.ijk_to_ras, atol=1e-6)
    again = kspace_truncate(torch.from_numpy(np.moveaxis(restored.array, 0, -1).astype(np.float64)), 8)
    np.testing.assert_allclose(np.moveaxis(again.numpy(), -1, 0), thick.array, atol=1e-3 * float(np.abs(thick.array).max()))


def test_train_a_registration_network_then_register_with_it(tmp_path):
    """`train registration` on two subjects with labelmaps registers a model in the catalog; `register
    --model` uses it (with NIO) and propagates a labelmap onto the fixed image's grid."""
    from phantoms import phantom_labels

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for n, origin in enumerate([(-30.0, -20.0, 10.0), (-27.0, -22.0, 12.0)]):
        image = sphere_phantom(28, seed=n, origin=origin)
        write_volume(image, tmp_path / "images" / f"case{n}.nrrd")
        write_volume(phantom_labels(image), tmp_path / "labels" / f"case{n}.nrrd")
    out = cli("train", "registration", "--images", str(tmp_path / "images"), "--labels", str(tmp_path / "labels"),
              "--out", str(tmp_path / "model"), "--id", "test-registration@1.0.0", "--iterations", "6", timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "registered test-registration@1.0.0" in out.stdout
    images, labels = tmp_path / "images", tmp_path / "labels"
    out = cli("register", "--fixed", str(images / "case0.nrrd"), "--moving", str(images / "case1.nrrd"), "--model",
              "test-registration@1.0.0", "--nio-iters", "2", "--out-transform", str(tmp_path / "t.h5"),
              "--moving-labels", str(labels / "case1.nrrd"), "--labels-out", str(tmp_path / "propagated.nrrd"), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    propagated, fixed = read_volume(tmp_path / "propagated.nrrd"), read_volume(images / "case0.nrrd")
    np.testing.assert_allclose(propagated.ijk_to_ras, fixed.ijk_to_ras, atol=1e-6)
    assert set(np.unique(propagated.array)) <= {0, 1, 2} and (propagated.array > 0).any()


def test_every_option_of_every_command_says_what_it_is():
    """`--help` is the CLI's manual: no option or argument without a help text (issue 33)."""
    import argparse

    from slicerleap.cli import build_parser

    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, path + [name])
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), ["slicerleap"])
    assert not missing, missing
