"""Interactive segmentation (issue 35): Dice after each simulated click, NoC@85 / NoC@90 and seconds per click, for
the click network (brain-clicks@1.0.0, trained on the MNI template only) and the classical grow-from-clicks, on scans
neither saw in any choice of recipe:

- ITK head (real T1, 2 x 2 x 3 mm), white and grey matter (ITK's k-means classes), in 60 mm blocks centred at random
  voxels of the structure (the session runs on the block): from an empty mask, and from a pseudo-label — the bundled
  brain-tissue U-Net's output on the whole head — to correct (the pseudo-label + correction loop);
- lesions inserted in the ITK head (data/lesion_cases.py, anatomy "itk-head", 1.5 mm), the whole case, from empty,
  with the default reach (30 mm) and with 10 mm (the reach for small structures, chosen on lesion cases in the MNI
  template: 10 / 15 / 20 / 30 mm gave Dice 0.53 / 0.38 / 0.15 / 0.08 after 10 classical clicks there);
- the InVesalius head CT, bone (> 300 HU, the largest connected part), in 60 mm blocks: CT is outside the network's
  declared domain (MR), so only the classical method runs there; the network's refusal is recorded.

The simulated annotator clicks the centre of the largest error (click_simulator.py), jittered by the seed. Seeds
0, 1, 2 draw the blocks, the lesion cases and the jitter; "±" is the sample SD over seeds (ddof = 1) of the per-seed
means. A second part times one interaction through the session's worker process (the path the Slicer panel uses) on a
256^3 volume (the MNI T1 resampled), median of 10 clicks, network and classical.

    python benchmarks/interactive_clicks.py [--seeds 0 1 2] [--clicks 10]
    python benchmarks/interactive_clicks.py --add-method brain-clicks@1.1.0   # one more model, same items and seeds
    python benchmarks/interactive_clicks.py --table
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from slicerleap.data.invesalius import head_ct
from slicerleap.data.itk_examples import itk_example_brain
from slicerleap.data.lesion_cases import LESION_VALUE, make_lesion_case
from slicerleap.errors import BadInputError
from slicerleap.segmentation.interactive.click_simulator import clicks_to_reach, simulate_clicks
from slicerleap.segmentation.interactive.session import InteractiveSession
from slicerleap.segmentation.metrics import overlap_metrics

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "interactive_clicks.json"
NETWORK, CLASSICAL = "brain-clicks@1.0.0", "grow-from-clicks"
BLOCK_MM, BLOCKS = 60.0, 4
SMALL_REACH_MM = 10.0  # for small structures: chosen on MNI lesion cases (seeds 500-503), never on these scans


def blocks(volume, truth, rng, n=BLOCKS):
    """n (k, j, i) boxes of BLOCK_MM centred at random voxels of the structure at least a quarter block inside."""
    half = np.ceil(BLOCK_MM / 2 / volume.spacing[::-1]).astype(int)
    shape = np.array(truth.shape)
    candidates = np.argwhere(truth)
    candidates = candidates[np.all((candidates >= half // 2) & (candidates < shape - half // 2), axis=1)]
    out = []
    for c in candidates[rng.choice(len(candidates), n, replace=False)]:
        low, high = np.maximum(c - half, 0), np.minimum(c + half + 1, shape)
        out.append(tuple(slice(int(a), int(b)) for a, b in zip(low, high)))
    return out


def pseudo_label_itk_head(image, value: int) -> np.ndarray:
    """The bundled brain-tissue U-Net's output on the ITK head (a real pseudo-label: the model never saw this head)."""
    from slicerleap.models import get_catalog
    from slicerleap.models.networks import load_model
    from slicerleap.segmentation.inference import segment_volume

    card = get_catalog().get("brain-tissue-unet@1.0.0")
    labels, _ = segment_volume(image, card, load_model(card, "cpu"), "cpu")
    return labels.array == value


