"""Train the bundled demo model `brain-tissue-unet` and register it in Resources/models/catalog.json.

Data: the MNI ICBM152 2009a symmetric T1 template from the nilearn wheel, labels from its GM/WM
probability maps (p > 0.5). One template, so there is no held-out subject: the validation Dice below
is measured on the template itself and says only that training converged. The model exists so the
pipeline (catalog, verified weights, inference, scene output) runs end to end on real anatomy.

    python benchmarks/train_bundled_brain_tissue.py [--epochs 30]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from slicerleap.data import mni_t1, mni_tissue_labels
from slicerleap.data.samples import TISSUE_LABELS
from slicerleap.device import select_device
from slicerleap.models.catalog import add_bundled_card
from slicerleap.models.weights import save_weights, sha256_of
from slicerleap.segmentation.unet_trainer import UNetTrainingConfig, prepare_pair, train_unet

ROOT = Path(__file__).resolve().parents[1]
MODEL_ID = "brain-tissue-unet@1.0.0"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    config = UNetTrainingConfig(spacing_mm=(2.0, 2.0, 2.0), patch=(64, 64, 64), channels=(8, 16, 32, 64),
                                epochs=args.epochs, iterations_per_epoch=args.iterations, n_classes=3)
    device = select_device("auto")
    pair = prepare_pair(mni_t1(), mni_tissue_labels(), config)
    started = time.time()
    net, history = train_unet([pair], [pair], config, device,
                              report=lambda p, s, m, **k: print(m, flush=True) if s == "validation" else None)
    folder = ROOT / "Resources" / "models"
    weights = folder / (MODEL_ID.replace("@", "-") + ".safetensors")
    save_weights(net, weights)
    card = {
        "id": MODEL_ID,
        "title": "Brain tissue (grey/white matter) U-Net, demo model",
        "description": "3D MONAI U-Net (8-16-32-64 channels) segmenting grey and white matter in skull-stripped T1 MRI at 2 mm.",
        "task": "segmentation", "module": "SKSSegmentation", "modality": "MR",
        "architecture": config.architecture(),
        "input": {"spacing_mm": list(config.spacing_mm), "patch": list(config.patch), "channels": 1,
                  "normalisation": config.normalisation},
        "labels": TISSUE_LABELS,
        "licence": "Apache-2.0 (weights); training data: MNI ICBM152 2009a template, see nilearn's licence notice",
        "training_data": ("One volume: the MNI ICBM152 2009a symmetric T1 template (nilearn 0.13.1 wheel), labels = "
                          "argmax of its GM/WM probability maps where p > 0.5, with MONAI spatial and intensity augmentation. "
                          "No held-out subject: a demonstration model, not validated for clinical or research use."),
        "evaluation": {"val_dice_on_training_template": history[-1]["val_dice"], "best_val_dice": max(h["val_dice"] for h in history),
                       "epochs": config.epochs, "train_time_s": round(time.time() - started, 1), "device": str(device)},
        "file": weights.name,
        "sha256": sha256_of(weights),
        "default": False,  # the SKSSegmentation default is the bundled SKS lesion model (export_bundled_sks.py)
    }
    add_bundled_card(card)
    print(json.dumps(card["evaluation"]))


if __name__ == "__main__":
    main()
