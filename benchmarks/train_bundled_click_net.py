"""Train the bundled click network (interactive segmentation) and register it in Resources/models/catalog.json.

Trained on ONE real brain: the MNI ICBM152 2009a T1 template (nilearn wheel) with its grey / white matter labels;
structures to click on: grey matter, white matter and the brain (their union). Clicks simulated as in SPPNet /
PE-MED (click_training.py). The recipe was fixed before any test: no validation set, the last weights are kept.
Tested by benchmarks/interactive_clicks.py on scans it never saw (the ITK head, the InVesalius head CT).

    python benchmarks/train_bundled_click_net.py [--iterations 1200]     # about 30 min on one core
    python benchmarks/train_bundled_click_net.py --card-only            # the card again, for the weights already there
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from slicerleap.data import mni_t1, mni_tissue_labels
from slicerleap.data.lesion_cases import make_lesion_case
from slicerleap.models.catalog import add_bundled_card
from slicerleap.models.weights import save_weights, sha256_of
from slicerleap.segmentation.interactive.click_net import CLICK_RADIUS_MM, WORKING_MM
from slicerleap.segmentation.interactive.click_net_refiner import TASK
from slicerleap.segmentation.interactive.click_training import ClickTrainingConfig, config_dict, prepare_case, train_click_net

ROOT = Path(__file__).resolve().parents[1]
MODEL_ID = "brain-clicks@1.0.0"
LESION_MODEL_ID = "brain-clicks@1.1.0"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=1200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--card-only", action="store_true", help="write the card again for the weights and history already there")
    parser.add_argument("--lesion-cases", type=int, default=0,
                        help="also train on N synthetic-lesion cases in the MNI template (seeds 2000..; brain and lesion labels): "
                             f"registered as {LESION_MODEL_ID}")
    args = parser.parse_args()
    model_id = LESION_MODEL_ID if args.lesion_cases else MODEL_ID
    torch.set_num_threads(args.threads)
    config = ClickTrainingConfig(iterations=args.iterations)
    weights = ROOT / "Resources" / "models" / (model_id.replace("@", "-") + ".safetensors")
    history_file = ROOT / "benchmarks" / f"click_net_training{'_lesions' if args.lesion_cases else ''}.json"
    started = time.time()
    if args.card_only:
        history = json.loads(history_file.read_text(encoding="utf-8"))
        started -= history[-1]["seconds"]
    else:
        cases = [prepare_case(mni_t1(), mni_tissue_labels())]
        cases += [prepare_case(*make_lesion_case(2000 + n, anatomy="mni")) for n in range(args.lesion_cases)]
        net, history = train_click_net(cases, config, "cpu", report=lambda p, s, m, **k: print(f"[{time.time() - started:7.0f} s] {m}", flush=True))
        save_weights(net, weights)
    card = {
        "id": model_id,
        "title": "Interactive brain MRI segmentation from clicks (3D click network)",
        "description": ("Positive / negative clicks (and a previous mask to correct) -> the structure around the click, inside "
                        "the click's reach; 3D U-Net (MONAI) + SPPNet's light local branch, PE-MED's inputs and self-loop, "
                        f"on the interaction's region at {WORKING_MM} mm."),
        "task": TASK, "module": "SKSSegmentation", "modality": "MR",
        "architecture": config.architecture(),
        "input": {"spacing_mm": [WORKING_MM] * 3, "channels": 4, "click_radius_mm": CLICK_RADIUS_MM,
                  "normalisation": {"kind": "percentile", "lower": 1.0, "upper": 99.0, "over": "the interaction's region"}},
        "labels": [],
        "licence": "Apache-2.0 (weights); training data: MNI ICBM152 2009a template, see nilearn's licence notice",
        "training_data": ("ONE real brain: the MNI ICBM152 2009a symmetric T1 template (nilearn 0.13.1 wheel) with grey / white "
                          "matter labels from its probability maps; structures: grey matter, white matter, the whole brain"
                          + (f"; and {args.lesion_cases} synthetic-lesion cases made from the same template (data/lesion_cases.py, "
                             "seeds 2000.., warped copies with inserted lesions): structures brain and lesion. " if args.lesion_cases else ". ")
                          + f"{args.iterations} iterations of {config.batch_size} simulated click sessions (40 mm patches, up to "
                          f"{config.max_extra_clicks + 1} clicks, {config.corrupted_start:.0%} starting from a corrupted mask) on CPU. "
                          "Never trained on another subject, another contrast or CT; not validated for clinical or research use."),
        "training": config_dict(config),
        "evaluation": {"history": history, "train_time_s": round(time.time() - started, 1),
                       "tested_by": "benchmarks/interactive_clicks.py (ITK head, InVesalius head CT): no better than "
                                    "grow-from-clicks on those held-out scans, so not the default (RESULTS.md)"},
        "file": weights.name,
        "sha256": sha256_of(weights),
        "default": False,
        "domain": {"modality": "MR", "region": "brain", "spacing_mm": [0.5, 3.0],
                   "source": "the MNI template it was trained on; clicks on other MR contrasts only get warnings, CT is refused "
                             "(use grow-from-clicks there)"},
    }
    add_bundled_card(card)
    history_file.write_text(json.dumps(history, indent=1), encoding="utf-8")
    print(f"registered {model_id}")


if __name__ == "__main__":
    main()
