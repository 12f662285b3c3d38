"""Why FedICRA trails FedAvg here: its network and loss terms trained at each site alone (no federation), same
sites, data, seeds, step budget and poly-decayed rate as `federated_sites.py`'s local-only rows (issue 7).

Variants (each site trains alone, rounds x local iterations, optimiser restarted every round):
  unet-dicece     — the federation's MONAI 2.5D U-Net with Dice + CE (= federated_sites.py's local-only);
  icra-pce        — FedICRA's SCR U-Net (site code = the site), partial CE only;
  icra-pce-gcrf   — + 0.1 gated CRF;
  icra-paper      — + 1.0 site-code contrast L_con (the paper's full loss, what the federation trains with);
  icra-pdice      — pCE + 0.1 gCRF + partial Dice on labelled pixels (not the paper's; an option under test);
  icra-net-dicece — FedICRA's SCR U-Net trained exactly as unet-dicece (the federation's Dice + CE round): the
                    network alone, apart from the loss.
Labels: `--label-kind` at every site (full masks by default, as in the federated rows), simulated from the masks.
`--norm`: every network's normalisation layers (runs before 2026-12-05 were instance norm).

    cd benchmarks && python fedicra_local_ablation.py --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from federated_sites import SETTINGS, build_sites, run_local_fedicra, run_local_only, save_run
from slicerleap.federated import run_config as rc
from slicerleap.federated.fedicra.training import PAPER_WEIGHTS

VARIANTS = {
    "icra-pce": {"pce": 1.0},
    "icra-pce-gcrf": {"pce": 1.0, "gcrf": 0.1},
    "icra-paper": PAPER_WEIGHTS,
    "icra-pdice": {"pce": 1.0, "gcrf": 0.1, "pdice": 1.0},
    "icra-net-dicece": None,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--local-iterations", type=int, default=40)
    ap.add_argument("--label-kind", default="full", choices=["point", "scribble", "box", "full"])
    ap.add_argument("--norm", default="batch", choices=["batch", "instance"], help="every network's normalisation layers")
    ap.add_argument("--variants", nargs="+", default=["unet-dicece", *VARIANTS])
    ap.add_argument("--results", default=str(Path(__file__).with_name("fedicra_local_ablation.json")))
    args = ap.parse_args()
    path = Path(args.results)
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"runs": []}
    done = {(r["seed"], r["variant"], r["label_kind"], r.get("norm", "instance")) for r in results["runs"]}
    for seed in args.seeds:
        s = rc.settings({**SETTINGS, "num-server-rounds": args.rounds, "local-iterations": args.local_iterations, "seed": seed,
                                   "norm": args.norm})
        with tempfile.TemporaryDirectory(prefix="fedicra-ablation-") as tmp:
            folders, tests = build_sites(Path(tmp), 4, 2, first_seed=2000 + 100 * seed)  # federated_sites.py's sites
            for variant in args.variants:
                if (seed, variant, args.label_kind, args.norm) in done:
                    continue
                record = run_local_only(folders, tests, s, seed) if variant == "unet-dicece" else \
                    run_local_fedicra(folders, tests, s, seed, [args.label_kind] * len(folders), VARIANTS[variant])
                record.update(seed=seed, variant=variant, label_kind=args.label_kind, norm=args.norm, mean_dice=float(np.mean(record["site_dice"])))
                save_run(path, results, record, f"seed {seed} {variant:14s}")
    print(markdown_table(results))


def markdown_table(results: dict) -> str:
    rows = ["| norm | variant | labels | site 0 | site 1 (gamma) | site 2 (3 mm) | mean Dice | seeds |", "|---|---|---|---|---|---|---|---|"]
    key = lambda r: (r.get("norm", "instance"), r["label_kind"], r["variant"])
    for norm, kind, variant in sorted({key(r) for r in results["runs"]}):
        runs = [r for r in results["runs"] if key(r) == (norm, kind, variant)]
        sites = np.array([r["site_dice"] for r in runs])
        means = sites.mean(1)
        cells = [f"{m:.3f} ± {sd:.3f}" for m, sd in zip(sites.mean(0), sites.std(0))]
        rows.append(f"| {norm} | {variant} | {kind} | {' | '.join(cells)} | {means.mean():.3f} ± {means.std(ddof=1):.3f} | {len(runs)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
