"""`slicerleap` command line: the same engine and worker as the Slicer modules. One module per command group
(each with its subcommands' options and handlers); common.py holds what they share."""
from __future__ import annotations

import argparse
import sys

from ..errors import SlicerLeapError
from . import demo, federated, info, models, reconstruct, register, segment, superres, teacher_student, text_prompt, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slicerleap", description="Label-efficient deep learning for 3D Slicer, from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    info.add_commands(sub)
    demo.add_commands(sub)
    models.add_commands(sub)
    segment.add_commands(sub)
    train_sub = train.add_commands(sub)
    teacher_student.add_commands(sub, train_sub)
    text_prompt.add_commands(sub, train_sub)
    reconstruct.add_train_command(train_sub)
    register.add_commands(sub)
    superres.add_commands(sub)
    reconstruct.add_commands(sub)
    federated.add_commands(sub)
    return parser


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP (a closed terminal, a scheduler's stop) end the CLI as Ctrl+C does, through every
    `finally`: the worker is cancelled and the job folder, which holds a copy of the scan, removed."""
    import signal

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # an ASCII-locale terminal must not crash on a dash in a message
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    _stop_on_signals()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted; the job was stopped and its temporary files removed.", file=sys.stderr)
        return 130
    except SlicerLeapError as exc:
        print(f"error: {exc.user_message}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - JobFailed and friends carry user-facing text
        from ..jobs import JobFailed

        if isinstance(exc, JobFailed):
            print(f"error: {exc.message}", file=sys.stderr)
            return 3 if exc.status == "cancelled" else 2 if exc.status in ("bad-input", "model-error") else 1
        raise
