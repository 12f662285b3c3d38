"""What every `slicerleap` command shares: the job options, checking outputs before any work, running a task on
files and exporting its outputs, folders of cases, training and registering a model. The command groups (the other
modules of this package) import this; it imports none of them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import SlicerLeapError

OUTPUT_OPTIONS = {"segmentation": "--output", "volume": "--output", "probability": "--probability", "transform": "--out-transform",
                  "warped": "--warped", "jacobian": "--jacobian", "labels": "--labels-out", "difference": "--difference",
                  "volume2": "--output2", "pseudo": "--output", "brain": "--brain-mask-output"}


def job_options(parser) -> None:
    """--device and --keep-files, on every command that runs a job."""
    parser.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:1, mps")
    parser.add_argument("--keep-files", action="store_true", help="keep the job folder (inputs, outputs, worker.log)")


def trained_model_options(parser, default_id: str) -> None:
    """--out, --id, --modality, --seed: what every train command asks about the model it trains and registers."""
    parser.add_argument("--out", required=True, help="folder for model.safetensors + card.json (also registered in the catalog)")
    parser.add_argument("--id", default=default_id, help="model id name@x.y.z")
    parser.add_argument("--modality", default="any", choices=["CT", "MR", "PET", "US", "any"],
                        help="the modality of the training scans, recorded in the model's card (segment checks scans against it)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the initialisation and sampling (reproducible runs)")


def check_outputs(inputs: dict, outputs: dict) -> None:
    """Before any work: no output over an input (links included), none twice, each with a suffix a writer takes
    and in a folder that can be written."""
    from ..io.output_files import check_output_path

    sources = [p for v in inputs.values() for p in (v if isinstance(v, (list, tuple)) else [v])]
    seen: dict = {}
    for name, destination in outputs.items():
        if not destination:
            continue
        option = OUTPUT_OPTIONS.get(name.split("_")[0], f"--{name}")
        check_output_path(destination, sources, "transform" if name == "transform" else "volume", option)
        resolved = Path(destination).resolve()
        if resolved in seen:
            raise SlicerLeapError(f"{option} and {seen[resolved]} name the same file '{destination}'.", "Give each output its own name.")
        seen[resolved] = option


def run_task(task, inputs, params, model, device, keep, outputs: dict) -> int:
    from ..jobs.files import export_output, print_progress, run_task_on_files

    check_outputs(inputs, outputs)
    result, job = run_task_on_files(task, inputs, params, model, device, keep, on_progress=print_progress)
    try:
        for name, destination in outputs.items():
            if destination and name not in result["outputs"]:  # an output only some inputs produce
                print(f"{name}: not produced for this input ({destination} not written)")
            elif destination:
                print(f"{name}: {export_output(job, result, name, destination)}")
        if result.get("metrics"):
            print(json.dumps(result["metrics"], indent=2))
    finally:
        job.cleanup()
    return 0


def case_name(path: Path) -> str:
    from ..io import SUPPORTED_SUFFIXES

    name = path.name
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)].removesuffix(".seg")
    return path.stem


def volume_files(folder: Path) -> dict[str, Path]:
    from ..io import SUPPORTED_SUFFIXES

    if not folder.is_dir():
        raise SlicerLeapError(f"'{folder}' is not a folder.", "Give a folder of volume files (.nrrd, .nii.gz, .mha).")
    return {case_name(p): p for p in sorted(folder.iterdir()) if p.name.endswith(SUPPORTED_SUFFIXES)}


def train_and_register(task: str, inputs: dict, params: dict, args) -> int:
    """Run a training task; on success register its model in the catalog and copy weights + card to --out."""
    from ..jobs.files import print_progress, run_task_on_files
    from ..models import get_catalog
    from ..models.cards import register_job_model

    if params.get("model_id"):
        get_catalog().check_new_id(params["model_id"])
    result, job = run_task_on_files(task, inputs, params, None, args.device, args.keep_files, on_progress=print_progress)
    try:
        spec = result["outputs"]["model"]
        registered = register_job_model(job, spec)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(job.output_path(spec["file"]), out / "model.safetensors")
        (out / "card.json").write_text(json.dumps({**registered, "file": "model.safetensors"}, indent=2), encoding="utf-8")
        print(f"registered {registered['id']}; weights and card in {out}")
        print(json.dumps(result.get("metrics", {}), indent=2))
    finally:
        job.cleanup()
    return 0
