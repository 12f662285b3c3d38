"""The bundled SKS model through the product's own inference path (`segment_volume`: resampling, 2.5D batches,
post-processing), on the held-out cases of its benchmark: lesion Dice per case and per backend (PyTorch, OpenVINO
fp32, OpenVINO bf16), how far each backend's labels differ from PyTorch's, seconds per case, and which lesions it
finds by polarity (hypo-/hyper-intense) — the card's numbers, checked where a user gets them.

    python benchmarks/sks_bundled_model.py --backends torch openvino openvino-bf16 --out benchmarks/sks_bundled_model.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from slicerleap.data.lesion_cases import LESION_VALUE, make_lesion_case
from slicerleap.json_files import write_json_atomically
from slicerleap.models import get_catalog
from slicerleap.models.networks import load_model
from slicerleap.models.openvino_backend import OpenVINONet
from slicerleap.segmentation.inference import segment_volume
from slicerleap.segmentation.metrics import overlap_metrics

def runner(net, backend: str):
    """What runs the forward passes; OpenVINO is built here so that its precision can be chosen (segment_volume is
    then told "torch": it runs an already-wrapped net as given)."""
    if backend == "torch":
        return net
    compiled = OpenVINONet(net)
    if backend == "openvino-bf16":
        compiled.config["INFERENCE_PRECISION_HINT"] = "bf16"
    return compiled


def lesion_recalls(truth: np.ndarray, found: np.ndarray, lesions: list[dict]) -> list[dict]:
    """Share of each inserted lesion's voxels that were found (lesions that merged count once)."""
    components, _ = ndimage.label(truth)
    seen, rows = set(), []
    for lesion in lesions:
        c = int(components[tuple(lesion["centre_kji"])])
        if c == 0 or c in seen:
            continue
        seen.add(c)
        region = components == c
        rows.append({"polarity": lesion["polarity"], "radius_mm": lesion["radius_mm"], "contrast": lesion["contrast"],
                     "recall": float((found & region).sum() / region.sum())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="catalog id (default: the default segmentation model)")
    ap.add_argument("--cases", type=int, nargs="+", default=list(range(40, 48)), help="lesion_cases seeds (40-47: held out)")
    ap.add_argument("--backends", nargs="+", default=["torch", "openvino", "openvino-bf16"],
                    choices=["torch", "openvino", "openvino-bf16"], help="PyTorch always runs first: the others are compared with it")
    ap.add_argument("--out", default=str(Path(__file__).with_name("sks_bundled_model.json")))
    args = ap.parse_args()
    catalog = get_catalog()
    card = catalog.get(args.model) if args.model else catalog.default_for("segmentation")
    net = load_model(card, "cpu")
    cases = {seed: make_lesion_case(seed) for seed in args.cases}
    result = {"model": card["id"], "threads": torch.get_num_threads(), "backends": {}}
    reference = {}
    for backend in ["torch"] + [b for b in args.backends if b != "torch"]:
        runs, lesions = [], []
        model = runner(net, backend)
        for seed, (image, labels) in cases.items():
            started = time.perf_counter()
            found, _ = segment_volume(image, card, model, "cpu", backend="torch")
            seconds = time.perf_counter() - started
            found = found.array == 1
            truth = labels.array == LESION_VALUE
            reference.setdefault(seed, found)
            runs.append({"case": seed, "seconds": round(seconds, 2), **overlap_metrics(found, truth),
                         "labels_differing_from_torch": float((found != reference[seed]).mean())})
            lesions += lesion_recalls(truth, found, labels.metadata["lesions"])
        summary = {k: float(np.mean([r[k] for r in runs])) for k in ("dice", "jaccard", "precision", "recall", "seconds")}
        for polarity in ("hypo", "hyper"):
            rec = [l["recall"] for l in lesions if l["polarity"] == polarity]
            summary[f"{polarity}_lesions_found"] = f"{sum(r > 0.1 for r in rec)}/{len(rec)}"
        summary["max_labels_differing_from_torch"] = max(r["labels_differing_from_torch"] for r in runs)
        result["backends"][backend] = {"summary": summary, "cases": runs, "lesions": lesions}
        print(backend, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}), flush=True)
    write_json_atomically(args.out, result)
    print("| backend | Dice | Jaccard | precision | recall | s / case (first includes compiling) | hypo / hyper lesions found | labels ≠ PyTorch (max over cases) |")
    print("|---|---|---|---|---|---|---|---|")
    for backend, r in result["backends"].items():
        s = r["summary"]
        print(f"| {backend} | {s['dice']:.3f} | {s['jaccard']:.3f} | {s['precision']:.3f} | {s['recall']:.3f} | {s['seconds']:.1f} | "
              f"{s['hypo_lesions_found']} / {s['hyper_lesions_found']} | {100 * s['max_labels_differing_from_torch']:.4f} % |")


if __name__ == "__main__":
    main()
