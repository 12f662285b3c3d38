"""Bad input through the `slicerleap` command, as a user runs it: every case is refused with exit 2 and a message
naming the problem and the fix; the user's files keep their bytes; no partial output and no temporary job folder
(a copy of the scan) is left behind. One table: add a row for every new way a user can get it wrong."""
import gzip
import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from phantoms import phantom_labels, sphere_phantom
from slicerleap.io import write_volume


def _file(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _scan(folder: Path, name="scan.nii.gz", seed=0, **kw) -> str:
    return str(write_volume(sphere_phantom(24, seed=seed, **kw), folder / name))


def _sitk(folder: Path, name: str, array, vector=False) -> str:
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=vector), str(folder / name))
    return str(folder / name)


def _nan_nifti(folder, value):
    image = sitk.ReadImage(_scan(folder, "tmp.nii.gz"))
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array[5, 5, 5] = value
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    sitk.WriteImage(out, str(folder / "scan.nii.gz"))
    os.remove(folder / "tmp.nii.gz")
    return str(folder / "scan.nii.gz")


def _nan_nrrd(folder):
    volume = sphere_phantom(24)
    volume.array = volume.array.astype(np.float32)
    volume.array[3, 4, 5] = np.nan
    return str(write_volume(volume, folder / "scan.nrrd"))


def _cut(path: str, fraction=0.5) -> str:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * fraction)])
    return path


def _nifti_uncompressed_cut(folder):
    return _cut(_scan(folder, "scan.nii"))


def _bad_crc(folder):
    path = Path(_scan(folder))
    raw = gzip.decompress(path.read_bytes())
    packed = bytearray(gzip.compress(raw))
    packed[-6] ^= 0xFF  # the stored CRC-32 no longer matches the data
    path.write_bytes(bytes(packed))
    return str(path)


def _far_apart(folder):
    return [_scan(folder, "fixed.nrrd", seed=1), _scan(folder, "moving.nrrd", seed=2, origin=(900.0, 900.0, 900.0))]


def _labels(folder):
    return str(write_volume(phantom_labels(sphere_phantom(24, seed=2)), folder / "labels.nrrd"))


def _card(folder, **card):
    from safetensors.torch import save_file
    import torch

    save_file({"w": torch.zeros(2)}, str(folder / "w.safetensors"))
    (folder / "card.json").write_text(json.dumps(card) if card else "{ not json", encoding="utf-8")
    return str(folder / "w.safetensors"), str(folder / "card.json")


def _user_card(model_id="mine@1.0.0"):
    return {"id": model_id, "task": "segmentation", "title": "t", "modality": "MR", "module": "SKSSegmentation",
            "architecture": {"name": "unet"}, "labels": [{"value": 1, "name": "Lesion"}], "license": "Apache-2.0",
            "training_data": "none"}


def _bundled_card(model_id):
    """A valid card with a bundled model's id, claiming to be the default: it must not replace that model."""
    from slicerleap.resources import resources_dir

    cards = json.loads((resources_dir() / "models" / "catalog.json").read_text(encoding="utf-8"))["models"]
    card = next(c for c in cards if c["id"] == model_id)
    return {**{k: v for k, v in card.items() if k not in ("sha256", "file")}, "default": True}


def _dirs(folder, *names):
    for name in names:
        (folder / name).mkdir()
    return [str(folder / n) for n in names]


