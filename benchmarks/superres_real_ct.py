"""Through-plane super-resolution of a real head CT (issue 33 §2): SR4ZCT, TV and dmDIP against linear, cubic
B-spline and windowed-sinc interpolation, all in one run, on thick-slice versions of the InVesalius head CT
(Debian invesalius-examples, 108 x 256 x 256, 0.957 x 0.957 x 1.5 mm, int16 HU; read from the package).

Thick slices: box averages of the CT's own 1.5 mm slices (SR4ZCT's slice model, 16 points per slice), thickness /
spacing 3/3, 4.5/4.5, 6/6 mm and 3 mm every 4.5 mm (gaps). Truth: the 1.5 mm slices. The interpolators sample the
truth's grid directly; the per-scan methods restore the in-plane pixel size (0.957 mm) along the slices, as the
product does, and are then resampled linearly to the truth's grid (what `superres --spacing` does). PSNR and SSIM
(3D, skimage) in two HU windows, both images clipped to the window and the window width as the data range: brain
(0..80 HU) and bone (-500..1300 HU), over the head's bounding box (HU > -500). Per-scan methods at CPU budgets,
stated in each row; seeds where the table says.

    python benchmarks/superres_real_ct.py --results benchmarks/superres_real_ct.json [--cases 4.5/4.5 ...]
        [--methods linear cubic sinc tv sr4zct dmdip] [--seeds 0] [--threads 1]   # resumable: done rows are kept
    python benchmarks/superres_real_ct.py --table
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from slicerleap import Volume
from slicerleap.data.invesalius import head_ct
from slicerleap.enhancement.dmdip import DMDIPConfig, dmdip
from slicerleap.enhancement.sr4zct import SR4ZCTConfig, sr4zct
from slicerleap.enhancement.tv_reconstruction import tv_reconstruct
from slicerleap.json_files import write_json_atomically
from slicerleap.transforms import resample_to_reference
from superres_thick_slices import simulate_thick

HERE = Path(__file__).resolve().parent
CASES = ("3/3", "4.5/4.5", "6/6", "3/4.5")  # thickness/spacing mm
WINDOWS = {"brain": (0.0, 80.0), "bone": (-500.0, 1300.0)}  # HU
INTERPOLATORS = {"linear": "linear", "cubic": "bspline", "sinc": "sinc"}
# CPU budgets: SR4ZCT's and TV's defaults; dmDIP's 300 iterations per slab take hours on one core for this CT,
# so it gets a wall-time budget (split over its slabs, as `superres --time-budget` does)
SR4ZCT_ITERATIONS, TV_ITERATIONS, DMDIP_BUDGET_S = 400, 200, 900


def ct_on_thick_axis():
    """The CT with its 1.5 mm slice axis as array axis 0 (k), as simulate_thick expects."""
    ct = head_ct()
    return ct.with_array(ct.array.astype(np.float32))


def scores(truth: np.ndarray, test: np.ndarray, box: tuple) -> dict:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    out = {}
    for name, (low, high) in WINDOWS.items():
        t, s = (np.clip(a[box], low, high).astype(np.float64) for a in (truth, test))
        out[f"psnr_{name}"] = round(float(peak_signal_noise_ratio(t, s, data_range=high - low)), 3)
        out[f"ssim_{name}"] = round(float(structural_similarity(t, s, data_range=high - low)), 4)
    return out


def restore(method: str, thick, thickness: float, seed: int):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if method == "tv":
        return tv_reconstruct(thick, device, thickness_mm=thickness, iterations=TV_ITERATIONS), f"{TV_ITERATIONS} it"
    if method == "sr4zct":
        return sr4zct(thick, SR4ZCTConfig(thickness_mm=thickness, iterations=SR4ZCT_ITERATIONS, seed=seed), device), \
            f"{SR4ZCT_ITERATIONS} it"
    if method == "dmdip":
        config = DMDIPConfig(thickness_mm=thickness, seed=seed, time_budget_s=DMDIP_BUDGET_S)
        return dmdip([thick], config, device)[0], f"{DMDIP_BUDGET_S} s budget"
    raise ValueError(method)


def run(case: str, method: str, seed: int, ct) -> dict:
    thickness, spacing = (float(x) for x in case.split("/"))
    thick = simulate_thick(ct, thickness, spacing)
    n = int(round(((thick.array.shape[0] - 1) * spacing + thickness) / 1.5))  # truth slices the thick ones cover
    truth = ct.array[:n]
    grid = Volume(truth, ct.ijk_to_ras.copy(), dict(ct.metadata))  # the truth's slices: the first n of the CT
    started = time.perf_counter()
    if method in INTERPOLATORS:
        out, budget = resample_to_reference(thick, grid, INTERPOLATORS[method], extrapolate=True).array, "—"
    else:
        restored, budget = restore(method, thick, thickness, seed)
        out = resample_to_reference(restored, grid, "linear", extrapolate=True).array
    seconds = time.perf_counter() - started
    inside = np.argwhere(truth > -500)
    lo, hi = inside.min(0), inside.max(0) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return {"case": case, "method": method, "seed": seed, "budget": budget, "seconds": round(seconds, 1),
            "thick_slices": int(thick.array.shape[0]), **scores(truth, out, box)}


def table(rows: list[dict]) -> str:
    def cell(values, digits):
        values = np.asarray(values, dtype=float)
        return f"{values.mean():.{digits}f}" + (f" ± {values.std(ddof=1):.{digits}f}" if len(values) > 1 else "")

    lines = ["| slices (thickness/spacing mm) | method | budget | PSNR brain dB | SSIM brain | PSNR bone dB | SSIM bone | seconds | n |",
             "|---|---|---|---|---|---|---|---|---|"]
    for case in CASES:
        for method in ("linear", "cubic", "sinc", "tv", "sr4zct", "dmdip"):
            group = [r for r in rows if r["case"] == case and r["method"] == method]
            if group:
                lines.append(f"| {case} | {method} | {group[0]['budget']} | {cell([r['psnr_brain'] for r in group], 2)} | "
                             f"{cell([r['ssim_brain'] for r in group], 4)} | {cell([r['psnr_bone'] for r in group], 2)} | "
                             f"{cell([r['ssim_bone'] for r in group], 4)} | {cell([r['seconds'] for r in group], 0)} | {len(group)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=str(HERE / "superres_real_ct.json"))
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--methods", nargs="+", default=["linear", "cubic", "sinc", "tv", "sr4zct", "dmdip"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    path = Path(args.results)
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    if args.table:
        return print(table(rows))
    torch.set_num_threads(args.threads)
    ct = ct_on_thick_axis()
    for case in args.cases:
        for method in args.methods:
            for seed in (args.seeds if method in ("sr4zct", "dmdip") else [0]):
                if any(r["case"] == case and r["method"] == method and r["seed"] == seed for r in rows):
                    continue
                rows.append({**run(case, method, seed, ct), "threads": args.threads})
                print(json.dumps(rows[-1]), flush=True)
                write_json_atomically(path, {"rows": rows})
    print(table(rows))


if __name__ == "__main__":
    main()
