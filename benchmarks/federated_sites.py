"""Federated vs local-only training across three non-IID sites on real anatomy (issue 7 evidence).

Task: white-matter segmentation. Data: `slicerleap.data.lesion_cases.make_tissue_case` (randomly warped
copies of the real MNI ICBM152 T1 with scanner variation; labels from the warped template's own WM
probability map). Three sites with different "scanners":
  site 0 — as generated;
  site 1 — another contrast response: intensities through gamma 1.8 and twice the noise;
  site 2 — thick slices: 3 mm instead of 1.5 mm along the axial axis (images linear, labels nearest).
Each site keeps `--train` cases in its own folder (the last quarter of them validate, as in every
site's ClientApp) and `--test` held-out cases the federation never sees.

Methods (the 2.5D MONAI U-Net, FedICRA's methods its SCR U-Net; both batch-normalised unless `--norm`), same recipe (slicerleap.federated.local_round), same number of optimiser
steps per site (rounds x local iterations, the optimiser restarted each round in every method, its rate decayed
over the rounds as poly 0.9, `--lr-power`; 0 gives the constant rate of the first runs):
  local-only — each site trains alone on its cases;
  local-weak — each site trains FedICRA's network alone with FedICRA's loss on its own sparse labels (`--label-kinds`),
  the paper's "local training (weak)";
  FedAvg, FedProx (mu 0.01) — a real Flower federation on loopback (SuperLink + one SuperNode process per
  site, TLS, registered site keys), the global model scored on every site's test cases.
Reported per method: Dice per site (mean over its test cases, 3D on the slice grid), mean over sites,
rounds until the validation Dice reached 90 % of its final value, bytes per round, wall time.

    cd benchmarks && python federated_sites.py --seeds 0 1 2 --rounds 6 --local-iterations 40 \
        --methods local-only fedavg fedprox fedicra --results federated_results_bn.json
    cd benchmarks && python federated_sites.py --seeds 0 1 2 --methods local-weak fedicra \
        --label-kinds scribble point scribble --results federated_results_bn.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from slicerleap.data.lesion_cases import make_tissue_case
from slicerleap.federated import run_config as rc
from slicerleap.federated.fedicra.training import PAPER_WEIGHTS, sparsify, train_fedicra_round
from slicerleap.federated.local_federation import run_local_federation
from slicerleap.federated.local_round import train_local_round
from slicerleap.federated.site_data import load_site_cases, split_validation
from slicerleap.io import write_volume
from slicerleap.models.networks import build_network
from slicerleap.segmentation.slice_training import mean_dice
from slicerleap.transforms import resample_to_spacing

# CPU-sized: 2 mm slices in-plane, 64 px crops (the recipe is the same for every method)
SETTINGS = {"in-plane-spacing": 2.0, "crop": 64}


def site_scan(site: int, image, mask):
    """The site's scanner applied to a generated case (see the module docstring)."""
    if site == 1:
        a = image.array / np.percentile(image.array, 99.5)
        rng = np.random.default_rng(int(image.array.size) % 1000)
        image = image.with_array((np.clip(a, 0, None) ** 1.8 * 220 + rng.normal(0, 6.0, a.shape)).astype(np.float32))
    if site == 2:
        spacing = [image.spacing[0], image.spacing[1], 3.0]
        image, mask = resample_to_spacing(image, spacing, "linear"), resample_to_spacing(mask, spacing, "nearest")
    return image, mask


def build_sites(root: Path, n_train: int, n_test: int, first_seed: int) -> tuple[list[Path], list[list]]:
    """Site folders (images/, labels/) and each site's held-out (image, mask) test volumes."""
    folders, tests, seed = [], [], first_seed
    for site in range(3):
        folder = root / f"site{site}"
        test = []
        for n in range(n_train + n_test):
            image, mask = site_scan(site, *make_tissue_case(seed))
            seed += 1
            if n < n_train:
                write_volume(image, folder / "images" / f"case{n:02d}.nrrd")
                write_volume(mask, folder / "labels" / f"case{n:02d}.nrrd")
            else:
                test.append((image, mask))
        folders.append(folder)
        tests.append(test)
    return folders, tests


def test_dice(net, tests: list, s: dict) -> list[float]:
    from slicerleap.segmentation.slice_data import prepare_case

    spec = rc.input_spec(s)
    return [mean_dice(net, [prepare_case(image, spec, mask) for image, mask in site_tests], "cpu", s["context"]) for site_tests in tests]


def rounds_to_90(validation_dice: list[float]) -> int | None:
    """First round whose mean validation Dice reaches 90 % of the best round's (round 0 = initial weights)."""
    if not validation_dice:
        return None
    best = max(validation_dice)
    return next(r for r, d in enumerate(validation_dice) if d >= 0.9 * best)


