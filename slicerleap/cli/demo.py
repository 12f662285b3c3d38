"""`slicerleap demo`: every module's pipeline on bundled real anatomy (slicerleap/demo.py)."""
from __future__ import annotations

from pathlib import Path


def cmd_demo(args) -> int:
    from ..demo import run_demo

    report = run_demo(Path(args.out), quick=args.quick, device=args.device)
    print(f"Demo finished. Scene: {report['scene']}\nReport: {report['report']}\nPreviews: {report['previews']}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("demo", help="run every module's pipeline on bundled real anatomy; writes scene.mrb, PNG previews and report.html")
    p.add_argument("--out", default="slicerleap-demo", help="output folder (default: ./slicerleap-demo)")
    p.add_argument("--quick", action="store_true", help="fewer iterations (used by the tests)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda or mps")
    p.set_defaults(func=cmd_demo)
