"""Teacher–student segmentation from mixed supervision (METHODS.md §3) on real anatomy, beside the
paper's Tables I and II, and the annotators' correction loop.

Data: `slicerleap.data.lesion_cases` — lesions inserted into randomly warped copies of the real MNI
ICBM152 T1; organ = brain (label 1), lesion = label 2; 1.5 mm axial slices. Pool: cases 0..N-1 split
per seed 30 % strong (image, mask, boxes) / 60 % weak (image, boxes) / 10 % validation (used to keep the
best weights, as the paper's); test: separate cases N..N+T-1. Boxes are derived from the masks: one
organ box, one 3D box per connected lesion (what an annotator draws as ROIs), `--perturb` moves them
as the paper's robustness study does.

Per seed:
- teachers trained on the strong set: O2L attention (ours), boxes as input channels (SCN-style), no box
  input (lower bound) — Dice of their pseudo-labels on the weak set (Table II's setting: boxes given);
- students, tested on the test cases after post-processing: full supervision (strong + weak with their
  true masks), strong only, boxes as labels (weak targets = the box map), + pseudo-labels, + pseudo-labels
  + localisation branch (ours) — Table I / the student ablation;
- the correction loop: K weak cases per round get their true mask (an annotator's correction), ordered
  by the teacher's uncertainty or at random, and the student is fine-tuned from the previous round.

    python benchmarks/teacher_student_boxes.py --seeds 0 1 2
    (teachers 400 iterations on 128 px crops; students 3000 on 96 px crops, 80 % lesion-centred — a plain
    U-Net learns no lesion voxel in 400–600 iterations here, and starts to at ~1500; see RESULTS.md)
    python benchmarks/teacher_student_boxes.py --table

A seed at the longer budgets outlasts a session: its record is saved after each student (our student
and its correction loop first), and the same command run again goes on where it stopped.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from slicerleap.data.lesion_cases import make_lesion_case
from slicerleap.json_files import write_json_atomically
from slicerleap.mixed_precision import PRECISIONS
from slicerleap.segmentation.metrics import overlap_metrics
from slicerleap.segmentation.boxes import boxes_from_labels, perturb_boxes
from slicerleap.segmentation.slice_data import slice_input_spec
from slicerleap.segmentation.teacher_student.uncertainty import box_fill_reference
from slicerleap.segmentation.teacher_student.training import (
    BoxCase, TeacherStudentConfig, evaluate, prepare_box_case, pseudo_label, train_box_unet)

HERE = Path(__file__).parent
SPEC = slice_input_spec(1.5)
TEACHERS = {"O2L attention (ours)": "o2l", "boxes as input channels (SCN-style)": "multichannel", "no box input": "none"}
PAPER_TEACHER = {"o2l": (95.4, 95.2, 88.9, 85.5), "multichannel": (92.2, 92.6, 88.1, 83.9), "none": (86.0, 85.3, 61.5, 42.9)}
PAPER_STUDENT = {"full supervision": (93.9, 94.4, 79.2, 63.7), "strong only": (85.8, 88.0, 61.8, 43.9),
                 "+ pseudo-labels": (92.6, 93.2, 74.6, 58.2), "+ pseudo-labels + localisation (ours)": (92.8, 93.1, 76.5, 60.0)}


def load_cases(seeds, perturb: bool) -> list[BoxCase]:
    cases = []
    for seed in seeds:
        image, labels = make_lesion_case(seed)
        boxes = boxes_from_labels(labels)
        if perturb:
            boxes = perturb_boxes(boxes, np.random.default_rng(1000 + seed))
        cases.append(prepare_box_case(image, SPEC, boxes, labels))
    return cases


def with_targets(case: BoxCase, labels=None, soft=None) -> BoxCase:
    out = copy.copy(case)
    out.labels, out.soft = labels, soft
    return out


def box_targets(case: BoxCase) -> BoxCase:
    """Boxes as labels: organ box -> organ, lesion box -> lesion."""
    return with_targets(case, labels=case.boxes.astype(np.uint8))


def split(pool: list, seed: int) -> tuple[list, list, list]:
    """The paper's split of the pool, drawn per seed: 30 % strong, 10 % validation, the rest weak (box-only)."""
    order = np.random.default_rng(seed).permutation(len(pool))
    n_strong, n_val = round(0.3 * len(pool)), max(1, round(0.1 * len(pool)))
    return ([pool[i] for i in order[:n_strong]], [pool[i] for i in order[n_strong:n_strong + n_val]],
            [pool[i] for i in order[n_strong + n_val:]])