def run_local_only(folders, tests, s: dict, seed: int) -> dict:
    started = time.time()
    per_site = []
    for site, folder in enumerate(folders):
        train, _ = split_validation(load_site_cases(folder, rc.input_spec(s)))
        torch.manual_seed(s["seed"])
        net = build_network(rc.training_config(s).architecture())
        for r in range(s["num-server-rounds"]):
            train_local_round(net, train, rc.training_config(s, r + 1), "cpu", s["local-iterations"], np.random.default_rng([seed, site, r + 1]))
        per_site.append(test_dice(net, [tests[site]], s)[0])
    return {"site_dice": per_site, "wall_s": time.time() - started}


def run_local_fedicra(folders, tests, s: dict, seed: int, label_kinds: list[str], weights: dict | None = PAPER_WEIGHTS) -> dict:
    """Each site trains FedICRA's network alone, rounds x local iterations as in the federation: with the weighted
    FedICRA terms on its own sparse labels, or (weights None) with the federation's Dice + CE round on full masks."""
    started = time.time()
    per_site = []
    s = {**s, "strategy": "fedicra", "sites": len(folders)}
    for site, folder in enumerate(folders):
        train, _ = split_validation(load_site_cases(folder, rc.input_spec(s)))
        sparse = [sparsify(c, label_kinds[site], np.random.default_rng([s["seed"], site])) for c in train]
        torch.manual_seed(s["seed"])
        net = build_network(rc.architecture(s, site))
        for r in range(s["num-server-rounds"]):
            rng = np.random.default_rng([seed, site, r + 1])
            if weights is None:
                train_local_round(net, train, rc.training_config(s, r + 1), "cpu", s["local-iterations"], rng)
            else:
                train_fedicra_round(net, sparse, site, rc.training_config(s, r + 1), "cpu", s["local-iterations"], rng, weights)
        per_site.append(test_dice(net, [tests[site]], s)[0])
    return {"site_dice": per_site, "wall_s": time.time() - started, "label_kinds": label_kinds}


def run_federated(folders, tests, s: dict, strategy: str, workdir: Path, label_kinds: list[str] | None = None) -> dict:
    """A Flower federation; FedAvg/FedProx score the global model on every site's tests, FedICRA each site's own
    personalised model (its site code and adaptively aggregated decoder) on that site's tests."""
    from safetensors.torch import load_file

    started = time.time()
    config = {k: v for k, v in s.items() if k != "out-dir"}
    model_dirs = [workdir / f"site{n}-model" for n in range(len(folders))] if strategy == "fedicra" else None
    result = run_local_federation(folders, workdir / "out", {**config, "strategy": strategy}, workdir=workdir / "work",
                                  audit=False, threads_per_site=1, timeout=6 * 3600, label_kinds=label_kinds, model_dirs=model_dirs)
    if strategy == "fedicra":
        dice = []
        for site, folder in enumerate(model_dirs):
            net = build_network(json.loads((folder / "card.json").read_text(encoding="utf-8"))["architecture"])
            net.load_state_dict(load_file(str(folder / "model.safetensors")))
            dice.append(test_dice(net, [tests[site]], s)[0])
    else:
        net = build_network(rc.training_config(s).architecture())
        net.load_state_dict(load_file(str(result["weights"])))
        dice = test_dice(net, tests, s)
    rounds = result["rounds"]
    failures = [f for r in rounds for f in r["failures"]]
    if failures:  # a site left out of a round would make the comparison unfair
        raise RuntimeError(f"{len(failures)} failed site replies, e.g. {failures[0]}")
    per_round_bytes = [r["bytes_up"] + r["bytes_down"] for r in rounds if r["phase"] == "train"]
    validation = [r["mean_dice"] for r in rounds if r["phase"] == "evaluate"]
    return {"site_dice": dice, "wall_s": time.time() - started, "bytes_per_round": int(np.mean(per_round_bytes)),
            "validation_dice_by_round": validation, **({"label_kinds": label_kinds} if label_kinds else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train", type=int, default=4)
    ap.add_argument("--test", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--local-iterations", type=int, default=40)
    ap.add_argument("--methods", nargs="+", default=["local-only", "fedavg", "fedprox"],
                    help="also: fedicra (personalised), local-weak (FedICRA's network and loss, each site alone); "
                         "both with each site's label kind from --label-kinds")
    ap.add_argument("--label-kinds", nargs=3, default=["full", "full", "full"], choices=["point", "scribble", "box", "full"],
                    help="fedicra, local-weak: the sparse labels each site has, simulated from its masks")
    ap.add_argument("--norm", default=rc.DEFAULTS["norm"], choices=list(rc.NORMS),
                    help="every network's normalisation layers (runs before 2026-12-05: instance)")
    ap.add_argument("--lr-power", type=float, default=rc.DEFAULTS["lr-power"],
                    help="poly decay of the local learning rate over the rounds (0: constant, as the first runs)")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="further run config for every method (e.g. aa-from-round=99: FedICRA without adaptive aggregation)")
    ap.add_argument("--results", default=str(Path(__file__).with_name("federated_results.json")))
    args = ap.parse_args()
    path = Path(args.results)
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"runs": []}
    done = {(r["seed"], method_name(r)) for r in results["runs"]}
    overrides = dict(pair.split("=", 1) for pair in args.set)
    for seed in args.seeds:
        s = rc.settings({**SETTINGS, "num-server-rounds": args.rounds, "local-iterations": args.local_iterations, "seed": seed,
                                     "lr-power": args.lr_power, "norm": args.norm, **overrides})
        with tempfile.TemporaryDirectory(prefix="fed-bench-") as tmp:
            folders, tests = build_sites(Path(tmp), args.train, args.test, first_seed=2000 + 100 * seed)
            for method in args.methods:
                weak = method in ("fedicra", "local-weak")
                if (seed, method_name({"method": method, "norm": rc.network_norm(s), "settings": overrides,
                                       **({"label_kinds": args.label_kinds} if weak else {})})) in done:
                    continue
                if method == "local-only":
                    record = run_local_only(folders, tests, s, seed)
                elif method == "local-weak":
                    record = run_local_fedicra(folders, tests, s, seed, args.label_kinds)
                else:
                    record = run_federated(folders, tests, s, method, Path(tmp) / method, args.label_kinds if weak else None)
                record.update(seed=seed, method=method, mean_dice=float(np.mean(record["site_dice"])), norm=rc.network_norm(s), settings=overrides,
                              rounds=args.rounds, local_iterations=args.local_iterations, lr_power=s["lr-power"])
                save_run(path, results, record, f"seed {seed} {method:10s}")
    print(markdown_table(results))


def save_run(path: Path, results: dict, record: dict, label: str) -> None:
    """Append a finished run to the results file at once (the script resumes after an interruption) and print it."""
    results["runs"].append(record)
    path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"{label} Dice per site {np.round(record['site_dice'], 3).tolist()} mean {record['mean_dice']:.3f} "
          f"({record['wall_s']:.0f} s)", flush=True)


