"""Register one SKS run of the label-efficiency benchmark as the bundled model `brain-lesion-sks`
(Resources/models), with a card that says exactly what it was trained on and how it scored.

    python benchmarks/sks_label_efficiency.py ...          # writes the weights of every SKS run
    python benchmarks/export_bundled_sks.py --seed 0 --pixel-cases 8
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from slicerleap.models.catalog import add_bundled_card
from slicerleap.models.weights import sha256_of
from slicerleap.segmentation.slice_training import SliceTrainingConfig
from slicerleap.segmentation.label_specs import LESION_LABEL
from sks_label_efficiency import SPEC, pool_order, weights_tag  # the benchmark's grid, case choice, file names (this folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
MODEL_ID = "brain-lesion-sks@1.0.0"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pixel-cases", type=int, default=8)
    ap.add_argument("--models", default="/tmp/sks_benchmark_models")
    ap.add_argument("--results", default=str(Path(__file__).with_name("sks_results.json")))
    args = ap.parse_args()
    tag = weights_tag("SKS", args.seed, args.pixel_cases)
    config = SliceTrainingConfig(**json.loads((Path(args.models) / f"{tag}.json").read_text(encoding="utf-8")))
    results = json.loads(Path(args.results).read_text(encoding="utf-8"))
    run = next(r for r in results["runs"] if r["seed"] == args.seed and r["pixel_cases"] == args.pixel_cases and r["model"] == "SKS")
    pixel_seeds = sorted(int(i) for i in pool_order(args.seed, 40)[:args.pixel_cases])
    val = run.get("val_cases", 0)
    selection = (f" Weights: those of iteration {run['best_iteration']}, the best lesion Dice on {val} pixel-labelled validation cases "
                 f"(seeds {', '.join(str(48 + i) for i in range(val))})." if val else "")
    folder = ROOT / "Resources" / "models"
    weights = folder / (MODEL_ID.replace("@", "-") + ".safetensors")
    shutil.copy2(Path(args.models) / f"{tag}.safetensors", weights)
    card = {
        "id": MODEL_ID,
        "title": "Brain lesion SKS (demo model, synthetic lesions in the MNI template)",
        "description": "SKS (Skip and Skip): two Swin V2 encoders on 2.5D axial slices (slice + neighbours) at 1.5 mm, "
                       "coarse branch trained on slice-level lesion labels, fine branch + decoder on few pixel labels.",
        "task": "segmentation", "module": "SKSSegmentation", "modality": "MR", "default": True,
        "architecture": config.architecture(), "input": SPEC, "labels": [LESION_LABEL],
        "postprocess": {"fill_holes": True, "min_lesion_mm3": 10.0},
        "licence": "Apache-2.0 (weights); anatomy: MNI ICBM152 2009a template, see nilearn's licence notice",
        "training_data": (f"slicerleap.data.lesion_cases seeds 0-39 (synthetic hypo-/hyper-intense lesions, 3-14 mm, inserted into "
                          f"randomly warped copies of the real MNI ICBM152 2009a T1 template, with per-case gamma, bias field and "
                          f"noise): slice-level labels from all 40 cases (stage 1), pixel labels from {args.pixel_cases} of them "
                          f"(seeds {', '.join(map(str, pixel_seeds))}; stage 2, benchmark seed {args.seed}).{selection} No patient data: a demonstration model, not validated for "
                          "clinical or research use, and not expected to transfer to real lesions."),
        "training": {**config.to_dict(), "seconds": run["train_s"]},
        "evaluation": {"held_out_cases": "lesion_cases seeds 40-47", **{k: round(run[k], 4) for k in ("dice", "jaccard", "precision", "recall")},
                       "benchmark": "benchmarks/sks_label_efficiency.py, see benchmarks/RESULTS.md"},
        "file": weights.name,
        "sha256": sha256_of(weights),
    }
    add_bundled_card(card)
    print(json.dumps(card["evaluation"]))


if __name__ == "__main__":
    main()
