"""Full-volume inference time and peak memory of SKS vs a MONAI 2D U-Net and a 2D SwinUNETR of similar
size, on a CT-sized volume (512 x 512 x 200, 0.78 mm pixels, 2.5 mm slices), in one run.

Each model runs the whole SlicerLeap pipeline (`segment_volume`: reorient, resample in-plane to the
card's 1.5 mm, normalise, 2.5D batches of slices, argmax, post-processing, resample back) in its own
subprocess, so the peak resident memory of one model does not hide another's. Weights are random (time
does not depend on them), except for `sks-bundled`: the shipped brain-lesion SKS as a user runs it (batch norm in
its full-resolution blocks, as trained; `unet-batch` is the U-Net with the same norm, the benchmark's trained
baseline). The volume's content is a smooth synthetic CT-like field (speed only).

    python benchmarks/sks_inference_speed.py            # all three, writes sks_speed_results.json
    python benchmarks/sks_inference_speed.py --backends torch openvino   # also through OpenVINO, same run

With the OpenVINO backend the volume is segmented twice in the same process: the first time traces and
compiles the network for the batch's shape and keeps the traced model on disk (what a user's first volume
costs), the second reads it back (every later volume of that size): both times are reported.

MONAI's 2D SwinUNETR needs `einops` (pip install einops); SlicerLeap itself does not.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHAPE_KJI = (200, 512, 512)
SPACING = (0.78, 0.78, 2.5)
CARD_INPUT = {"spacing_mm": [1.5, 1.5, None], "slice_axis": "axial", "slice_context": 1, "channels": 3,
              "normalisation": {"kind": "window", "center": 40, "width": 400}}


def build(name: str):
    from slicerleap.segmentation.sks.net import SKSNet

    if name == "sks":
        return SKSNet()
    if name == "sks-bundled":  # the shipped model as a user runs it: its card's architecture (batch norm) and weights
        from slicerleap.models import get_catalog
        from slicerleap.models.networks import load_model

        return load_model(get_catalog().get("brain-lesion-sks@1.0.0"), "cpu")
    if name in ("unet", "unet-batch"):  # instance norm, or batch norm as the label-efficiency benchmark's baseline
        from monai.networks.nets import UNet

        return UNet(2, 3, 2, (32, 64, 128, 256), (2, 2, 2), num_res_units=2, norm="batch" if name == "unet-batch" else "instance")
    if name == "swinunetr":
        from monai.networks.nets import SwinUNETR

        return SwinUNETR(in_channels=3, out_channels=2, feature_size=12, spatial_dims=2, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16))
    raise ValueError(name)


def run_one(name: str, batch: int, backend: str = "torch") -> dict:
    import os
    import tempfile

    import torch

    from slicerleap.segmentation.inference import segment_volume
    from slicerleap.volume import Volume

    torch.set_num_threads(max(1, torch.get_num_threads()))
    rng = np.random.default_rng(0)
    from scipy.ndimage import zoom

    coarse = rng.normal(0, 300, (10, 16, 16)).astype(np.float32)
    array = zoom(coarse, np.array(SHAPE_KJI) / coarse.shape, order=1).astype(np.int16)
    volume = Volume.from_geometry(array, spacing=SPACING, origin=(-200, -200, -250), metadata={"name": "ct-sized"})
    net = build(name).eval()
    params = sum(p.numel() for p in net.parameters())
    os.environ["SLICERLEAP_HOME"] = tempfile.mkdtemp(prefix="sks-speed-")  # an empty OpenVINO cache
    card = {"input": CARD_INPUT, "labels": [{"value": 1, "name": "Lesion", "color": "#ff0000", "role": "lesion"}],
            "sha256": f"{name}-random-weights"}
    with torch.inference_mode():  # warm-up: one batch, so one-off allocations do not count
        net(torch.zeros(batch, 3, 288, 288))
    row = {"model": name, "backend": backend, "params_M": round(params / 1e6, 3), "batch": batch}
    for key in ("seconds", "seconds_cached") if backend == "openvino" else ("seconds",):
        started = time.perf_counter()
        labels, _ = segment_volume(volume, card, net, "cpu", batch_size=batch, backend=backend)
        row[key] = round(time.perf_counter() - started, 2)
        assert labels.array.shape == SHAPE_KJI
    return {**row, "peak_rss_GiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--models", nargs="+", default=["sks", "unet", "swinunetr"],
                    choices=["sks", "sks-bundled", "unet", "unet-batch", "swinunetr"])
    ap.add_argument("--backends", nargs="+", default=["torch"], choices=["torch", "openvino"])
    ap.add_argument("--out", default=str(Path(__file__).with_name("sks_speed_results.json")))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.batch, args.backends[0])))
        return
    rows = []
    for backend in args.backends:
        for name in args.models:
            out = subprocess.run([sys.executable, __file__, "--one", name, "--batch", str(args.batch), "--backends", backend],
                                 capture_output=True, text=True, encoding="utf-8", errors="replace")
            if out.returncode:
                sys.exit(out.stderr)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    # baselines: the U-Nets in eager PyTorch; steady state (a cached traced model) for OpenVINO rows
    unets = {r["model"]: r["seconds"] for r in rows if r["model"] in ("unet", "unet-batch") and r["backend"] == "torch"}
    for r in rows:
        r["time_vs"] = {u: round(r.get("seconds_cached", r["seconds"]) / t, 2) for u, t in unets.items()}
    Path(args.out).write_text(json.dumps({"volume": {"shape_kji": SHAPE_KJI, "spacing_mm": SPACING}, "card_input": CARD_INPUT,
                                          "rows": rows}, indent=1), encoding="utf-8")
    print("| model | backend | parameters (M) | seconds (first volume) | seconds (later volumes) | "
          + " | ".join(f"x {u} (PyTorch)" for u in unets) + " | peak RSS (GiB) |\n|" + "---|" * (6 + len(unets)))
    for r in rows:
        print(f"| {r['model']} | {r['backend']} | {r['params_M']} | {r['seconds']} | {r.get('seconds_cached', r['seconds'])} | "
              + " | ".join(str(r["time_vs"][u]) for u in unets) + f" | {r['peak_rss_GiB']} |")


if __name__ == "__main__":
    main()