STUDENTS = ("full supervision", "strong only", "boxes as labels", "+ pseudo-labels", "+ pseudo-labels + localisation (ours)")
OURS = STUDENTS[-1]


def complete(record: dict) -> bool:
    """A seed whose students and correction loop all ran (the tables count only these)."""
    return "correction_rounds" in record and set(STUDENTS) <= set(record["students"])


def run_seed(seed, pool, test, args, device, log, save=lambda record: None, partial: dict | None = None) -> dict:
    """One seed's record, saved (save(record)) after each unit of work, so a run cut short resumes from `partial`,
    that seed's saved record: the units are each student, and our student with the correction loop that
    fine-tunes it (no weights are kept between sessions). The O2L teacher is trained again on resume (its soft
    pseudo-labels feed the students); if it does not reproduce the saved teacher's scores exactly — another CPU
    kind, another torch — the seed is trained again whole rather than mixing two teachers' pseudo-labels."""
    strong, val, weak = split(pool, seed)
    config = TeacherStudentConfig(iterations=args.teacher_iterations, crop=args.crop, batch_size=args.batch, seed=seed,
                                  iterations_per_epoch=args.eval_every, precision=args.precision)
    student_config = replace(config, iterations=args.student_iterations, crop=args.student_crop, lesion_fraction=args.student_lesion_fraction)
    fresh = {"seed": seed, "strong": len(strong), "weak": len(weak), "val": len(val), "test": len(test), "precision": args.precision,
             "student_iterations": args.student_iterations, "teachers": {}, "students": {}}
    record = copy.deepcopy(partial) if partial else fresh

    def report(f, message, r):
        log(f"  {message}")

    soft, uncertainty = None, None
    for name, conditioning in TEACHERS.items():  # O2L first: its pseudo-labels are the ones the students use
        if name in record["teachers"] and conditioning != "o2l":
            continue
        cfg = replace(config, box_conditioning=conditioning)
        log(f"seed {seed} teacher {name}")
        teacher, history, seconds = train_box_unet("teacher", strong, val, cfg, device, report)
        scores = evaluate(teacher, weak, device)
        saved = record["teachers"].get(name)
        if saved is not None and {k: saved.get(k) for k in scores} != scores:
            log(f"  the teacher does not reproduce the saved run ({saved} vs {scores}): seed {seed} is trained again whole")
            record = copy.deepcopy(fresh)
        record["teachers"][name] = {**scores, "seconds": round(seconds, 1)}
        log(f"  pseudo-label Dice on the weak set: {scores}")
        if conditioning == "o2l":
            reference = box_fill_reference(strong)
            labelled = [pseudo_label(teacher, c, device, fill_reference=reference) for c in weak]
            soft, uncertainty = [s for s, _ in labelled], [u for _, u in labelled]
            truth_dice = [evaluate_soft(s, c) for s, c in zip(soft, weak)]
            record["uncertainty"] = [{"uncertainty": round(u, 4), "lesion_dice": round(d, 4)} for u, d in zip(uncertainty, truth_dice)]
    save(record)
    if args.teachers_only:
        return record
    pseudo = [with_targets(c, soft=s) for c, s in zip(weak, soft)]
    training_sets = {
        "full supervision": (strong + weak, False),
        "strong only": (strong, False),
        "boxes as labels": (strong + [box_targets(c) for c in weak], False),
        "+ pseudo-labels": (strong + pseudo, False),
        OURS: (strong + pseudo, True),
    }

    def train_student(name):
        cases, localisation = training_sets[name]
        cfg = replace(student_config, localisation=localisation)
        log(f"seed {seed} student {name}")
        student, history, seconds = train_box_unet("student", cases, val, cfg, device, report)
        scores = evaluate(student, test, device, postprocess=True)
        record["students"][name] = {**scores, "seconds": round(seconds, 1)}
        log(f"  test: {scores}")
        return student, cfg

    if "correction_rounds" not in record:  # our student first: the correction loop fine-tunes it, in the same unit
        ours = train_student(OURS)
        record["correction_rounds"] = correction_loop(ours, strong, weak, soft, uncertainty, val, test, args, device, log, seed)
        save(record)
    for name in STUDENTS:
        if name not in record["students"]:
            train_student(name)
            save(record)
    record["students"] = {name: record["students"][name] for name in STUDENTS}  # the tables' order
    return record


