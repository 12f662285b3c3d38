"""The bad-input table of benchmarks/RESULTS.md: every case of Testing/test_bad_inputs.py run through the CLI,
with its exit code, the message the user reads, and whether the files and the temp folder were left as they were.

    python benchmarks/bad_inputs.py --out benchmarks/bad_inputs.json
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
from test_bad_inputs import CASES, run_case  # noqa: E402

from slicerleap.json_files import write_json_atomically  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = []
    for name, setup, code, text in CASES:
        with tempfile.TemporaryDirectory() as folder:
            out = run_case(Path(folder), setup)
        ok = (out["exit_code"] == code and text in out["message"] and "Fix:" in out["message"] and out["files_unchanged"]
              and not out["temp_left"])
        rows.append({"case": name, "exit_code": out["exit_code"], "message": out["message"].removeprefix("error: "),
                     "files_unchanged": out["files_unchanged"], "temp_left": out["temp_left"], "as_expected": ok})
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {out['exit_code']}", flush=True)
    write_json_atomically(args.out, {"command": "python benchmarks/bad_inputs.py --out " + args.out, "cases": rows}, indent=1)


if __name__ == "__main__":
    main()
