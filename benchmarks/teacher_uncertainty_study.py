"""Which uncertainty picks the pseudo-labels an annotator should correct first? For each seed: the O2L teacher
of teacher_student_boxes.py (same split, budget and data) pseudo-labels the weak cases; each candidate score is
compared with the pseudo-labels' true lesion Dice (Spearman r with 1 − Dice: positive = the score finds the bad
ones), and by what correcting the K highest-scored cases does to the weak set's mean lesion Dice, against
random order (mean of 1000 orders) and the oracle (the K worst). No student training: this isolates the ranking.

Scores (per case, from the teacher's softmax p and the lesion boxes only — nothing an annotator has not given):
- entropy: mean normalised entropy inside the lesion boxes (the engine's score before 2026-12-06);
- self-dice: 1 − soft Dice between p(lesion) and its own argmax;
- box-fill (the engine's score since, segmentation/teacher_student/uncertainty.py): boxes are drawn tight around each lesion, so a correct lesion label fills a typical fraction of its
  box; per box, the shortfall max(0, 1 − fill / reference), reference = median fill of the true lesions in the
  strongly labelled cases; the case's score is the mean over its boxes.

    cd benchmarks && python teacher_uncertainty_study.py [--seeds 0 1 2] [--k 4]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from scipy.stats import spearmanr

from slicerleap.segmentation.teacher_student.training import TeacherStudentConfig, pseudo_label, train_box_unet
from slicerleap.segmentation.teacher_student.uncertainty import box_fill_reference, box_fill_shortfall
from teacher_student_boxes import HERE, evaluate_soft, load_cases, split

RESULTS = HERE / "teacher_uncertainty_study.json"


def box_entropy(probs: np.ndarray, boxes: np.ndarray) -> float:
    """Mean normalised softmax entropy inside the lesion boxes (the organ box when there is none)."""
    p = probs.astype(np.float32)
    entropy = -(p * np.log(np.clip(p, 1e-8, 1))).sum(0) / np.log(len(p))
    region = boxes == 2 if (boxes == 2).any() else boxes >= 1
    return float(entropy[region].mean()) if region.any() else 0.0


def self_dice_gap(probs: np.ndarray) -> float:
    p = probs[2].astype(np.float32)
    hard = probs.astype(np.float32).argmax(0) == 2
    denominator = p.sum() + hard.sum()
    return float(1 - 2 * (p * hard).sum() / denominator) if denominator else 0.0


def correction_gain(dice: np.ndarray, order, k: int) -> float:
    fixed = dice.copy()
    fixed[list(order[:k])] = 1.0
    return float(fixed.mean() - dice.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pool", type=int, default=20)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--teacher-iterations", type=int, default=400)
    args = ap.parse_args()
    torch.set_num_threads(2)
    pool = load_cases(range(args.pool), perturb=False)
    results = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    for seed in args.seeds:
        if str(seed) in results:
            continue
        strong, val, weak = split(pool, seed)
        config = TeacherStudentConfig(iterations=args.teacher_iterations, crop=128, batch_size=4, seed=seed, iterations_per_epoch=250)
        teacher, _, _ = train_box_unet("teacher", strong, val, config, "cpu", lambda *a: None)
        reference = box_fill_reference(strong)
        rows = []
        for case in weak:
            soft, _ = pseudo_label(teacher, case, "cpu")
            rows.append({"lesion_dice": evaluate_soft(soft, case), "entropy": box_entropy(soft, case.boxes), "self-dice": self_dice_gap(soft),
                         "box-fill": box_fill_shortfall(soft.astype(np.float32).argmax(0) == 2, case.boxes, reference)})
        results[str(seed)] = {"fill_reference": reference, "cases": rows}
        print(seed, json.dumps({"reference": round(reference, 3), "mean_dice": round(float(np.mean([r["lesion_dice"] for r in rows])), 3)}), flush=True)
        RESULTS.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"| seed | score | Spearman r with 1 − Dice | Dice gain, {args.k} corrected by score | random order | oracle |\n|---|---|---|---|---|---|")
    for seed, run in results.items():
        dice = np.array([r["lesion_dice"] for r in run["cases"]])
        rng = np.random.default_rng(0)
        random_gain = np.mean([correction_gain(dice, rng.permutation(len(dice)), args.k) for _ in range(1000)])
        oracle = correction_gain(dice, np.argsort(dice), args.k)
        for score in ("entropy", "self-dice", "box-fill"):
            values = np.array([r[score] for r in run["cases"]])
            r = spearmanr(values, 1 - dice).statistic
            gain = correction_gain(dice, np.argsort(-values, kind="stable"), args.k)
            print(f"| {seed} | {score} | {r:+.2f} | {gain:.3f} | {random_gain:.3f} | {oracle:.3f} |")


if __name__ == "__main__":
    main()
