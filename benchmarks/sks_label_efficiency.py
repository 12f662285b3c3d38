"""Label-efficient lesion segmentation on real anatomy: SKS vs a MONAI U-Net trained on the same few
pixel-labelled cases, plus the paper's three ablations (METHODS.md §1, Table 1).

Data: `slicerleap.data.lesion_cases` (synthetic lesions in the real MNI ICBM152 T1, per-case warps and
intensity changes). Cases 0..39 form the training pool: all 40 have slice-level labels ("lesion in this
slice"), the first P of a seed-shuffled order also have pixel labels. Cases 40..47 are held out for
testing only (the paper's 8 validation scans were also its test scans; here they are separate and no
model is selected on them). With --val V, cases 48..48+V-1 carry pixel labels for validation: every model
keeps the weights with the best validation Dice (checked every --eval-every iterations), as the
teacher–student benchmark does; without it every run keeps its last weights. With --val-both-polarities the
validation cases are the first after the test cases that together hold dark and bright lesions in equal
numbers of cases (chosen from the cases' own lesion descriptions, before any model runs): validation cases
with bright lesions only, which no model found, picked weights among near-zero scores.
With --itk-test N, N more test cases have their lesions in a second real brain (ITK's example head:
another subject, scanner and resolution; `lesion_cases.py`) that no training or validation case shows;
their metrics are recorded apart ("test_itk") as well as in the mean over all test cases.

Stage 1 (the coarse branch on slice labels) runs once per seed and is shared by SKS and the ablations
that keep the branch; stage 2 runs per model with identical slices, crops, augmentation, loss and steps,
each architecture at its own learning rate (SliceTrainingConfig.lr: 5e-4 for the Swin V2 SKS variants,
2e-3 for the CNN U-Net; each rate fits a single batch, the other rate made SKS stall).
Metrics per test case in 3D at the model's grid (Dice, Jaccard, precision, recall), mean over cases,
then mean ± sd over seeds. Results are appended to a JSON file as runs finish, so it resumes.

    python benchmarks/sks_label_efficiency.py --seeds 0 1 2 --pixel-cases 4 8
"""
from __future__ import annotations

import argparse
import copy
from dataclasses import replace
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from slicerleap.data.lesion_cases import LESION_VALUE, make_lesion_case
from slicerleap.json_files import write_json_atomically
from slicerleap.mixed_precision import PRECISIONS
from slicerleap.models.networks import build_network
from slicerleap.segmentation.metrics import overlap_metrics
from slicerleap.models.weights import save_weights
from slicerleap.segmentation.inference import predict_case
from slicerleap.segmentation.sks.lesion_polarity import lesion_polarities
from slicerleap.segmentation.sks.trainer import train_coarse_branch, train_segmenter
from slicerleap.segmentation.slice_data import neighbour_stack, prepare_case, slice_input_spec
from slicerleap.segmentation.slice_training import LOSSES, SliceTrainingConfig

SPEC = slice_input_spec(1.5)
MODELS = {"SKS": ("sks", {}), "U-Net": ("unet", {}), "SKS w/o coarse-grain branch": ("sks", {"coarse_branch": False}),
          "SKS w/o prompt skip": ("sks", {"prompt_skip": False}), "SKS w/o RCS": ("sks", {"rcs": False}),
          "SKS with mirrored lesion copies": ("sks", {})}
TRAINING = {"SKS with mirrored lesion copies": {"mirrored_lesion_copies": True}}  # not in the paper: sks/lesion_polarity.py
PAPER = {"SKS": (0.549, 0.456, 0.542, 0.580), "U-Net": (0.489, 0.379, 0.678, 0.451),
         "SKS w/o coarse-grain branch": (0.420, 0.311, 0.686, 0.347), "SKS w/o prompt skip": (0.505, 0.379, 0.728, 0.447),
         "SKS w/o RCS": (0.467, 0.331, 0.400, 0.672)}


def pool_order(seed: int, n_pool: int) -> np.ndarray:
    """The pool cases in the order a seed gives them pixel labels: the first P of it are the P pixel-labelled cases."""
    return np.random.default_rng(1000 + seed).permutation(n_pool)


def lesion_case(seed: int, anatomy: str = "mni", with_polarities: bool = False):
    image, labels = make_lesion_case(seed, anatomy=anatomy)
    lesion = labels.with_array((labels.array == LESION_VALUE).astype(np.uint8))
    case = prepare_case(image, SPEC, lesion)  # pixel labels kept; hidden below where not given
    return (case, {lesion["polarity"] for lesion in labels.metadata["lesions"]}) if with_polarities else case


