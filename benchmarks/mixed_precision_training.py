"""bf16 mixed-precision training vs fp32: same model, data, seed and iterations, in one process.

Trains the teacher–student benchmark's O2L teacher (and optionally the full-supervision student) once
in fp32 and once under bf16 autocast per seed, alternating which runs first, and reports the time ratio
and the Dice of each (teacher: pseudo-labels on the weak set; student: the held-out test cases).

    cd benchmarks && python mixed_precision_training.py --seeds 0 1 2
    cd benchmarks && python mixed_precision_training.py --steps   # bare training steps of each slice network
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from slicerleap.mixed_precision import autocast, bf16_is_native
from slicerleap.models.networks import build_network
from slicerleap.segmentation.slice_training import SliceTrainingConfig, optimiser_step
from slicerleap.segmentation.teacher_student.training import TeacherStudentConfig, build_box_unet, evaluate, train_box_unet
from teacher_student_boxes import load_cases, split

HERE = Path(__file__).parent


def step_seconds(net, x, target, precision: str, repeats: int = 10) -> float:
    """Mean seconds of one AdamW training step (forward, cross-entropy, backward, update) after two warm-up steps."""
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    device = torch.device("cpu")

    def step():
        with autocast(device, precision):
            loss = torch.nn.functional.cross_entropy(net(x).float(), target)
        optimiser_step(opt, sched, loss)
    for _ in range(2):
        step()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) / repeats


def compare_steps() -> None:
    """fp32 vs bf16 step time of the networks the benchmarks train, in this process, the order alternating."""
    nets = {"teacher–student student U-Net (96 px, batch 4)": (lambda: build_box_unet(TeacherStudentConfig(localisation=False), "student"), 4, 96, 3),
            "SKS (160 px, batch 8)": (lambda: build_network(SliceTrainingConfig(model="sks").architecture()), 8, 160, 2),
            "SKS benchmark's MONAI U-Net (160 px, batch 8)": (lambda: build_network(SliceTrainingConfig(model="unet").architecture()), 8, 160, 2)}
    for n, (name, (make, batch, size, classes)) in enumerate(nets.items()):
        torch.manual_seed(0)
        x, target = torch.randn(batch, 3, size, size), torch.randint(0, classes, (batch, size, size))
        seconds = {p: step_seconds(make(), x, target, p) for p in (("fp32", "bf16") if n % 2 == 0 else ("bf16", "fp32"))}
        print(f"{name}: fp32 {seconds['fp32']:.3f} s, bf16 {seconds['bf16']:.3f} s per step, fp32 / bf16 {seconds['fp32'] / seconds['bf16']:.2f}x",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--teacher-iterations", type=int, default=400)
    ap.add_argument("--student-iterations", type=int, default=0, help="0: teachers only")
    ap.add_argument("--out", default=str(HERE / "mixed_precision_training.json"))
    ap.add_argument("--steps", action="store_true", help="time bare training steps of each slice network instead")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.steps:
        compare_steps()
        return
    device = torch.device("cpu")
    pool, test = load_cases(range(20), False), load_cases(range(20, 26), False)
    runs = []
    for seed in args.seeds:
        strong, val, weak = split(pool, seed)
        teacher = TeacherStudentConfig(iterations=args.teacher_iterations, crop=128, batch_size=4, seed=seed, iterations_per_epoch=100)
        jobs = [("teacher", teacher, strong, weak, False)]
        if args.student_iterations:
            student = replace(teacher, iterations=args.student_iterations, crop=96, lesion_fraction=0.8, localisation=False,
                              iterations_per_epoch=250)
            jobs.append(("student", student, strong + weak, test, True))
        for role, cfg, train, scored, postprocess in jobs:
            order = ("fp32", "bf16") if seed % 2 == 0 else ("bf16", "fp32")
            for precision in order:
                net, _, seconds = train_box_unet(role, train, val, replace(cfg, precision=precision), device)
                scores = evaluate(net, scored, device, postprocess=postprocess)
                runs.append({"seed": seed, "role": role, "precision": precision, "seconds": round(seconds, 1), **scores})
                print(json.dumps(runs[-1]), flush=True)
    Path(args.out).write_text(json.dumps({"config": vars(args), "bf16_native": bf16_is_native(device),
                                          "cpu": torch.backends.cpu.get_cpu_capability(), "runs": runs}, indent=1), encoding="utf-8")
    for role in dict.fromkeys(r["role"] for r in runs):
        rows = {p: [r for r in runs if r["role"] == role and r["precision"] == p] for p in ("fp32", "bf16")}
        ratio = [a["seconds"] / b["seconds"] for a, b in zip(rows["fp32"], rows["bf16"])]
        print(f"{role}: fp32 / bf16 time {np.mean(ratio):.2f}x; " + "; ".join(
            f"{p} lesion Dice per case {np.mean([r['lesion_dice'] for r in rs]):.3f} ± {np.std([r['lesion_dice'] for r in rs], ddof=1):.3f}, "
            f"organ {np.mean([r['organ_dice'] for r in rs]):.3f}" for p, rs in rows.items()))


if __name__ == "__main__":
    main()