def items_for_seed(seed: int, itk, pseudo, ct):
    """(case name, start name, image Volume, truth, start mask) for one seed."""
    rng = np.random.default_rng(seed)
    image, labels = itk
    for name, value in (("ITK head white matter", 2), ("ITK head grey matter", 1)):
        truth = labels.array == value
        for region in blocks(image, truth, rng):
            yield name, "empty", image.crop(region), truth[region], None
            yield name, "pseudo-label", image.crop(region), truth[region], pseudo[value][region]
    for n in range(3):
        case, case_labels = make_lesion_case(1000 + 3 * seed + n, anatomy="itk-head")
        yield "ITK head lesions", "empty", case, case_labels.array == LESION_VALUE, None
        yield "ITK head lesions, reach 10 mm", "empty", case, case_labels.array == LESION_VALUE, None
    ct_image, bone = ct
    for region in blocks(ct_image, bone, rng):
        yield "Head CT bone", "empty", ct_image.crop(region), bone[region], None


def run_item(method, image, truth, start, clicks, rng, reach_mm=30.0):
    try:
        session = InteractiveSession(image, model=method, initial_mask=start, reach_mm=reach_mm)
    except BadInputError as exc:
        return {"refused": exc.problem}
    scores = simulate_clicks(session, truth, clicks, rng)
    return {"dice": scores, "seconds": [h.seconds for h in session.history],
            "start_dice": None if start is None else overlap_metrics(start, truth)["dice"]}


def accuracy(seeds, clicks, methods=(CLASSICAL, NETWORK)) -> list[dict]:
    image, labels = itk_example_brain()
    pseudo = {v: pseudo_label_itk_head(image, v) for v in (1, 2)}
    ct_image = head_ct()
    parts, _ = ndimage.label(ct_image.array > 300)
    bone = parts == np.argmax(np.bincount(parts.ravel())[1:]) + 1
    rows = []
    for seed in seeds:
        for n, (case, start_name, volume, truth, start) in enumerate(items_for_seed(seed, (image, labels), pseudo, (ct_image, bone))):
            for method in methods:
                started = time.time()
                row = {"seed": seed, "item": n, "case": case, "start": start_name, "method": method,
                       **run_item(method, volume, truth, start, clicks, np.random.default_rng([seed, n]),
                                  SMALL_REACH_MM if case.endswith(f"reach {SMALL_REACH_MM:g} mm") else 30.0)}
                rows.append(row)
                print(f"seed {seed} {case} ({start_name}) {method}: "
                      + (f"refused ({row['refused'][:60]}...)" if "refused" in row else
                         f"Dice@1 {row['dice'][0]:.3f} @5 {row['dice'][4]:.3f} @{clicks} {row['dice'][-1]:.3f}") +
                      f" [{time.time() - started:.1f} s]", flush=True)
    return rows


def latency(repeats: int = 10, methods=(CLASSICAL, NETWORK)) -> dict:
    """Seconds per interaction through the worker process on a 256^3 MR volume (median of `repeats` clicks)."""
    from slicerleap.data import mni_t1
    from slicerleap.jobs.interactive_process import InteractiveSessionProcess
    from slicerleap.transforms import resample_to_spacing

    t1 = mni_t1()
    extent = np.array(t1.shape_ijk) * t1.spacing
    big = resample_to_spacing(t1.with_array(t1.array.astype(np.float32)), extent / 256.0, "linear")
    big = big.with_array(big.array[:256, :256, :256])
    rng = np.random.default_rng(0)
    brain = np.argwhere(big.array > np.percentile(big.array, 70))
    out = {"shape": list(big.array.shape), "spacing_mm": [round(float(s), 3) for s in big.spacing]}
    for method in methods:
        with InteractiveSessionProcess(big, model=method) as session:
            round_trips, computes = [], []
            for kji in brain[rng.choice(len(brain), repeats, replace=False)]:
                started = time.perf_counter()
                session.add_point(big.ijk_to_ras_points([kji[::-1]])[0], positive=bool(rng.random() < 0.7))
                round_trips.append(time.perf_counter() - started)
                computes.append(session.last_seconds)
        out[method] = {"round_trip_s_median": round(float(np.median(round_trips)), 3), "round_trip_s_max": round(max(round_trips), 3),
                       "worker_compute_s_median": round(float(np.median(computes)), 3)}
        print(method, out[method], flush=True)
    return out