def load_cohort(n_pool: int, n_test: int, n_val: int = 0, val_both_polarities: bool = False, n_itk_test: int = 0):
    """(pool, test, validation, ITK-head test) cases: MNI seeds 0..n_pool-1, then n_test, then the validation cases
    (test seeds do not move with n_val); ITK-head seeds 0..n_itk_test-1."""
    pool = [lesion_case(seed) for seed in range(n_pool)]
    test = [lesion_case(seed) for seed in range(n_pool, n_pool + n_test)]
    val, seed, per_polarity = [], n_pool + n_test, {"hypo": 0, "hyper": 0}
    while len(val) < n_val:
        case, polarities = lesion_case(seed, with_polarities=True)
        seed += 1
        needed = {p for p in polarities if per_polarity[p] < n_val / 2}
        if val_both_polarities and not needed:
            continue
        val.append(case)
        for p in polarities:
            per_polarity[p] += 1
    return pool, test, val, [lesion_case(seed, "itk-head") for seed in range(n_itk_test)]


def as_slice_labelled(case):
    weak = copy.copy(case)
    weak.slice_labels, weak.labels = case.slice_targets(), None
    return weak


def evaluate(net, cases, device) -> dict:
    """Mean overlap metrics over the cases, and how many hypo-/hyper-intense lesions were found (> 10 % of their voxels)."""
    per_case, found = [], {"hypo": [0, 0], "hyper": [0, 0]}
    for c in cases:
        predicted, truth = predict_case(net, c, device).argmax(0) > 0, c.labels > 0
        per_case.append(overlap_metrics(predicted, truth))
        for mask, polarity in lesion_polarities(c.image, truth):
            found[polarity][0] += int(predicted[mask].mean() > 0.1)
            found[polarity][1] += 1
    return {**{k: float(np.mean([m[k] for m in per_case])) for k in per_case[0]}, "lesions_found": found}


def weights_tag(name: str, seed: int, pixel_cases: int) -> str:
    return f"{name.replace(' ', '_').replace('/', '')}_seed{seed}_p{pixel_cases}"


def rescore(results_path: Path, models_dir: str, test, device) -> None:
    """Evaluate again, with today's metrics, every recorded run whose saved weights exist but whose record lacks one."""
    for record in json.loads(results_path.read_text(encoding="utf-8"))["runs"]:
        tag = Path(models_dir) / weights_tag(record["model"], record["seed"], record["pixel_cases"])
        if "lesions_found" in record or not tag.with_suffix(".json").exists():
            continue
        config = SliceTrainingConfig(**json.loads(tag.with_suffix(".json").read_text(encoding="utf-8")))
        net = build_network(config.architecture()).to(device)
        net.load_state_dict(load_file(str(tag.with_suffix(".safetensors")), device=str(device)))
        scores = evaluate(net.eval(), test, device)
        if abs(scores["dice"] - record["dice"]) > 1e-4:  # other weights than the recorded run's: leave the record alone
            print(f"{tag.name}: Dice {scores['dice']:.4f} differs from the recorded {record['dice']:.4f}; not rescored", flush=True)
            continue
        save_run(results_path, {**record, "lesions_found": scores["lesions_found"]}, {})
        print(f"{tag.name}: lesions found {scores['lesions_found']}", flush=True)


