"""Thick-slice restoration on real anatomy: SR4ZCT vs linear, cubic B-spline and windowed-sinc
interpolation, all in one run.

Data: the MNI ICBM152 2009a T1 (1 mm isotropic brain MRI, nilearn wheel), cropped to the head's
bounding box. Thick slices are simulated along the axial (k) axis with SR4ZCT's own slice model: each
slice is the average over its thickness r (box profile), slices every d mm (overlap r - d). Every
method restores the 1 mm grid; PSNR and SSIM (3D, and mean 2D SSIM per orientation) are computed
against the original 1 mm volume over the head's bounding box.

    python benchmarks/superres_thick_slices.py [--iterations 300] [--budgets 50,100,200,400,800]
        [--stages cases,budget,big]   # stages run in that order; results of earlier runs are kept

Writes benchmarks/superres_results.json and benchmarks/superres_gain_vs_budget.png.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from slicerleap import Volume
from slicerleap.data import mni_t1
from slicerleap.enhancement.slice_profile import downsample_matrix
from slicerleap.enhancement.sr4zct import SR4ZCTConfig, linear_upsample, sr4zct
from slicerleap.transforms import resample_to_reference

HERE = Path(__file__).resolve().parent
CASES = [(2.0, 2.0), (3.0, 3.0), (4.0, 4.0), (2.0, 1.0), (3.0, 1.5), (4.0, 2.0)]  # (thickness, spacing) mm


def simulate_thick(hr: Volume, thickness: float, spacing: float) -> Volume:
    """Box-profile thick slices along k (the SR4ZCT degradation F_down with 16 points per slice)."""
    pixel = float(hr.spacing[2])
    down = downsample_matrix(hr.array.shape[0], pixel, thickness, spacing, points=16).astype(np.float32)
    array = np.tensordot(down, hr.array.astype(np.float32), axes=(1, 0))
    m = hr.ijk_to_ras.copy()
    k_dir = hr.ijk_to_ras[:3, 2] / pixel
    m[:3, 2] = k_dir * spacing
    m[:3, 3] = hr.ijk_to_ras[:3, 3] + k_dir * (thickness / 2.0 - pixel / 2.0)  # centre of slice 0
    return Volume(array, m, {"name": f"{thickness:g}/{spacing:g} mm"})


def head_crop(volume: Volume, margin: int = 4) -> Volume:
    nz = np.argwhere(volume.array > 0)
    lo = np.maximum(nz.min(0) - margin, 0)
    hi = np.minimum(nz.max(0) + margin + 1, volume.array.shape)
    m = volume.ijk_to_ras.copy()
    m[:3, 3] = (volume.ijk_to_ras @ [lo[2], lo[1], lo[0], 1])[:3]
    return Volume(volume.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32), m, dict(volume.metadata))


def metrics(truth: np.ndarray, test: np.ndarray) -> dict:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    n = min(truth.shape[0], test.shape[0])
    truth, test = truth[:n].astype(np.float64), test[:n].astype(np.float64)
    data_range = float(truth.max() - truth.min())
    out = {"psnr": peak_signal_noise_ratio(truth, test, data_range=data_range),
           "ssim3d": structural_similarity(truth, test, data_range=data_range)}
    for name, axis in (("axial", 0), ("coronal", 1), ("sagittal", 2)):
        t, s = np.moveaxis(truth, axis, 0), np.moveaxis(test, axis, 0)
        out[f"ssim_{name}"] = float(np.mean([structural_similarity(a, b, data_range=data_range) for a, b in zip(t[::2], s[::2])]))
    return {k: round(float(v), 4) for k, v in out.items()}


def run_case(hr: Volume, thickness: float, spacing: float, iterations: int, device) -> dict:
    thick = simulate_thick(hr, thickness, spacing)
    grid, _ = linear_upsample(thick, thickness)  # the 1 mm output grid every method fills
    assert np.allclose(grid.ijk_to_ras, hr.ijk_to_ras, atol=1e-6), "output grid must be the original 1 mm grid"
    truth = hr.array[: grid.array.shape[0]]
    rows = {}
    t = time.perf_counter()
    rows["linear (SR4ZCT F_up)"] = (grid.array, time.perf_counter() - t)
    for name, interpolator in (("cubic B-spline", "bspline"), ("windowed sinc", "sinc")):
        t = time.perf_counter()
        out = resample_to_reference(thick, grid, interpolator, extrapolate=True).array
        rows[name] = (out, time.perf_counter() - t)
    t = time.perf_counter()
    restored = sr4zct(thick, SR4ZCTConfig(thickness_mm=thickness, iterations=iterations), device)
    rows[f"SR4ZCT ({iterations} it)"] = (restored.array, time.perf_counter() - t)
    return {name: {**metrics(truth, out), "seconds": round(seconds, 2)} for name, (out, seconds) in rows.items()}


def gain_vs_budget(hr: Volume, budgets: list[int], device) -> list[dict]:
    thick = simulate_thick(hr, 4.0, 4.0)
    grid, _ = linear_upsample(thick)
    truth = hr.array[: grid.array.shape[0]]
    cubic = metrics(truth, resample_to_reference(thick, grid, "bspline", extrapolate=True).array)
    rows = []
    for budget in budgets:
        t = time.perf_counter()
        restored = sr4zct(thick, SR4ZCTConfig(iterations=budget), device)
        m = metrics(truth, restored.array)
        rows.append({"iterations": budget, "seconds": round(time.perf_counter() - t, 1), "psnr": m["psnr"], "ssim3d": m["ssim3d"],
                     "psnr_gain_over_cubic": round(m["psnr"] - cubic["psnr"], 3), "ssim_gain_over_cubic": round(m["ssim3d"] - cubic["ssim3d"], 4)})
        print(rows[-1], flush=True)
    return rows


def plot_budget(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot([r["seconds"] for r in rows], [r["psnr_gain_over_cubic"] for r in rows], "o-")
    for r in rows:
        ax.annotate(f"{r['iterations']} it", (r["seconds"], r["psnr_gain_over_cubic"]), fontsize=8, textcoords="offset points", xytext=(4, -10))
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("wall time on 2 CPU cores (s)")
    ax.set_ylabel("PSNR gain over cubic (dB)")
    ax.set_title("SR4ZCT, MNI T1, 4 mm slices -> 1 mm", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def big_volume_timing(iterations: int, device) -> dict:
    """Wall time for a CT-sized input: 512x512 in-plane, 100 thick slices (MNI T1 resampled in-plane to
    0.38 mm, 1.8 mm slices: real anatomy at CT size; speed depends on size, not content)."""
    from slicerleap.transforms import resample_to_spacing

    t1 = mni_t1()
    fine = resample_to_spacing(t1, [0.38, 0.38, 1.8], "linear")  # square pixels, >= 512 per in-plane axis, >= 100 slices
    k, j, i = fine.array.shape
    k0, j0, i0 = (k - 100) // 2, (j - 512) // 2, (i - 512) // 2
    m = fine.ijk_to_ras.copy()
    m[:3, 3] = (fine.ijk_to_ras @ [i0, j0, k0, 1])[:3]
    fine = Volume(fine.array[k0:k0 + 100, j0:j0 + 512, i0:i0 + 512], m, {"name": "MNI at CT size"})
    assert fine.array.shape == (100, 512, 512), fine.array.shape
    t = time.perf_counter()
    out = sr4zct(fine, SR4ZCTConfig(iterations=iterations), device)
    return {"input_shape_kji": list(fine.array.shape), "output_shape_kji": list(out.array.shape), "iterations": iterations,
            "seconds": round(time.perf_counter() - t, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--budgets", default="50,100,200,400,800")
    parser.add_argument("--stages", default="cases,budget,big")
    args = parser.parse_args()
    stages = args.stages.split(",")
    torch.manual_seed(0)
    device = torch.device("cpu")
    torch.set_num_threads(2)
    out_file = HERE / "superres_results.json"
    results = json.loads(out_file.read_text(encoding="utf-8")) if out_file.exists() else {}
    results["data"] = "MNI ICBM152 2009a T1, 1 mm, head bounding box; box-profile thick slices along k"
    hr = head_crop(mni_t1())
    print(f"high-resolution volume {hr.array.shape} (k, j, i) at 1 mm", flush=True)
    if "cases" in stages:
        results["cases"] = {}
        for thickness, spacing in CASES:
            key = f"{thickness:g}/{spacing:g}"
            results["cases"][key] = run_case(hr, thickness, spacing, args.iterations, device)
            print(key, json.dumps(results["cases"][key]), flush=True)
            out_file.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if "budget" in stages:
        results["gain_vs_budget"] = gain_vs_budget(hr, [int(b) for b in args.budgets.split(",")], device)
        plot_budget(results["gain_vs_budget"], HERE / "superres_gain_vs_budget.png")
        out_file.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if "big" in stages:
        results["big_volume"] = big_volume_timing(args.iterations, device)
        print(results["big_volume"], flush=True)
        out_file.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
