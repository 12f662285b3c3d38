"""How the refinement of a network's field should be scheduled: Dice, field error, folding and time of
TM-DCA + refinement variants (working spacing, steps per level, LNCC window, diffusion and folding weights)
on the same pairs as registration_brains.py. The network's prediction is computed once per pair; each
variant starts from it. Results in registration_refinement_sweep.json (resumable).

    cd benchmarks && python registration_refinement_sweep.py [--seeds 1] [--variants NAME ...] [--table]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from registration_brains import HERE, MODELS, evaluate, pairs
from slicerleap.models import get_catalog
from slicerleap.models.networks import load_model
from slicerleap.registration.affine import affine_register
from slicerleap.registration.instance_optimisation import InstanceOptimisationConfig, refine_displacement
from slicerleap.registration.working_grid import ddf_on_grid, field_in_ras, working_pair

RESULTS = HERE / "registration_refinement_sweep.json"
# name: (refinement working spacing mm, steps at half resolution, steps at full, diffusion weight, LNCC window,
#        folding weight, optimise only around the images' content)
VARIANTS = {
    "2.5mm 60+10 fold10": (2.5, 60, 10, 0.5, 7, 10.0, False),
    "2.5mm 60+10 fold3": (2.5, 60, 10, 0.5, 7, 3.0, False),
    "2.5mm 60+10 fold1": (2.5, 60, 10, 0.5, 7, 1.0, False),
    "2.5mm 40+30 fold3": (2.5, 40, 30, 0.5, 7, 3.0, False),
    "2mm 60+10 fold3": (2.0, 60, 10, 0.5, 7, 3.0, False),
    "2mm 40+20 fold3": (2.0, 40, 20, 0.5, 7, 3.0, False),
    "2mm 60+10 lncc5 fold3": (2.0, 60, 10, 0.5, 5, 3.0, False),
    "2mm 60+10 crop": (2.0, 60, 10, 0.5, 7, 10.0, True),
    "2mm 50+20 crop": (2.0, 50, 20, 0.5, 7, 10.0, True),
    "2mm 40+30 crop": (2.0, 40, 30, 0.5, 7, 10.0, True),
    "2mm 40+30 crop smooth0.25": (2.0, 40, 30, 0.25, 7, 10.0, True),
    "2mm 60+10 crop smooth0.25": (2.0, 60, 10, 0.25, 7, 10.0, True),
    "2mm 30+40 crop": (2.0, 30, 40, 0.5, 7, 10.0, True),
    "2mm 60+30 crop": (2.0, 60, 30, 0.5, 7, 10.0, True),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--pairs", nargs="*", default=None)
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    if not args.table:
        torch.set_num_threads(2)
        card = get_catalog().get(MODELS["tm-dca"])
        net = load_model(card, "cpu")
        spacing = float(card["input"]["spacing_mm"][0])
        for key, (fixed, fixed_labels, moving, moving_labels, truth) in pairs(args.seeds, 8.0).items():
            if args.pairs and key not in args.pairs:
                continue
            row = results.setdefault(key, {})
            todo = [v for v in args.variants if v not in row]
            if not todo:
                continue
            affine = affine_register(fixed, moving)
            started = time.time()
            work, fixed_t, moving_t = working_pair(fixed, moving, affine, spacing, "cpu", card["input"]["normalisation"])
            with torch.no_grad():
                _, predicted = net(moving_t, fixed_t)
            network_s = time.time() - started
            for name in todo:
                refine_mm, coarse, fine, smooth, window, folding, crop = VARIANTS[name]
                started = time.time()
                grid, f, m, start = work, fixed_t, moving_t, predicted
                if refine_mm != spacing:
                    grid, f, m = working_pair(fixed, moving, affine, refine_mm, "cpu", card["input"]["normalisation"])
                    start = ddf_on_grid(predicted, work, grid)
                config = InstanceOptimisationConfig(working_spacing_mm=refine_mm, levels=2, iterations=coarse, fine_iterations=fine,
                                                    smoothness=smooth, lncc_kernel=window, folding_weight=folding,
                                                    crop_to_foreground=crop)
                field = field_in_ras(refine_displacement(f, m, config, start), grid, affine)
                seconds = network_s + time.time() - started
                row[name] = {**evaluate(field, fixed, fixed_labels, moving_labels, truth), "deformable_s": round(seconds, 2)}
                print(key, name, json.dumps({k: round(v, 3) for k, v in row[name].items()}), flush=True)
                RESULTS.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print("| pair | variant | Dice mean | field error mm | % det J <= 0 | SD log J | deformable s |\n|---|---|---|---|---|---|---|")
    for key, row in results.items():
        for name, r in row.items():
            print(f"| {key} | {name} | {r['dice']:.3f} | {r.get('field_error_mm', float('nan')):.2f} | {r['folding_percent']:.3f} | "
                  f"{r['sd_log_jacobian']:.3f} | {r['deformable_s']:.1f} |")


if __name__ == "__main__":
    main()