def stage1_scores(net, cases, device) -> dict:
    """The coarse branch on held-out whole slices: accuracy at logit 0, the share of lesion-free slices (what always
    answering "no lesion" scores), and ROC AUC — whether its logits rank lesion slices first, whatever their offset."""
    from monai.metrics import compute_roc_auc

    logits, truth = [], []
    with torch.inference_mode():
        for c in cases:
            for start in range(0, c.image.shape[0], 16):
                ks = np.arange(start, min(c.image.shape[0], start + 16))
                logits += list(net.classify(torch.from_numpy(neighbour_stack(c.image, ks)).float().to(device)).float().cpu().numpy())
                truth += list(c.slice_targets()[ks] > 0)
    logits, truth = np.array(logits), np.array(truth)
    auc = float(compute_roc_auc(torch.from_numpy(logits), torch.from_numpy(truth.astype(np.float32)))) if 0 < truth.sum() < truth.size else None
    return {"test_slice_accuracy": float(np.mean((logits > 0) == truth)), "lesion_free_share": float(np.mean(~truth)), "test_slice_auc": auc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pixel-cases", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--pool", type=int, default=40)
    ap.add_argument("--test", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--coarse-iterations", type=int, default=300)
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--loss", default="dice_ce", choices=LOSSES)
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS, help="training precision (mixed_precision_training.py)")
    ap.add_argument("--lesion-fraction", type=float, default=0.6, help="share of training slices drawn from lesion slices")
    ap.add_argument("--val", type=int, default=0, help="pixel-labelled validation cases after the test cases (best weights kept)")
    ap.add_argument("--val-both-polarities", action="store_true", help="validation cases hold dark and bright lesions alike")
    ap.add_argument("--itk-test", type=int, default=0, help="test cases with lesions in ITK's example head (unseen anatomy)")
    ap.add_argument("--eval-every", type=int, default=100, help="iterations between validations (and progress records)")
    ap.add_argument("--conv-norm", default="instance", choices=("instance", "batch"),
                    help="normalisation of the convolutions: the U-Net's, and SKS's full-resolution stem and refine blocks")
    ap.add_argument("--results", default=str(Path(__file__).with_name("sks_results.json")))
    ap.add_argument("--save-models", default="/tmp/sks_benchmark_models", help="weights of every run go here")
    ap.add_argument("--table", action="store_true", help="only print the results file's table")
    ap.add_argument("--rescore", action="store_true", help="only evaluate saved runs again where their record lacks a metric")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results_path = Path(args.results)
    results = json.loads(results_path.read_text(encoding="utf-8")) if results_path.exists() else {"runs": []}
    if args.table:
        return print(markdown_table(results))
    done = {(r["seed"], r["pixel_cases"], r["model"]) for r in results["runs"]}
    started = time.time()

    def progress(fraction, message, record=None):  # a long run shows its loss and validation Dice as it goes
        print(f"[{time.time() - started:7.0f} s]   {message}", flush=True)

    pool, test, val, itk_test = load_cohort(args.pool, args.test, args.val, args.val_both_polarities, args.itk_test)
    if args.rescore:
        return rescore(results_path, args.save_models, test, device)
    print(f"cohort ready in {time.time() - started:.0f} s: {len(pool)} pool + {len(test)} test + {len(val)} validation cases, "
          f"+ {len(itk_test)} ITK-head test cases, slice grid {pool[0].image.shape}", flush=True)
    base = dict(crop=args.crop, iterations=args.iterations, coarse_iterations=args.coarse_iterations, iterations_per_epoch=args.eval_every,
                loss=args.loss, lesion_fraction=args.lesion_fraction, precision=args.precision, unet_norm=args.conv_norm)
    for seed in args.seeds:
        order = pool_order(seed, len(pool))
        coarse_net = None
        for p in args.pixel_cases:
            pixel = [pool[i] for i in order[:p]]
            weak = [as_slice_labelled(pool[i]) for i in order[p:]]
            for name in args.models:
                if (seed, p, name) in done:
                    continue
                kind, switches = MODELS[name]
                config = SliceTrainingConfig(model=kind, sks={**switches, "conv_norm": args.conv_norm}, seed=seed, **base,
                                             **TRAINING.get(name, {}))
                torch.manual_seed(seed)
                net = build_network(config.architecture()).to(device)
                t0 = time.time()
                record = {"seed": seed, "pixel_cases": p, "model": name, "loss": args.loss, "iterations": args.iterations,
                          "crop": args.crop, "lesion_fraction": args.lesion_fraction, "precision": args.precision,
                          "val_cases": args.val, "conv_norm": args.conv_norm}
                if args.val_both_polarities or itk_test:
                    record.update(val_both_polarities=args.val_both_polarities, itk_test_cases=len(itk_test))
                if kind == "sks" and switches.get("coarse_branch", True):
                    if coarse_net is None:  # stage 1 once per seed: slice labels of all pool cases (the same for every P)
                        coarse_net = build_network(replace(config, sks={"conv_norm": args.conv_norm}).architecture()).to(device)
                        saved = Path(args.save_models) / f"stage1_seed{seed}_{args.coarse_iterations}it_{args.conv_norm}_{args.precision}.safetensors"
                        if saved.exists():  # a later invocation of the same command (other P) reuses it
                            coarse_net.load_state_dict(load_file(str(saved), device=str(device)))
                        else:
                            train_coarse_branch(coarse_net, pixel + weak, config, device, progress)
                            saved.parent.mkdir(parents=True, exist_ok=True)
                            save_weights(coarse_net, str(saved))
                        scores = stage1_scores(coarse_net.eval(), test, device)
                        if itk_test:
                            scores["itk"] = stage1_scores(coarse_net, itk_test, device)
                        results.setdefault("stage1", {})[str(seed)] = scores
                        results = save_stage1(results_path, seed, scores)  # recorded now: a run can take an hour
                        print(f"seed {seed} stage 1 on held-out slices: accuracy {scores['test_slice_accuracy']:.3f} (lesion-free share "
                              f"{scores['lesion_free_share']:.3f}), ROC AUC {scores['test_slice_auc']}", flush=True)
                    net.coarse.load_state_dict(coarse_net.coarse.state_dict())
                    net.classifier.load_state_dict(coarse_net.classifier.state_dict())
                resumed = Path(f"{args.save_models}/{weights_tag(name, seed, p)}.resume.pt").exists()
                history = train_segmenter(net, pixel, val, config, device, progress,  # a stopped run goes on from its last validation
                                           resume_file=f"{args.save_models}/{weights_tag(name, seed, p)}.resume.pt")
                record.update(train_s=round(time.time() - t0, 1), final_loss=history[-1]["loss"], **({"resumed": True} if resumed else {}))
                if itk_test:  # both anatomies apart, and the mean over all test cases as the headline
                    record.update(test_mni=evaluate(net.eval(), test, device), test_itk=evaluate(net, itk_test, device))
                    record.update(mean_over_cases(record["test_mni"], len(test), record["test_itk"], len(itk_test)))
                else:
                    record.update(**evaluate(net.eval(), test, device))
                if val:
                    best = max(history, key=lambda h: (h["val_dice"], h["iteration"]))  # as train_segmenter keeps them
                    record.update(best_iteration=best["iteration"], best_val_dice=best["val_dice"],
                                  val_curve=[[h["iteration"], round(h["val_dice"], 4)] for h in history])
                results = save_run(results_path, record, results.get("stage1", {}))
                Path(args.save_models).mkdir(parents=True, exist_ok=True)
                tag = weights_tag(name, seed, p)
                save_weights(net, f"{args.save_models}/{tag}.safetensors")
                (Path(args.save_models) / f"{tag}.json").write_text(json.dumps(config.to_dict()), encoding="utf-8")
                print(f"seed {seed} P={p} {name:28s} Dice {record['dice']:.3f} Jaccard {record['jaccard']:.3f} "
                      f"precision {record['precision']:.3f} recall {record['recall']:.3f} ({record['train_s']:.0f} s)", flush=True)
    print(markdown_table(results))


