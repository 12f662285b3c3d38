"""The SKS label-efficiency benchmark end to end at toy size on the real-anatomy lesion cases: validation cases
select the kept weights, every run is recorded with its curve, and running the same command again resumes."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import sks_label_efficiency as bench  # noqa: E402


def run(monkeypatch, results):
    argv = ["sks_label_efficiency.py", "--seeds", "0", "--pixel-cases", "1", "--pool", "2", "--test", "1", "--val", "1",
            "--iterations", "4", "--coarse-iterations", "2", "--crop", "64", "--eval-every", "2", "--conv-norm", "batch",
            "--models", "U-Net", "SKS", "--results", str(results), "--save-models", str(results.parent / "models")]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    return json.loads(results.read_text(encoding="utf-8"))


# slow (about 2.5 min): the benchmark script's machinery, not the product (its resume logic also in
# test_teacher_student_benchmark_resume.py, the SKS trainers in test_sks.py); `pytest -m slow`
@pytest.mark.slow
def test_validation_selects_weights_and_a_second_run_resumes(tmp_path, monkeypatch):
    results = tmp_path / "results.json"
    first = run(monkeypatch, results)
    runs = {r["model"]: r for r in first["runs"]}
    assert set(runs) == {"U-Net", "SKS"}
    for r in runs.values():
        assert r["val_cases"] == 1 and [it for it, _ in r["val_curve"]] == [2, 4]
        assert abs(r["best_val_dice"] - max(d for _, d in r["val_curve"])) < 1e-4  # the curve is rounded
        assert r["best_iteration"] in (2, 4)
        assert all(0.0 <= r[k] <= 1.0 for k in ("dice", "jaccard", "precision", "recall"))
        found = r["lesions_found"]
        assert set(found) == {"hypo", "hyper"} and all(0 <= n <= total for n, total in found.values())
        assert sum(total for _, total in found.values()) >= 1  # the test case holds lesions
    assert runs["U-Net"]["conv_norm"] == runs["SKS"]["conv_norm"] == "batch"
    stage1 = first["stage1"]["0"]
    assert 0.0 <= stage1["test_slice_accuracy"] <= 1.0 and 0.0 < stage1["lesion_free_share"] < 1.0
    assert 0.0 <= stage1["test_slice_auc"] <= 1.0
    assert (tmp_path / "models" / "SKS_seed0_p1.safetensors").exists() and (tmp_path / "models" / "U-Net_seed0_p1.json").exists()
    assert run(monkeypatch, results)["runs"] == first["runs"]  # everything done: nothing trained again
    # a record written before a metric existed gets it from its saved weights, and nothing else changes
    older = json.loads(results.read_text(encoding="utf-8"))
    for r in older["runs"]:
        del r["lesions_found"]
    older["runs"][0]["dice"] += 0.5  # weights that no longer match their record are left alone
    results.write_text(json.dumps(older), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["sks_label_efficiency.py", "--pool", "2", "--test", "1", "--val", "1", "--rescore",
                                      "--results", str(results), "--save-models", str(tmp_path / "models")])
    bench.main()
    rescored = {r["model"]: r for r in json.loads(results.read_text(encoding="utf-8"))["runs"]}
    mismatched = older["runs"][0]["model"]
    assert "lesions_found" not in rescored[mismatched]
    other = next(m for m in rescored if m != mismatched)
    assert rescored[other] == {**next(r for r in older["runs"] if r["model"] == other), "lesions_found": runs[other]["lesions_found"]}


def test_processes_training_different_models_share_one_results_file(tmp_path):
    path = tmp_path / "results.json"
    unet = {"seed": 1, "pixel_cases": 8, "model": "U-Net", "dice": 0.1}
    sks = {"seed": 1, "pixel_cases": 8, "model": "SKS", "dice": 0.2}
    bench.save_run(path, unet, {})  # one process
    bench.save_run(path, sks, {"1": {"test_slice_accuracy": 0.9}})  # another, whose own results never held the U-Net
    bench.save_run(path, {**unet, "dice": 0.15}, {})  # a run written again replaces its record
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert sorted((r["model"], r["dice"]) for r in saved["runs"]) == [("SKS", 0.2), ("U-Net", 0.15)]
    assert saved["stage1"] == {"1": {"test_slice_accuracy": 0.9}}
    assert [f.name for f in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind
