"""`slicerleap train mptpn` and `slicerleap segment-text` as a user runs them (real subprocesses, real workers):
a tiny MPTPN trained from a folder, one volume with a prompt on a slab, a folder with a prompt table."""
import numpy as np

from phantoms import blob_case
from slicerleap.io import read_volume, write_volume
from test_cli import OBLIQUE, cli


def test_train_mptpn_then_segment_text_one_volume_and_a_folder(tmp_path):
    for folder in ("images", "labels", "batch"):
        (tmp_path / folder).mkdir()
    for n in range(2):
        image, lesion = blob_case(n, shape=(12, 40, 40))
        write_volume(image, tmp_path / "images" / f"case{n}.nrrd")
        write_volume(lesion, tmp_path / "labels" / f"case{n}.nrrd")
    out = cli("train", "mptpn", "--images", str(tmp_path / "images"), "--labels", str(tmp_path / "labels"), "--out",
              str(tmp_path / "model"), "--id", "cli-mptpn@1.0.0", "--size", "64", "--iterations", "2", "--pretrain-iterations", "1",
              "--spacing", "2.0", timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "registered cli-mptpn@1.0.0" in out.stdout and (tmp_path / "model" / "model.safetensors").is_file()

    image, _ = blob_case(7, shape=(12, 40, 40), directions=OBLIQUE)
    source = write_volume(image, tmp_path / "scan.nrrd")
    out = cli("segment-text", "--input", str(source), "--output", str(tmp_path / "seg.nrrd"), "--model", "cli-mptpn@1.0.0",
              "--prompt", "one small round lesion in the upper left", "--slab", "-20", "-5", timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    seg = read_volume(tmp_path / "seg.nrrd")
    np.testing.assert_allclose(seg.ijk_to_ras, image.ijk_to_ras, atol=1e-6)
    assert seg.array.shape == image.array.shape and set(np.unique(seg.array)) <= {0, 1} and '"slices"' in out.stdout

    for n in range(2):
        write_volume(blob_case(10 + n, shape=(12, 40, 40))[0], tmp_path / "batch" / f"scan{n}.nrrd")
    (tmp_path / "prompts.csv").write_text("case,prompt,s1,s2\nscan0,one small round lesion in the centre,,\n"
                                          "scan1,two lesions near the midline,-10,0\n", encoding="utf-8")
    out = cli("segment-text", "--input", str(tmp_path / "batch"), "--output", str(tmp_path / "out"), "--prompts",
              str(tmp_path / "prompts.csv"), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scan0.nrrd", "scan1.nrrd"]

    refused = cli("segment", "--input", str(source), "--output", str(tmp_path / "x.nrrd"), "--model", "cli-mptpn@1.0.0")
    assert refused.returncode != 0 and "text prompt" in refused.stderr and "segment-text" in refused.stderr
    missing = cli("segment-text", "--input", str(source), "--output", str(tmp_path / "y.nrrd"))
    assert missing.returncode != 0 and "--prompt" in missing.stderr
