"""The interactive session's worker: `python -m slicerleap.session_worker <folder>` (protocol in
jobs/interactive_process.py). It loads the image and the model once, then answers one request per line until its
stdin closes or it is asked to close."""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from .errors import SlicerLeapError
from .io.image_io import read_volume
from .jobs.interactive_process import encode_mask


def _answer(session, request: dict) -> dict:
    op = request.get("op")
    if op == "point":
        region = session.add_point(request["ras"], bool(request.get("positive", True)))
    elif op == "box":
        region = session.add_box(request["ras_min"], request["ras_max"])
    elif op == "scribble":
        region = session.add_scribble(request["ras_points"], bool(request.get("positive", True)))
    elif op == "undo":
        region = session.undo()
    elif op == "reset":
        session.reset()
        region = None
    else:
        return {"ok": False, "kind": "bad-input", "problem": f"Unknown request '{op}'.",
                "fix": "Use point, box, scribble, undo, reset or close."}
    reply = {"ok": True, "interactions": session.clicks, "region": None}
    if region is not None:
        reply.update(region=[[s.start, s.stop] for s in region], bits=encode_mask(session.mask_array[region]))
    return reply


def _protocol_stream():
    """The protocol's own copy of stdout; file descriptor 1 then goes to stderr (the log), so whatever a library prints
    cannot mix with the replies."""
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    return protocol


def main(folder: str) -> int:
    from .segmentation.interactive.session import InteractiveSession

    out = _protocol_stream()
    folder_path = Path(folder)
    started = time.perf_counter()
    spec = json.loads((folder_path / "session.json").read_text(encoding="utf-8"))
    volume = read_volume(folder_path / "image.nrrd")
    initial = read_volume(folder_path / "initial.nrrd") if (folder_path / "initial.nrrd").exists() else None
    for name in ("image.nrrd", "initial.nrrd"):  # in memory now: no copy of the scan left on disk
        (folder_path / name).unlink(missing_ok=True)
    try:
        session = InteractiveSession(volume, spec.get("model"), initial, **({"reach_mm": spec["reach_mm"]} if "reach_mm" in spec else {}))
    except SlicerLeapError as exc:
        print(json.dumps({"ready": False, "ok": False, "kind": "bad-input", "problem": exc.problem, "fix": exc.fix}), file=out, flush=True)
        return 2
    print(json.dumps({"ready": True, "model": session.refiner.name, "seconds": time.perf_counter() - started,
                      "warnings": session.warnings}), file=out, flush=True)
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        if request.get("op") == "close":
            break
        started = time.perf_counter()
        try:
            reply = _answer(session, request)
        except SlicerLeapError as exc:
            reply = {"ok": False, "kind": "bad-input", "problem": exc.problem, "fix": exc.fix}
        except Exception as exc:  # noqa: BLE001 - reported to the parent, the session goes on
            traceback.print_exc(file=sys.stderr)
            reply = {"ok": False, "kind": "internal", "problem": f"{type(exc).__name__}: {exc}"}
        reply.update(id=request.get("id"), seconds=time.perf_counter() - started)
        print(json.dumps(reply), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