def evaluate_soft(soft, case) -> float:
    """Lesion Dice of a soft pseudo-label's argmax against the true mask."""
    return overlap_metrics(soft.astype(np.float32).argmax(0) == 2, case.labels == 2)["dice"]


def correction_loop(ours, strong, weak, soft, uncertainty, val, test, args, device, log, seed) -> dict:
    """Rounds of: the annotator corrects the next K weak cases (their true mask replaces the pseudo-label),
    then the student is fine-tuned from the previous round's weights for --finetune-iterations steps. The
    "none" order corrects nothing and fine-tunes the same way: what the extra training alone gives."""
    student0, cfg = ours
    orders = {"uncertainty": list(np.argsort(uncertainty)[::-1]),
              "random": list(np.random.default_rng(seed + 500).permutation(len(weak))), "none": []}
    base = evaluate(student0, test, device, postprocess=True)
    out = {}
    for order_name, order in orders.items():
        state = {k: v.clone() for k, v in student0.state_dict().items()}
        rounds = [{"round": 0, "corrected": 0, **base}]
        corrected: set[int] = set()
        for r in range(1, args.rounds + 1):
            corrected |= set(int(i) for i in order[(r - 1) * args.k:r * args.k])
            cases = strong + [with_targets(c, labels=c.labels) if n in corrected else with_targets(c, soft=s)
                              for n, (c, s) in enumerate(zip(weak, soft))]
            fine = replace(cfg, iterations=args.finetune_iterations, seed=cfg.seed + 100 * r, learning_rate=0.3 * cfg.lr("student"))
            log(f"seed {seed} correction round {r} ({order_name}): {len(corrected)} corrected")
            net, _, seconds = train_box_unet("student", cases, val, fine, device, lambda *a: None, initial_state=state)
            state = {k: v.clone() for k, v in net.state_dict().items()}
            scores = evaluate(net, test, device, postprocess=True)
            rounds.append({"round": r, "corrected": len(corrected), **scores, "seconds": round(seconds, 1)})
            log(f"  test: {scores}")
        out[order_name] = rounds
    return out


def pct(x):
    return f"{100 * x:.1f}"


def mean_sd(values):
    values = [v for v in values if v is not None]
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f}" if len(values) > 1 else pct(values[0])


