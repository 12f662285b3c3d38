"""E2E-VarNet (MONAI) against the classical baselines of benchmarks/reconstruction.py, on the same test slices, masks
and metrics. Training: `slicerleap train recon`'s defaults (4 cascades, 300 steps, random 4x/8x masks, 1 - SSIM) on
k-space simulated from MNI T1 axial slices 40-140 that are not test slices (every 4th, 26 slices; 4 of them for
validation). The ITK head is the held-out subject; the MNI test slices are other slices of the training subject (so
the MNI rows flatter the network). Seeds 0-2 of the network (initialisation, training masks); the test masks are
those of the baselines (equispaced, seeds 0-2).

    python benchmarks/reconstruction_varnet.py --out benchmarks/reconstruction_varnet.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from reconstruction import cells, metrics, test_slices  # noqa: E402

from slicerleap.json_files import write_json_atomically  # noqa: E402
from slicerleap.reconstruction.classical import zero_filled  # noqa: E402
from slicerleap.reconstruction.masks import undersampling_mask  # noqa: E402
from slicerleap.reconstruction.simulate import simulate_kspace  # noqa: E402
from slicerleap.reconstruction.training import ReconTrainingConfig, train_varnet  # noqa: E402
from slicerleap.reconstruction.varnet import varnet_reconstruct  # noqa: E402


def training_slices(snr: float) -> tuple[list, list]:
    from slicerleap.data.samples import mni_t1

    test = set(np.linspace(50, 130, 8).round().astype(int))
    mni = mni_t1().array.astype(np.float32)
    picked = [k for k in range(40, 141, 4) if k not in test]
    slices = mni[picked, 20:212, 10:186]
    kspace = simulate_kspace(slices / mni.max(), n_coils=8, snr=snr, seed=100)
    return list(kspace[4:]), list(kspace[:4])


def table(result: dict, baselines: dict) -> str:
    """Baselines and the network side by side: mean ± sample SD over slices x mask seeds (x network seeds), and the
    network's mean per training seed."""
    rows = baselines["rows"] + result["rows"]
    seeds = sorted({r["network_seed"] for r in result["rows"]})
    lines = ["| subject | acceleration | method | PSNR (dB) | SSIM in the anatomy | NMSE | PSNR per network seed | n |",
             "|---|---|---|---|---|---|---|---|"]
    for subject, acceleration, method, picked, stat in cells(rows):
        per_seed = " / ".join(f"{np.mean([r['psnr'] for r in picked if r['network_seed'] == s]):.2f}" for s in seeds) \
            if method == "e2e-varnet" else ""
        lines.append(f"| {subject} | {acceleration:g}x | {method} | {stat('psnr', 2)} | {stat('ssim_anatomy', 3)} | "
                     f"{stat('nmse', 4)} | {per_seed} | {len(picked)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).with_name("reconstruction_varnet.json")))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--snr", type=float, default=40.0)
    ap.add_argument("--table", action="store_true", help="print the table with the baselines (reconstruction.json) and stop")
    args = ap.parse_args()
    out = Path(args.out)
    if args.table:
        import json

        return print(table(json.loads(out.read_text()), json.loads(out.with_name("reconstruction.json").read_text())))
    result = __import__("json").loads(out.read_text()) if out.exists() else {"rows": [], "training": {}}
    train, val = training_slices(args.snr)
    tests = {subject: simulate_kspace(slices, n_coils=8, snr=args.snr, seed=0) for subject, slices in test_slices().items()}
    truths = test_slices()
    for seed in args.seeds:
        if str(seed) in result["training"]:
            continue
        config = ReconTrainingConfig(iterations=args.iterations, seed=seed)
        started = time.time()
        net, history = train_varnet(train, val, config, torch.device("cpu"),
                                    report=lambda f, stage, message, **r: print(f"seed {seed}: {message}", flush=True))
        train_s = time.time() - started
        for subject, kspace in tests.items():
            for n, k in enumerate(kspace):
                reference = zero_filled(k)
                for acceleration in (4.0, 8.0):
                    for mask_seed in range(3):
                        mask = undersampling_mask(k.shape[-1], acceleration, "equispaced", seed=mask_seed)
                        t0 = time.perf_counter()
                        image = varnet_reconstruct(net, k * mask, mask, "cpu")
                        result["rows"].append({"subject": subject, "slice": n, "acceleration": acceleration, "seed": mask_seed,
                                               "network_seed": seed, "method": "e2e-varnet", "seconds": round(time.perf_counter() - t0, 3),
                                               **metrics(reference, image, truths[subject][n] > 0.05)})
        result["training"][str(seed)] = {"seconds": round(train_s, 1), "history": history}
        result["command"] = f"python benchmarks/reconstruction_varnet.py --out {args.out}"
        result["config"] = config.to_dict()
        write_json_atomically(out, result)
        print(f"seed {seed} done in {train_s:.0f} s", flush=True)


if __name__ == "__main__":
    main()
