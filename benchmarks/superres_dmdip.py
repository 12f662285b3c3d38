"""dmDIP (dual-modal deep image prior) and single-modal DIP against the interpolators, on a slab of
coronal slices of real anatomy.

Data: MNI ICBM152 2009a T1 (nilearn wheel), head bounding box, the central `--slices` coronal slices.
Second contrast: no real T2w ships offline, so a T2w-like image is *synthesised* from the template's
own grey/white-matter probability maps (CSF bright, GM mid, WM dark) — real anatomy, synthetic contrast.
Thick slices are simulated along k by (a) a box slice profile (as SR4ZCT and real 2D acquisitions) and
(b) k-space truncation (the dmDIP paper's degradation). Per-scan optimisation is expensive on a CPU
(the paper: 16 min per slice pair on a GPU), hence a slab, not the whole head.

Rows: the interpolators; "cubic + data consistency" (cubic B-spline made to reproduce the measured slices
exactly, the projection every dmDIP output ends with: what the projection alone gives); "TV reconstruction"
(the engine's method "tv": the TV term without a network, a classical baseline for it, 200 iterations); DIP
and dmDIP with the CPU default (the cubic upsampling as the prior's input, residual heads, TV on the
data-consistent output); dmDIP without the TV term; dmDIP with the paper's pure-noise input and objective.
Each DIP and TV uses the degradation model that made the data (box -> slice-profile, k-space -> kspace), as a
user states it in the panel.

    python benchmarks/superres_dmdip.py [--slices 8] [--iterations 120] [--channels 16]
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
from slicerleap.data.samples import mni_tissue_probabilities
from slicerleap.enhancement.dmdip import DMDIPConfig, KSpaceTruncation, SliceProfile, dmdip, kspace_truncate
from slicerleap.enhancement.tv_reconstruction import tv_reconstruct
from slicerleap.enhancement.sr4zct import linear_upsample
from slicerleap.transforms import resample_to_reference

from superres_thick_slices import head_crop, metrics, simulate_thick

HERE = Path(__file__).resolve().parent


def synthetic_t2(t1: Volume) -> Volume:
    gm, wm = (v.array for v in mni_tissue_probabilities())
    csf = np.clip((t1.array > 0) - gm - wm, 0, 1)
    return t1.with_array((100 * (0.35 * wm + 0.6 * gm + 1.0 * csf)).astype(np.float32), name="synthetic T2w")


def slab(volume: Volume, j0: int, n: int) -> Volume:
    m = volume.ijk_to_ras.copy()
    m[:3, 3] = (volume.ijk_to_ras @ [0, j0, 0, 1])[:3]
    return Volume(np.ascontiguousarray(volume.array[:, j0:j0 + n, :]), m, dict(volume.metadata))


def kspace_thick(volume: Volume, factor: int) -> Volume:
    """Thick slices by keeping the central 1/factor of k-space along k (dmDIP's degradation)."""
    n_high = volume.array.shape[0] // factor * factor
    x = torch.from_numpy(np.moveaxis(volume.array[:n_high], 0, -1).astype(np.float64))
    low = np.moveaxis(kspace_truncate(x, n_high // factor).numpy(), -1, 0).astype(np.float32)
    pixel = float(volume.spacing[2])
    m = volume.ijk_to_ras.copy()
    k_dir = volume.ijk_to_ras[:3, 2] / pixel
    m[:3, 2] = k_dir * pixel * factor
    m[:3, 3] = volume.ijk_to_ras[:3, 3] + k_dir * (factor - 1) * pixel / 2.0
    return Volume(low, m)


ROWS = ("linear", "cubic", "sinc", "cubic + data consistency", "TV reconstruction", "DIP (T1 only)",
        "dmDIP (T1 + T2w)", "dmDIP without TV (T1 + T2w)", "dmDIP, paper's noise input and objective")
TV_WEIGHT = DMDIPConfig().tv_weight
TV_ITERATIONS = 200


def _thick_last(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, 0, -1), dtype=np.float32))


def consistent_cubic(cubic: np.ndarray, thick: np.ndarray, operator) -> np.ndarray:
    """Cubic interpolation made to reproduce the measured slices: the projection every DIP output ends with."""
    return np.moveaxis(operator.consistent(_thick_last(cubic), _thick_last(thick)).numpy(), -1, 0)


CASES = [("box", 2, 2), ("box", 3, 3), ("box", 4, 4), ("box", 4, 2), ("kspace", 2, 2), ("kspace", 4, 4)]


def print_table(results: dict) -> None:
    print("| degradation | method | PSNR (dB) | SSIM 3D | SSIM axial | SSIM coronal | SSIM sagittal | wall time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for case, rows in results["cases"].items():
        for method, m in rows.items():
            print(f"| {case} | {method} | {m['psnr']:.2f} | {m['ssim3d']:.4f} | {m['ssim_axial']:.4f} | {m['ssim_coronal']:.4f} | "
                  f"{m['ssim_sagittal']:.4f} | {m.get('seconds', '')} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=8)  # >= 7: the 3D SSIM window
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--table", action="store_true", help="print the saved results as a Markdown table and exit")
    args = parser.parse_args()
    if args.table:
        print_table(json.loads((HERE / "superres_dmdip_results.json").read_text(encoding="utf-8")))
        return
    torch.set_num_threads(2)
    t1_full = mni_t1()
    t1 = head_crop(t1_full)
    t2 = resample_to_reference(synthetic_t2(t1_full), t1, "nearest")  # same grid: an exact crop
    j0 = t1.array.shape[1] // 2 - args.slices // 2
    hr1, hr2 = slab(t1, j0, args.slices), slab(t2, j0, args.slices)
    results = {"data": f"MNI T1 + synthetic T2w, {args.slices} central coronal slices", "iterations": args.iterations,
               "channels": args.channels, "cases": {}}
    saved = HERE / "superres_dmdip_results.json"
    if saved.exists():  # resumable: keep the cases already measured with the same settings
        previous = json.loads(saved.read_text(encoding="utf-8"))
        if all(previous.get(k) == results[k] for k in ("data", "iterations", "channels")):  # rows measured are kept
            results["cases"] = previous["cases"]
    # (profile, slice thickness mm, slice spacing mm); box 4/2 = 4 mm slices every 2 mm (overlap)
    for profile, thickness, spacing in CASES:
        key = f"{profile} x{thickness}" if thickness == spacing else f"{profile} {thickness}/{spacing} mm"
        row = results["cases"].get(key, {})
        if all(name in row for name in ROWS):
            continue
        if profile == "box":
            thick1, thick2 = simulate_thick(hr1, thickness, spacing), simulate_thick(hr2, thickness, spacing)
        else:
            thick1, thick2 = kspace_thick(hr1, thickness), kspace_thick(hr2, thickness)
        grid, _ = linear_upsample(thick1, thickness)
        truth1, truth2 = hr1.array[: grid.array.shape[0]], hr2.array[: grid.array.shape[0]]
        row["linear"] = metrics(truth1, grid.array)
        cubic = resample_to_reference(thick1, grid, "bspline", extrapolate=True).array
        row["cubic"] = metrics(truth1, cubic)
        row["sinc"] = metrics(truth1, resample_to_reference(thick1, grid, "sinc", extrapolate=True).array)
        degradation = "slice-profile" if profile == "box" else "kspace"
        n_high = grid.array.shape[0]
        operator = (SliceProfile(n_high, float(hr1.spacing[2]), thickness, spacing, "cpu") if profile == "box"
                    else KSpaceTruncation(thick1.array.shape[0]))
        row["cubic + data consistency"] = metrics(truth1, consistent_cubic(cubic, thick1.array, operator))
        t = time.perf_counter()
        tv = tv_reconstruct(thick1, torch.device("cpu"), thickness, degradation, TV_ITERATIONS)
        row["TV reconstruction"] = {**metrics(truth1, tv.array), "seconds": round(time.perf_counter() - t, 1)}
        for name, volumes, prior, tv_weight in (("DIP (T1 only)", [thick1], "upsampled", TV_WEIGHT),
                                         ("dmDIP (T1 + T2w)", [thick1, thick2], "upsampled", TV_WEIGHT),
                                         ("dmDIP without TV (T1 + T2w)", [thick1, thick2], "upsampled", 0.0),
                                         ("dmDIP, paper's noise input and objective", [thick1, thick2], "noise", 0.0)):
            if name in row:
                continue
            config = DMDIPConfig(iterations=args.iterations, channels=args.channels, slab=args.slices,
                                 degradation=degradation, prior_input=prior, thickness_mm=thickness, tv_weight=tv_weight)
            t = time.perf_counter()
            restored = dmdip(volumes, config, torch.device("cpu"))
            row[name] = {**metrics(truth1, restored[0].array), "seconds": round(time.perf_counter() - t, 1)}
            if len(restored) == 2:
                row[name]["t2_psnr"] = metrics(truth2, restored[1].array)["psnr"]
        results["cases"][key] = {name: row[name] for name in ROWS}
        print(key, json.dumps({k: (v["psnr"], v["ssim3d"]) for k, v in row.items()}), flush=True)
        saved.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
