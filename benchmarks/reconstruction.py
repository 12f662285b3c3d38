"""MRI reconstruction from undersampled k-space simulated from real anatomy (no raw k-space ships offline):
zero-filled, SENSE and L1-wavelet CS (SigPy), 4x and 8x equispaced masks (fastMRI's: centre 0.08 / 0.04), 8 birdcage
coils normalised to unit root-sum-of-squares, smooth random phase, complex noise at SNR 40. Test slices: 8 axial
slices of the MNI T1 (1 mm) and 8 coronal slices of ITK's head (2x2 mm in-plane, resampled to 1 mm so that the matrix
is scanner-like; its detail stays that of a 2 mm scan). The solvers' weights (lamda) were set on one sagittal MNI
slice (x = 100), not on these. Reference: the fully sampled RSS image (fastMRI's convention), so noise is part of
the target. PSNR / SSIM with the reference's range, SSIM inside the anatomy too, NMSE; mean ± sample SD over slices x 3 mask seeds; seconds per
slice on this machine (the ESPIRiT maps, shared by SENSE and CS, counted once in each).

    python benchmarks/reconstruction.py --out benchmarks/reconstruction.json
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from skimage.metrics import structural_similarity

from slicerleap.json_files import write_json_atomically
from slicerleap.reconstruction import classical
from slicerleap.reconstruction.masks import calibration_width, undersampling_mask
from slicerleap.reconstruction.methods import CS, SENSE
from slicerleap.reconstruction.simulate import simulate_kspace


def test_slices() -> dict[str, np.ndarray]:
    from slicerleap.data.itk_examples import _folder
    from slicerleap.data.samples import mni_t1
    from slicerleap.io import read_volume
    from slicerleap.transforms import resample_to_spacing

    mni = mni_t1().array.astype(np.float32)  # K = axial
    mni = mni[np.linspace(50, 130, 8).round().astype(int), 20:212, 10:186]
    head = read_volume(_folder() / "KmeansTest_T1UCharRaw.nii.gz")
    head = resample_to_spacing(head.with_array(head.array.astype(np.float32)), (1.0, 1.0, 3.0), "linear").array
    head = head[np.linspace(18, 44, 8).round().astype(int)]
    return {"MNI T1 (axial, 1 mm)": mni / mni.max(), "ITK head (coronal, 2 mm resampled to 1 mm)": head / head.max()}


def metrics(reference: np.ndarray, image: np.ndarray, foreground: np.ndarray) -> dict:
    """PSNR, SSIM and NMSE over the whole image (fastMRI's), and SSIM over the anatomy only: outside it the fully sampled
    reference is noise, which SENSE and CS (ESPIRiT maps are zero outside the object) rightly do not reproduce."""
    span = float(reference.max() - reference.min())
    mse = float(np.mean((reference - image) ** 2))
    _, ssim_map = structural_similarity(reference, image, data_range=span, full=True)
    return {"psnr": 10 * np.log10(span ** 2 / mse), "ssim": float(ssim_map.mean()), "ssim_anatomy": float(ssim_map[foreground].mean()),
            "nmse": mse * reference.size / float(np.sum(reference ** 2))}


def run(args) -> dict:
    rows = []
    lamda = {"sense": next(p for p in SENSE.parameters if p.name == "lamda").default,
             "cs": next(p for p in CS.parameters if p.name == "lamda").default}
    for subject, slices in test_slices().items():
        kspace = simulate_kspace(slices, n_coils=8, snr=args.snr, seed=0)
        for n, k in enumerate(kspace):
            reference = classical.zero_filled(k)
            foreground = slices[n] > 0.05  # the noiseless anatomy (known in simulation), background excluded
            for acceleration in args.accelerations:
                for seed in range(args.seeds):
                    mask = undersampling_mask(k.shape[-1], acceleration, "equispaced", seed=seed)
                    sampled = k * mask
                    weights = np.broadcast_to(mask.astype(np.float32), k.shape[-2:])[None]
                    started = time.perf_counter()
                    images = {"zero-filled": classical.zero_filled(sampled)}
                    seconds = {"zero-filled": time.perf_counter() - started}
                    started = time.perf_counter()
                    maps = classical.coil_sensitivities(sampled, calibration_width(mask))
                    maps_s = time.perf_counter() - started
                    for method, solve in (("sense", classical.sense), ("cs", classical.l1_wavelet)):
                        started = time.perf_counter()
                        images[method] = solve(sampled, maps, weights, lamda[method], args.iterations)
                        seconds[method] = time.perf_counter() - started + maps_s
                    for method, image in images.items():
                        rows.append({"subject": subject, "slice": n, "acceleration": acceleration, "seed": seed, "method": method,
                                     "seconds": round(seconds[method], 3), **metrics(reference, image, foreground)})
            print(f"{subject} slice {n + 1}/{len(kspace)} done", flush=True)
    return {"command": f"python benchmarks/reconstruction.py --out {args.out}", "snr": args.snr, "coils": 8,
            "iterations": args.iterations, "lamda": lamda, "rows": rows}


def cells(rows: list[dict]):
    """The table's groups: (subject, acceleration, method, a formatter of mean ± sample SD over the group's rows)."""
    for subject in dict.fromkeys(r["subject"] for r in rows):
        for acceleration in sorted({r["acceleration"] for r in rows}):
            for method in dict.fromkeys(r["method"] for r in rows):
                picked = [r for r in rows if r["subject"] == subject and r["acceleration"] == acceleration and r["method"] == method]
                yield subject, acceleration, method, picked, lambda key, digits, picked=picked: (
                    f"{np.mean([r[key] for r in picked]):.{digits}f} ± {np.std([r[key] for r in picked], ddof=1):.{digits}f}")


def table(result: dict) -> str:
    rows = result["rows"]
    lines = ["| subject | acceleration | method | PSNR (dB) | SSIM | SSIM in the anatomy | NMSE | s / slice |", "|---|---|---|---|---|---|---|---|"]
    for subject, acceleration, method, picked, stat in cells(rows):
        lines.append(f"| {subject} | {acceleration:g}x | {method} | {stat('psnr', 2)} | {stat('ssim', 3)} | {stat('ssim_anatomy', 3)} | "
                     f"{stat('nmse', 4)} | {np.mean([r['seconds'] for r in picked]):.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).with_name("reconstruction.json")))
    ap.add_argument("--accelerations", type=float, nargs="+", default=[4.0, 8.0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--snr", type=float, default=40.0)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--table", action="store_true", help="only print the table of an existing results file")
    args = ap.parse_args()
    if args.table:
        import json

        return print(table(json.loads(Path(args.out).read_text(encoding="utf-8"))))
    result = run(args)
    write_json_atomically(args.out, result)
    print(table(result))


if __name__ == "__main__":
    main()