def mean_over_cases(a: dict, n_a: int, b: dict, n_b: int) -> dict:
    """Case-weighted mean of two `evaluate` results' overlap metrics."""
    return {k: (a[k] * n_a + b[k] * n_b) / (n_a + n_b) for k in ("dice", "jaccard", "precision", "recall")}


def save_stage1(path: Path, seed: int, scores: dict) -> dict:
    """Record one seed's stage-1 scores in the results file as it is now (other processes may have added runs)."""
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"runs": []}
    results["stage1"] = {**results.get("stage1", {}), str(seed): scores}
    write_json_atomically(path, results)
    return results


def save_run(path: Path, record: dict, stage1: dict) -> dict:
    """Add one run to the results file as it is now: processes that train different models of the same
    command in parallel (one per core) share one file. Returns the file's new content."""
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"runs": []}
    key = lambda r: (r["seed"], r["pixel_cases"], r["model"])  # noqa: E731
    results["runs"] = [r for r in results["runs"] if key(r) != key(record)] + [record]
    results["stage1"] = {**results.get("stage1", {}), **stage1}
    write_json_atomically(path, results)  # one temporary file per process: two may save at once
    return results


def mean_sd(values) -> str:
    """mean ± sample SD (ddof = 1); the mean alone for one run."""
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def markdown_table(results: dict) -> str:
    """One row per (P, model): mean ± sample SD over seeds, per-seed Dice, and where recorded the unseen anatomy's Dice."""
    lines = ["| pixel-labelled cases | model | Dice | Jaccard | precision | recall | Dice per seed | Dice MNI test / ITK-head test "
             "| runs | paper (LiTS, Table 1) DSC / Jaccard / P / R |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted({r["pixel_cases"] for r in results["runs"]}):
        for name in MODELS:
            runs = sorted((r for r in results["runs"] if r["pixel_cases"] == p and r["model"] == name), key=lambda r: r["seed"])
            if not runs:
                continue
            cells = [mean_sd([r[k] for r in runs]) for k in ("dice", "jaccard", "precision", "recall")]
            per_seed = " / ".join(f"{r['dice']:.3f} (s{r['seed']})" for r in runs)
            by_anatomy = (f"{mean_sd([r['test_mni']['dice'] for r in runs])} / {mean_sd([r['test_itk']['dice'] for r in runs])}"
                          if all("test_itk" in r for r in runs) else "—")
            paper = " / ".join(f"{v:.3f}" for v in PAPER[name]) if name in PAPER else "—"
            lines.append(f"| {p} | {name} | {' | '.join(cells)} | {per_seed} | {by_anatomy} | {len(runs)} | {paper} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
