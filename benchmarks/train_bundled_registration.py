"""Train the bundled generic registration models and register them in Resources/models/catalog.json.

No registration training set ships offline, so the models learn from pairs we can make: (a) the one
real brain we have with tissue labels — the MNI ICBM152 2009a T1 template (nilearn wheel), GM/WM from
its probability maps — deformed twice by independent smooth random diffeomorphisms, each copy with its
own intensity changes (gamma, bias field, noise); (b) SynthMorph-style synthetic label maps with random
intensities. Loss: LNCC 7³ + regulariser + Dice of warped labels. Validation: Dice of GM/WM on fixed
held-out deformations of the template (in distribution: it only says training converged; generalisation
is measured by benchmarks/registration_brains.py on a different subject).

    python benchmarks/train_bundled_registration.py --arch tm-dca [--regulariser implicit-diffusion] [--iterations 600]
    python benchmarks/train_bundled_registration.py --reevaluate   # recompute the cards' validation numbers
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from slicerleap.data import mni_t1, mni_tissue_labels
from slicerleap.device import select_device
from slicerleap.models.catalog import add_bundled_card
from slicerleap.models.weights import save_weights, sha256_of
from slicerleap.registration.losses import RegistrationLossConfig
from slicerleap.models import get_catalog
from slicerleap.models.networks import load_model
from slicerleap.registration.training import (RegistrationTrainingConfig, pair_dice, tm_dca_architecture, train_registration,
                                              voxelmorph_architecture)
from slicerleap.registration.training_pairs import PairSampler, PairSamplerConfig, prepare_training_image
from slicerleap.registration.working_grid import NORMALISATION

ROOT = Path(__file__).resolve().parents[1]
SPACING_MM = 2.5
N_CLASSES = 9  # background + up to 8 synthetic labels (the brain uses 1 = GM, 2 = WM)


def model_id(arch: str, regulariser: str) -> str:
    suffix = "-implicit" if regulariser.startswith("implicit") else ""
    return f"brain-{arch}{suffix}@1.0.0"


class Identity(torch.nn.Module):
    def forward(self, moving, fixed):
        return moving, torch.zeros((1, 3) + moving.shape[2:])


def validation_pairs(image, labels):
    """Three fixed held-out deformations of the template (seed 123): the cards' validation numbers."""
    validation = PairSampler([(image, labels)], PairSamplerConfig(shape=(64, 80, 64), synthetic_fraction=0.0), seed=123)
    return [validation.sample() for _ in range(3)]


def reevaluate() -> None:
    """GM/WM Dice of every bundled registration model on the validation pairs, beside no registration."""
    image, labels = prepare_training_image(mni_t1(), mni_tissue_labels(), SPACING_MM)
    pairs = validation_pairs(image, labels)
    identity = pair_dice(Identity(), pairs, "cpu", [1, 2])
    for card in [c for c in get_catalog().cards() if c["task"] == "registration" and c["id"].startswith("brain-")]:
        card = {k: v for k, v in card.items() if not k.startswith("_")}
        net = load_model({**card, "_path": str(ROOT / "Resources" / "models" / card["file"])}, "cpu")
        card["evaluation"] = {**{k: v for k, v in card["evaluation"].items() if k not in ("val_dice_template_deformations", "best_val_dice")},
                              "val_dice_gm_wm_template_deformations": round(pair_dice(net, pairs, "cpu", [1, 2]), 4),
                              "val_dice_gm_wm_without_registration": round(identity, 4)}
        add_bundled_card(card)
        print(card["id"], card["evaluation"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", choices=["tm-dca", "voxelmorph"], default="tm-dca")
    parser.add_argument("--regulariser", default="diffusion", help="diffusion | implicit-diffusion | ...")
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--default", action="store_true", help="make this the catalog's default registration model")
    parser.add_argument("--reevaluate", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.reevaluate:
        reevaluate()
        return
    image, labels = prepare_training_image(mni_t1(), mni_tissue_labels(), SPACING_MM)
    pair_config = PairSamplerConfig(shape=(64, 80, 64), max_displacement_voxels=4.0, synthetic_fraction=0.5)
    sampler = PairSampler([(image, labels)], pair_config, seed=0)
    pairs = validation_pairs(image, labels)
    architecture = tm_dca_architecture() if args.arch == "tm-dca" else voxelmorph_architecture()
    loss = RegistrationLossConfig(regulariser=args.regulariser, regulariser_weight=1.0)
    config = RegistrationTrainingConfig(architecture=architecture, loss=loss, iterations=args.iterations, validate_every=50)
    device = select_device("auto")
    started = time.time()
    net, history = train_registration(sampler, pairs, config, device, N_CLASSES,
                                      report=lambda p, s, m, **k: print(m, flush=True))
    train_s = round(time.time() - started, 1)
    mid = model_id(args.arch, args.regulariser)
    weights = ROOT / "Resources" / "models" / (mid.replace("@", "-") + ".safetensors")
    save_weights(net, weights)
    name = "TM-DCA" if args.arch == "tm-dca" else "VoxelMorph"
    card = {
        "id": mid,
        "title": f"Generic brain MRI deformable registration ({name}, {args.regulariser} regulariser)",
        "description": (f"{name} predicting a dense displacement field between two skull-stripped T1 brain MRIs after affine "
                        f"alignment, on a {SPACING_MM} mm working grid; refine per pair with neural instance optimisation."),
        "task": "registration", "module": "RegistrationDL", "modality": "MR",
        "architecture": architecture,
        "input": {"spacing_mm": [SPACING_MM] * 3, "channels": 1, "normalisation": NORMALISATION},
        "labels": [],
        "licence": "Apache-2.0 (weights); training data: MNI ICBM152 2009a template, see nilearn's licence notice",
        "training_data": ("Pairs made from ONE real brain — the MNI ICBM152 2009a symmetric T1 template (nilearn 0.13.1 wheel), "
                          "GM/WM labels from its probability maps — each copy deformed by its own smooth random diffeomorphism "
                          f"(up to {pair_config.max_displacement_voxels * SPACING_MM:g} mm) and intensity-augmented, mixed 1:1 with "
                          "SynthMorph-style synthetic label-map images. Loss: LNCC 7^3 + "
                          f"{args.regulariser} regulariser + Dice of warped labels; {args.iterations} iterations of batch 1 "
                          "on CPU. Not trained on any other subject; not validated for clinical or research use."),
        "evaluation": {"val_dice_gm_wm_template_deformations": round(pair_dice(net, pairs, device, [1, 2]), 4),
                       "val_dice_gm_wm_without_registration": round(pair_dice(Identity(), pairs, device, [1, 2]), 4),
                       "iterations": args.iterations, "train_time_s": train_s, "device": str(device)},
        "file": weights.name,
        "sha256": sha256_of(weights),
        "default": bool(args.default),
    }
    add_bundled_card(card)
    (ROOT / "benchmarks" / f"registration_training_{mid.split('@')[0]}.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
    print(f"registered {mid}: {card['evaluation']}")


if __name__ == "__main__":
    main()