# (case id, setup(folder) -> argv, expected exit code, text the message must contain)
CASES = [
    # -- inputs that cannot be read or are not a 3D scalar scan
    ("missing input", lambda d: ["segment", "--input", str(d / "nope.nii.gz"), "--output", str(d / "o.nrrd")], 2, "does not exist"),
    ("empty file", lambda d: ["segment", "--input", _file(d / "scan.nii.gz", b""),
                              "--output", str(d / "o.nrrd")], 2, "scan.nii.gz"),
    ("text file as nrrd", lambda d: ["segment", "--input", _file(d / "scan.nrrd", b"hello"),
                                     "--output", str(d / "o.nrrd")], 2, "Could not read"),
    ("2D image", lambda d: ["register", "--fixed", _sitk(d, "slice.nrrd", np.random.rand(32, 32).astype(np.float32)),
                            "--moving", _scan(d), "--out-transform", str(d / "t.h5"), "--method", "optimisation"], 2, "too small"),
    ("4D image", lambda d: ["segment", "--input", _sitk(d, "series.nii.gz", np.random.rand(3, 12, 12, 12).astype(np.float32)),
                            "--output", str(d / "o.nrrd")], 2, "4D"),
    ("RGB image", lambda d: ["segment", "--input", _sitk(d, "rgb.nrrd", np.random.randint(0, 255, (12, 12, 12, 3), np.uint8), True),
                             "--output", str(d / "o.nrrd")], 2, "components"),
    ("constant image", lambda d: ["segment", "--input", _sitk(d, "flat.nrrd", np.full((16, 16, 16), 7, np.int16)),
                                  "--output", str(d / "o.nrrd")], 2, "constant"),
    ("NaN in NRRD", lambda d: ["segment", "--input", _nan_nrrd(d), "--output", str(d / "o.nrrd")], 2, "NaN"),
    ("NaN in NIfTI", lambda d: ["segment", "--input", _nan_nifti(d, np.nan), "--output", str(d / "o.nrrd")], 2, "NaN"),
    ("Inf in NIfTI", lambda d: ["segment", "--input", _nan_nifti(d, np.inf), "--output", str(d / "o.nrrd")], 2, "infinite"),
    ("truncated nii.gz", lambda d: ["segment", "--input", _cut(_scan(d)), "--output", str(d / "o.nrrd")], 2, "truncated"),
    ("truncated nii", lambda d: ["segment", "--input", _nifti_uncompressed_cut(d), "--output", str(d / "o.nrrd")], 2, "truncated"),
    ("gzip CRC wrong", lambda d: ["segment", "--input", _bad_crc(d), "--output", str(d / "o.nrrd")], 2, "corrupt"),
    ("truncated nrrd", lambda d: ["segment", "--input", _cut(_scan(d, "scan.nrrd"), 0.7), "--output", str(d / "o.nrrd")], 2,
     "Could not read"),
    ("header promises 238 GiB", lambda d: ["segment", "--input", _huge_header(d), "--output", str(d / "o.nrrd")], 2, "GiB"),
    ("absurdly small spacing", lambda d: ["segment", "--input", _scan(d, spacing=(1e-4, 1e-4, 1e-4)), "--output", str(d / "o.nrrd")],
     2, "implausible voxel spacing"),
    ("absurdly large spacing", lambda d: ["segment", "--input", _scan(d, spacing=(500.0, 500.0, 500.0)), "--output", str(d / "o.nrrd")],
     2, "implausible voxel spacing"),
    ("empty folder", lambda d: ["segment", "--input", _dirs(d, "in")[0], "--output", str(d / "o.nrrd")], 2, "no DICOM series"),
    # -- outputs that would destroy an input or cannot be written
    ("output is the input", lambda d: ["segment", "--input", _scan(d), "--output", str(d / "scan.nii.gz")], 2, "destroy the scan"),
    ("output is the input via symlink", lambda d: ["segment", "--input", _scan(d), "--output", _link(d)], 2, "destroy the scan"),
    ("output is the input via relative path", lambda d: ["segment", "--input", _scan(d), "--output", str(d / "." / ".." / d.name / "scan.nii.gz")],
     2, "destroy the scan"),
    ("output suffix .png", lambda d: ["segment", "--input", _scan(d), "--output", str(d / "seg.png")], 2, ".png"),
    ("output suffix .xyz", lambda d: ["segment", "--input", _scan(d), "--output", str(d / "seg.xyz")], 2, ".xyz"),
    ("output folder not writable", lambda d: ["segment", "--input", _scan(d), "--output", "/proc/seg.nrrd"], 2, "cannot be written"),
    ("output below a file", lambda d: ["segment", "--input", _scan(d), "--output", str(d / "scan.nii.gz" / "seg.nrrd")], 2,
     "cannot be written"),
    ("probability over the input", lambda d: ["segment", "--input", _scan(d), "--output", str(d / "o.nrrd"),
                                              "--probability", str(d / "scan.nii.gz")], 2, "destroy the scan"),
    ("folder out is folder in", lambda d: ["segment", "--input", _folder_of_scans(d), "--output", str(d / "in")], 2,
     "would destroy the scan"),
    ("text prompts: folder out is folder in", lambda d: ["segment-text", "--input", _folder_of_scans(d), "--output", str(d / "in"),
                                                          "--prompts", _file(d / "prompts.csv", b"case,prompt\na,one small round lesion\n")],
     2, "would destroy the scan"),
    ("superres output is the input", lambda d: ["superres", "--input", _scan(d), "--output", str(d / "scan.nii.gz"), "--method", "cubic"],
     2, "destroy the scan"),
    ("superres output2 without input2", lambda d: ["superres", "--input", _scan(d), "--output", str(d / "o.nrrd"),
                                                   "--output2", str(d / "o2.nrrd")], 2, "--input2"),
    ("superres input2 with cubic", lambda d: ["superres", "--input", _scan(d), "--output", str(d / "o.nrrd"), "--method", "cubic",
                                              "--input2", _scan(d, "t2.nii.gz", seed=3)], 2, "dmdip"),
    ("superres zero spacing", lambda d: ["superres", "--input", _scan(d), "--output", str(d / "o.nrrd"), "--method", "cubic",
                                         "--spacing", "0"], 2, "positive"),
    ("register warped is the moving", lambda d: ["register", "--fixed", _scan(d, "f.nrrd", seed=1), "--moving", _scan(d, "m.nrrd", seed=2),
                                                 "--out-transform", str(d / "t.h5"), "--warped", str(d / "m.nrrd")], 2, "destroy the scan"),
    ("register transform is the fixed", lambda d: ["register", "--fixed", _scan(d, "f.nrrd", seed=1), "--moving", _scan(d, "m.nrrd", seed=2),
                                                   "--out-transform", str(d / "f.nrrd")], 2, "destroy the scan"),
    ("register labels-out is the labels", lambda d: ["register", "--fixed", _scan(d, "f.nrrd", seed=1), "--moving", _scan(d, "m.nrrd", seed=2),
                                                     "--out-transform", str(d / "t.h5"), "--moving-labels", _labels(d),
                                                     "--labels-out", str(d / "labels.nrrd")], 2, "destroy the scan"),
    ("register two outputs one file", lambda d: ["register", "--fixed", _scan(d, "f.nrrd", seed=1), "--moving", _scan(d, "m.nrrd", seed=2),
                                                 "--out-transform", str(d / "t.h5"), "--warped", str(d / "w.nrrd"),
                                                 "--jacobian", str(d / "w.nrrd")], 2, "same file"),
    ("register transform suffix .png", lambda d: ["register", "--fixed", _scan(d, "f.nrrd", seed=1), "--moving", _scan(d, "m.nrrd", seed=2),
                                                  "--out-transform", str(d / "t.png")], 2, ".png"),
    ("register labels-out without labels", lambda d: ["register", "--fixed", _scan(d, "f.nrrd", seed=1), "--moving", _scan(d, "m.nrrd", seed=2),
                                                      "--out-transform", str(d / "t.h5"), "--labels-out", str(d / "l.nrrd")], 2,
     "--moving-labels"),
    ("register zero working spacing", lambda d: ["register", "--fixed", _scan(d, "f.nrrd", seed=1), "--moving", _scan(d, "m.nrrd", seed=2),
                                                 "--out-transform", str(d / "t.h5"), "--method", "optimisation", "--working-spacing", "0"],
     2, "working_spacing_mm (--working-spacing) must be at least 0.5 mm"),
    ("register negative working spacing", lambda d: ["register", "--fixed", _scan(d, "f.nrrd", seed=1), "--moving", _scan(d, "m.nrrd", seed=2),
                                                     "--out-transform", str(d / "t.h5"), "--method", "optimisation",
                                                     "--working-spacing", "-2"], 2, "must be at least 0.5 mm"),
    ("register images far apart", lambda d: ["register", "--fixed", _far_apart(d)[0], "--moving", str(d / "moving.nrrd"),
                                             "--out-transform", str(d / "t.h5"), "--method", "optimisation", "--no-affine",
                                             "--iterations", "2"], 2, "do not overlap"),
    ("register negative refinement", lambda d: ["register", "--fixed", _scan(d, "f.nrrd", seed=1), "--moving", _scan(d, "m.nrrd", seed=2),
                                                "--out-transform", str(d / "t.h5"), "--method", "network", "--refine-iters", "-1",
                                                "--no-affine"], 2, "must be at least 0"),
    # -- models
    ("unknown model", lambda d: ["segment", "--input", _scan(d), "--output", str(d / "o.nrrd"), "--model", "nope@1.0.0"], 2, "Unknown model"),
    ("registration model to segment", lambda d: ["segment", "--input", _scan(d), "--output", str(d / "o.nrrd"),
                                                 "--model", "brain-tm-dca@1.0.0"], 2, "registration"),
    ("segmentation model to register", lambda d: ["register", "--fixed", _scan(d, "f.nrrd", seed=1), "--moving", _scan(d, "m.nrrd", seed=2),
                                                  "--out-transform", str(d / "t.h5"), "--method", "network",
                                                  "--model", "brain-lesion-sks@1.0.0", "--no-affine"], 2, "segmentation"),
    ("no CUDA GPU", lambda d: ["segment", "--input", _scan(d), "--output", str(d / "o.nrrd"), "--device", "cuda"], 2, "CUDA"),
    ("import pickled weights", lambda d: ["models", "import", _file(d / "w.pt", b"x"),
                                          _card(d, **_user_card())[1]], 2, "safetensors"),
    ("import missing weights", lambda d: ["models", "import", str(d / "nope.safetensors"), _card(d, **_user_card())[1]], 2,
     "does not exist"),
    ("import broken card JSON", lambda d: ["models", "import", *_card(d)], 2, "card.json"),
    ("import card without id", lambda d: ["models", "import", *_card(d, **{k: v for k, v in _user_card().items() if k != "id"})], 2, "id"),
    ("import card shadowing a bundled model", lambda d: ["models", "import", *_card(d, **_bundled_card("brain-lesion-sks@1.0.0"))], 2,
     "brain-lesion-sks@1.0.0"),
    ("train from a missing folder", lambda d: ["train", "sks", "--images", str(d / "nope"), "--out", str(d / "model")], 2, "not a folder"),
]