def markdown_tables(results: dict) -> str:
    runs = results["runs"]
    keys = ("organ_dice_global", "organ_dice", "lesion_dice_global", "lesion_dice")
    lines = [f"Seeds: {[r['seed'] for r in runs]} (mean ± sd over seeds); Dice in %: organ global / per case, lesion global / per case.", "",
             "Teacher pseudo-labels on the weak set (boxes given; Table II's setting):", "",
             "| teacher | organ global | organ per case | lesion global | lesion per case | train s | paper (LiTS, liver/lesion) |",
             "|---|---|---|---|---|---|---|"]
    for name, conditioning in TEACHERS.items():
        rows = [r["teachers"][name] for r in runs if name in r["teachers"]]
        lines.append(f"| {name} | " + " | ".join(mean_sd([x[k] for x in rows]) for k in keys)
                     + f" | {np.mean([x['seconds'] for x in rows]):.0f} | {' / '.join(map(str, PAPER_TEACHER[conditioning]))} |")
    runs = [r for r in runs if complete(r)]  # --teachers-only and cut-short seeds have teachers only, or some students
    if not runs:
        return "\n".join(lines)
    lines += ["", f"Seeds with students: {[r['seed'] for r in runs]}.", "",
              "Students on the held-out test cases (after post-processing; Table I and the student ablation):", "",
              "| student | organ global | organ per case | lesion global | lesion per case | lesion precision / recall (global) | train s | paper (LiTS) |",
              "|---|---|---|---|---|---|---|---|"]
    for name in STUDENTS:
        rows = [r["students"][name] for r in runs]
        paper = " / ".join(map(str, PAPER_STUDENT[name])) if name in PAPER_STUDENT else "—"
        recorded = [x for x in rows if "lesion_recall_global" in x]  # not recorded before 2026-12-06
        pr = (" / ".join(mean_sd([x[k] for x in recorded]) for k in ("lesion_precision_global", "lesion_recall_global"))
              + (f" (n = {len(recorded)})" if len(recorded) < len(rows) else "")) if recorded else "—"
        lines.append(f"| {name} | " + " | ".join(mean_sd([x[k] for x in rows]) for k in keys)
                     + f" | {pr} | {np.mean([x['seconds'] for x in rows]):.0f} | {paper} |")
    lines += ["", "Correction loop (lesion Dice per case on the test cases after each round of K corrected weak cases):", "",
              "| order | " + " | ".join(f"round {r['round']} ({r['corrected']} corrected)" for r in runs[0]["correction_rounds"]["uncertainty"]) + " |",
              "|---|" + "---|" * len(runs[0]["correction_rounds"]["uncertainty"])]
    orders = dict.fromkeys(o for r in runs for o in r["correction_rounds"])  # "none" (the control) since 2026-12-06
    for order in orders:
        having = [r["correction_rounds"][order] for r in runs if order in r["correction_rounds"]]
        cells = [mean_sd([rounds[n]["lesion_dice"] for rounds in having]) for n in range(len(having[0]))]
        label = order + (f" (n = {len(having)})" if len(having) < len(runs) else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    rho = [np.corrcoef([u["uncertainty"] for u in r["uncertainty"]], [u["lesion_dice"] for u in r["uncertainty"]])[0, 1] for r in runs]
    lines += ["", f"Teacher uncertainty vs its pseudo-label lesion Dice on the weak cases: Pearson r = {np.mean(rho):.2f} (per seed: "
              + ", ".join(f"{x:.2f}" for x in rho) + ")."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pool", type=int, default=20)
    ap.add_argument("--test", type=int, default=6)
    ap.add_argument("--teacher-iterations", type=int, default=400)
    ap.add_argument("--student-iterations", type=int, default=3000)
    ap.add_argument("--finetune-iterations", type=int, default=1000, help="per correction round, from the previous round's weights")
    ap.add_argument("--crop", type=int, default=128, help="teacher crops (pixels)")
    ap.add_argument("--student-crop", type=int, default=96)
    ap.add_argument("--student-lesion-fraction", type=float, default=0.8)
    ap.add_argument("--eval-every", type=int, default=100, help="iterations between validations (best weights kept)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--k", type=int, default=4, help="weak cases corrected per round")
    ap.add_argument("--perturb", action="store_true", help="perturb the boxes as the paper's robustness study")
    ap.add_argument("--out", default=str(HERE / "teacher_student_results.json"))
    ap.add_argument("--table", action="store_true", help="print the markdown tables of --out and exit")
    ap.add_argument("--teachers-only", action="store_true", help="train and score the teachers only (no students, no correction loop)")
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS,
                    help="training precision (mixed_precision_training.py measures bf16 against fp32)")
    args = ap.parse_args()
    out = Path(args.out)
    if args.table:
        print(markdown_tables(json.loads(out.read_text(encoding="utf-8"))))
        return
    torch.set_num_threads(2)
    device = torch.device("cpu")
    started = time.time()

    def log(message):
        print(f"[{time.time() - started:6.0f} s] {message}", flush=True)

    pool = load_cases(range(args.pool), args.perturb)
    test = load_cases(range(args.pool, args.pool + args.test), False)
    log(f"cohort ready: {len(pool)} pool + {len(test)} test cases")
    results = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"config": vars(args), "runs": []}
    recipe = {"precision": args.precision, "student_iterations": args.student_iterations}
    for r in results["runs"]:  # records before 2026-12-06 were fp32 at the file's first student budget
        theirs = {"precision": r.get("precision", "fp32"), "student_iterations": r.get("student_iterations", results["config"]["student_iterations"])}
        if theirs != recipe:
            raise SystemExit(f"{out} holds seed {r['seed']} trained with {theirs}, not {recipe}: averaging them would mix recipes. "
                             "Use another --out, or the same --precision / --student-iterations.")
    saved = {r["seed"]: r for r in results["runs"]}

    def save(record):
        results["runs"] = sorted([r for r in results["runs"] if r["seed"] != record["seed"]] + [record], key=lambda r: r["seed"])
        write_json_atomically(out, results)  # a run stopped mid-write must not leave a broken results file

    for seed in args.seeds:
        if seed in saved and (complete(saved[seed]) or args.teachers_only):
            continue
        # a seed cut short (or run with --teachers-only) goes on from its saved record
        save(run_seed(seed, pool, test, args, device, log, save, partial=saved.get(seed)))
        log(f"seed {seed} written to {out}")
    print(markdown_tables(results))


if __name__ == "__main__":
    main()