def table(results: dict) -> str:
    rows = [r for r in results["rows"] if "dice" in r]
    lines = ["| structure (start) | method | Dice @1 | @3 | @5 | @10 | NoC@85 | NoC@90 | s / click |", "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["case"], r["start"]) for r in results["rows"]}, key=lambda k: (k[0], k[1] != "empty"))
    methods = sorted({r["method"] for r in results["rows"]}, key=lambda m: (m == CLASSICAL, m))
    for case, start in keys:
        for method in methods:
            mine = [r for r in rows if r["case"] == case and r["start"] == start and r["method"] == method]
            if not mine:
                refused = [r for r in results["rows"] if r["case"] == case and r["method"] == method and "refused" in r]
                if refused:
                    lines.append(f"| {case} ({start}) | {method} | refused: outside its domain (CT) | | | | | | |")
                continue
            seeds = sorted({r["seed"] for r in mine})

            def stat(f):
                per_seed = [np.mean([f(r) for r in mine if r["seed"] == s]) for s in seeds]
                sd = np.std(per_seed, ddof=1) if len(per_seed) > 1 else float("nan")
                return f"{np.mean(per_seed):.3f} ± {sd:.3f}"
            cells = [stat(lambda r, k=k: r["dice"][k - 1]) for k in (1, 3, 5, 10)]
            cells += [stat(lambda r: clicks_to_reach(r["dice"], 0.85)), stat(lambda r: clicks_to_reach(r["dice"], 0.90))]
            cells.append(stat(lambda r: np.mean(r["seconds"])))
            starting = [r["start_dice"] for r in mine if r["start_dice"] is not None]
            label = f"{case} ({start}{f', Dice {np.mean(starting):.3f} before clicks' if starting else ''})"
            lines.append(f"| {label} | {method} | " + " | ".join(cells) + " |")
    n = {r["seed"] for r in results["rows"]}
    lines.append(f"\n{len(n)} seeds; NoC = {results['clicks'] + 1} when never reached. Latency on "
                 f"{'x'.join(map(str, results['latency']['shape']))} voxels through the worker process: "
                 + "; ".join(f"{m} {results['latency'][m]['round_trip_s_median']} s median round trip "
                             f"({results['latency'][m]['worker_compute_s_median']} s in the worker)" for m in methods if m in results['latency']))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--latency-only", action="store_true", help="time the worker again, keep the click curves")
    parser.add_argument("--add-method", default=None, help="run one more model (catalog id) on the same items and add its rows")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(RESULTS.read_text(encoding="utf-8"))))
        return
    import torch

    torch.set_num_threads(1)
    if args.latency_only:
        results = json.loads(RESULTS.read_text(encoding="utf-8"))
        results["latency"] = latency()
    elif args.add_method:
        results = json.loads(RESULTS.read_text(encoding="utf-8"))
        results["rows"] = [r for r in results["rows"] if r["method"] != args.add_method]
        results["rows"] += accuracy(args.seeds, args.clicks, methods=(args.add_method,))
        results["latency"].update(latency(methods=(args.add_method,)))
        results.setdefault("added", []).append(f"python benchmarks/interactive_clicks.py --add-method {args.add_method}")
    else:
        results = {"command": f"python benchmarks/interactive_clicks.py --seeds {' '.join(map(str, args.seeds))} --clicks {args.clicks}",
                   "clicks": args.clicks, "threads": "click curves: 1 thread in this process; latency: the worker's default (all cores)",
                   "rows": accuracy(args.seeds, args.clicks), "latency": None}
        RESULTS.write_text(json.dumps(results, indent=1), encoding="utf-8")  # the curves are kept even if timing fails
        results["latency"] = latency()
    RESULTS.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(table(results))


if __name__ == "__main__":
    main()