def _huge_header(folder):
    (folder / "huge.raw").write_bytes(b"\0" * 1000)
    (folder / "huge.nhdr").write_text("NRRD0004\ntype: float\ndimension: 3\nsizes: 4000 4000 4000\nspacings: 1 1 1\n"
                                      "encoding: raw\nendian: little\ndata file: huge.raw\n\n", encoding="ascii")
    return str(folder / "huge.nhdr")


def _link(folder):
    (folder / "link.nii.gz").symlink_to(folder / "scan.nii.gz")
    return str(folder / "link.nii.gz")


def _folder_of_scans(folder):
    (folder / "in").mkdir()
    _scan(folder / "in", "a.nii.gz")
    return str(folder / "in")


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*")) if not p.is_symlink() or p.exists()}


def test_the_table_has_the_cases_the_issue_asks_for():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


def run_case(tmp_path: Path, setup) -> dict:
    """Run one case as a user would; what came back and what was left behind."""
    case, temp, home = tmp_path / "case", tmp_path / "tmp", tmp_path / "home"
    for folder in (case, temp, home):
        folder.mkdir()
    argv = setup(case)
    before = _snapshot(case)
    env = {**os.environ, "TMPDIR": str(temp), "SLICERLEAP_HOME": str(home)}
    done = subprocess.run(["slicerleap", *argv], capture_output=True, text=True, encoding="utf-8", errors="replace",
                          env=env, timeout=300, cwd=case)
    catalog = home / "models" / "catalog.json"
    return {"exit_code": done.returncode, "stderr": done.stderr, "message": (done.stderr.strip().splitlines() or [""])[-1],
            "files_unchanged": _snapshot(case) == before,
            "temp_left": [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")],  # torch's cache: no data
            "catalog": catalog.read_text() if catalog.exists() else ""}


@pytest.mark.parametrize("name,setup,code,text", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(tmp_path, name, setup, code, text):
    out = run_case(tmp_path, setup)
    assert out["exit_code"] == code, (out["exit_code"], out["stderr"][-1500:])
    assert "Traceback" not in out["stderr"], out["stderr"][-1500:]
    message = out["message"]
    assert message.startswith("error:") and "Fix:" in message, message
    assert text in message, message
    assert out["files_unchanged"], "the user's files changed, or a partial output was left"
    assert out["temp_left"] == [], f"left in the temp folder: {out['temp_left']}"
    assert "mine@" not in out["catalog"] and "brain-lesion-sks" not in out["catalog"]