def method_name(record: dict) -> str:
    """The method with its sites' label kinds where they vary, and the normalisation unless batch norm (the runs before
    2026-12-05 have no "norm": instance): "fedicra (scribble, point, box)", "fedavg [instance norm]"."""
    name = f"{record['method']} ({', '.join(record['label_kinds'])})" if record.get("label_kinds") else record["method"]
    name += "".join(f" {k}={v}" for k, v in sorted(record.get("settings", {}).items()))
    norm = record.get("norm", "instance")
    return name if norm == "batch" else f"{name} [{norm} norm]"


def markdown_table(results: dict) -> str:
    lines = ["| method | site 0 Dice | site 1 Dice (gamma) | site 2 Dice (3 mm) | mean Dice | rounds to 90 % of best | MB per round (3 sites, both ways) | wall s | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    order = ["local-only", "local-weak", "fedavg", "fedprox", "fedicra"]
    methods = sorted({method_name(r) for r in results["runs"]}, key=lambda name: (order.index(name.split()[0]), name))
    for method in methods:
        runs = [r for r in results["runs"] if method_name(r) == method]
        if not runs:
            continue
        site = np.array([r["site_dice"] for r in runs])
        cells = [f"{site[:, n].mean():.3f} ± {site[:, n].std(ddof=1):.3f}" for n in range(site.shape[1])]
        mean = np.array([r["mean_dice"] for r in runs])
        r90 = [rounds_to_90(r["validation_dice_by_round"]) for r in runs if r.get("validation_dice_by_round")]
        mb = [r["bytes_per_round"] / 2**20 for r in runs if r.get("bytes_per_round")]
        lines.append(f"| {method} | {' | '.join(cells)} | {mean.mean():.3f} ± {mean.std(ddof=1):.3f} | "
                     f"{np.mean(r90):.1f} | {np.mean(mb):.2f} | {np.mean([r['wall_s'] for r in runs]):.0f} | {len(runs)} |"
                     if r90 else f"| {method} | {' | '.join(cells)} | {mean.mean():.3f} ± {mean.std(ddof=1):.3f} | – | – | "
                     f"{np.mean([r['wall_s'] for r in runs]):.0f} | {len(runs)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
