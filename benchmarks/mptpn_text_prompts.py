"""Text-prompted lesion segmentation on real anatomy: MPTPN vs an image-only MONAI U-Net, the paper's ablations
(Table 3), and what a wrong prompt does (METHODS.md §2).

Data: `slicerleap.data.lesion_cases` (synthetic lesions in the real MNI ICBM152 T1, per-case warps and intensity
changes), axial slices as Slicer's axial view shows them, fitted to the model's square input. Cases 0..39 give
the training slices (every slice with >= 5 lesion pixels plus a quarter as many lesion-free brain slices, prompt
"no lesion"), cases 40..47 the test slices (lesion slices only, as the paper's test images all show the target).
Prompts are written from each slice's mask (count, size, shape, position in the view) — the paper's
hand-crafted style, generated. Stage 1 (SimSiam) runs once per seed on the training pairs with the full
architecture; every variant that keeps stage 1 starts from those weights where its layers match. All models:
same slices, augmentations, loss (0.5 WBCE + 0.5 WDice), steps; last weights kept, nothing selected on test.
Metrics per test slice at the model's input size (Dice, mIoU = mean of lesion and background IoU, pixel
accuracy, precision, recall), mean over slices, then mean ± sd over seeds. "wrong location": the full model
tested with every prompt's positions mirrored (upper <-> lower, left <-> right).

    python benchmarks/mptpn_text_prompts.py --seeds 0 1 2 --iterations 500 --pretrain-iterations 150
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from slicerleap.data.lesion_cases import LESION_VALUE, make_lesion_case
from slicerleap.mixed_precision import PRECISIONS
from slicerleap.models.weights import save_weights
from slicerleap.segmentation.metrics import prompted_metrics
from slicerleap.segmentation.mptpn.pretraining import pretrain_prior
from slicerleap.segmentation.mptpn.trainer import MPTPNTrainingConfig, build, predict, train_mptpn
from slicerleap.segmentation.mptpn.prompted_slices import PromptedSlices, prompted_slices
from slicerleap.segmentation.slice_data import prepare_case, slice_input_spec
from slicerleap.segmentation.mptpn.prompts import mislocate

SPEC = slice_input_spec(1.5, context=0)
NET = {"channels": 8, "patch": 8, "heads": 2}
MODELS = {"MPTPN": ("mptpn", {}, True), "U-Net (image only)": ("unet", {}, False),
          "MPTPN w/o Stage-1 weights": ("mptpn", {}, False), "MPTPN w/o MSFF": ("mptpn", {"msff": False}, True),
          "MPTPN w/o DownViT": ("mptpn", {"down_vit": False}, True), "MPTPN w/o UpViT": ("mptpn", {"up_vit": False}, True),
          "MPTPN w/o UpAttention": ("mptpn", {"up_attention": False}, True)}
PAPER = {"MPTPN": "91.53 / 85.67 / 95.01", "MPTPN w/o Stage-1 weights": "90.91 / 83.60 / 93.66",
         "MPTPN w/o MSFF": "84.72 / 73.78 / 87.34", "MPTPN w/o DownViT": "91.29 / 84.20 / 93.93",
         "MPTPN w/o UpViT": "91.22 / 84.01 / 93.96", "MPTPN w/o UpAttention": "91.19 / 84.07 / 93.77"}
KEYS = ("dice", "miou", "accuracy", "precision", "recall")


def slices_of(seeds, size: int, empty_share: float) -> PromptedSlices:
    parts = []
    for seed in seeds:
        image, labels = make_lesion_case(seed)
        case = prepare_case(image, SPEC, labels.with_array((labels.array == LESION_VALUE).astype(np.uint8)))
        parts.append(prompted_slices(case, size, empty_share, rng=np.random.default_rng(seed)))
    return PromptedSlices.concatenate(parts)


def evaluate(net, test: PromptedSlices, device, prompts=None) -> dict:
    probs = predict(net, test.images, prompts or test.prompts, device)
    per_slice = [prompted_metrics(p[0] > 0.5, t[0] > 0.5) for p, t in zip(probs.numpy(), test.masks.numpy())]
    return {k: float(np.mean([m[k] for m in per_slice])) for k in KEYS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pool", type=int, default=40)
    ap.add_argument("--test", type=int, default=8)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS, help="stage-2 training precision (mixed_precision_training.py)")
    ap.add_argument("--pretrain-iterations", type=int, default=150)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--results", default=str(Path(__file__).with_name("mptpn_results.json")))
    ap.add_argument("--save-model", default="/tmp/mptpn_benchmark_models", help="weights + config of every full MPTPN run")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = Path(args.results)
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"runs": [], "setup": vars(args)}
    done = {(r["seed"], r["model"]) for r in results["runs"]}
    t0 = time.time()
    train = slices_of(range(args.pool), args.size, 0.25)
    test = slices_of(range(args.pool, args.pool + args.test), args.size, 0.0)
    results["data"] = {"train_slices": len(train), "train_empty": sum(p == "no lesion" for p in train.prompts),
                       "test_slices": len(test), "unique_prompts": len(set(train.prompts))}
    print(f"data ready in {time.time() - t0:.0f} s: {results['data']}", flush=True)
    for seed in args.seeds:
        pretrained = None
        for name in args.models:
            if (seed, name) in done:
                continue
            kind, switches, stage1 = MODELS[name]
            config = MPTPNTrainingConfig(model=kind, img_size=args.size, net={**NET, **switches}, iterations=args.iterations,
                                         pretrain_iterations=0, seed=seed, precision=args.precision)
            if stage1 and pretrained is None:  # SimSiam once per seed, full architecture
                full = MPTPNTrainingConfig(img_size=args.size, net=NET, seed=seed)
                torch.manual_seed(seed)
                ppe = build(full).to(device)
                started = time.time()
                h = pretrain_prior(ppe, train.images, train.prompts, args.pretrain_iterations, device, seed=seed)
                pretrained = ppe.state_dict()
                results.setdefault("stage1", {})[str(seed)] = {"first_loss": h[0]["loss"], "last_loss": h[-1]["loss"],
                                                               "seconds": round(time.time() - started, 1)}
            started = time.time()  # variants with stage 1 take the shared run's tensors that match their layers
            net, history, seconds = train_mptpn(train, config, device, initial=pretrained if stage1 else None)
            record = {"seed": seed, "model": name, "train_s": round(seconds, 1), "final_loss": history[-1]["loss"],
                      **evaluate(net, test, device)}
            if name == "MPTPN":
                record["wrong_location"] = evaluate(net, test, device, [mislocate(p) for p in test.prompts])
                Path(args.save_model).mkdir(parents=True, exist_ok=True)
                save_weights(net, f"{args.save_model}/mptpn_seed{seed}.safetensors")
                (Path(args.save_model) / f"mptpn_seed{seed}.json").write_text(json.dumps(config.to_dict()), encoding="utf-8")
            results["runs"].append(record)
            path.write_text(json.dumps(results, indent=1), encoding="utf-8")
            print(f"seed {seed} {name:28s} " + " ".join(f"{k} {record[k]:.3f}" for k in KEYS) +
                  (f" | wrong location Dice {record['wrong_location']['dice']:.3f}" if "wrong_location" in record else "") +
                  f" ({time.time() - started:.0f} s)", flush=True)
    print(markdown_table(results))


def markdown_table(results: dict) -> str:
    lines = ["| model | Dice | mIoU | accuracy | precision | recall | runs | paper (QaTa-COV19, Tables 1/3) Dice / mIoU / Acc, % |",
             "|---|---|---|---|---|---|---|---|"]
    for name in MODELS:
        runs = [r for r in results["runs"] if r["model"] == name]
        if runs:
            cells = [f"{np.mean([r[k] for r in runs]):.3f} ± {np.std([r[k] for r in runs], ddof=1):.3f}" for k in KEYS]
            lines.append(f"| {name} | {' | '.join(cells)} | {len(runs)} | {PAPER.get(name, '—')} |")
    wrong = [r["wrong_location"] for r in results["runs"] if "wrong_location" in r]
    if wrong:
        cells = [f"{np.mean([r[k] for r in wrong]):.3f} ± {np.std([r[k] for r in wrong], ddof=1):.3f}" for k in KEYS]
        lines.append(f"| MPTPN, prompts with the wrong location | {' | '.join(cells)} | {len(wrong)} | — |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
