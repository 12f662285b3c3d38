"""What every `slicerleap` command shares: the job options, checking outputs before any work, running a task on
files and exporting its outputs, folders of cases, training and registering a model. The command groups (the other
modules of this package) import this; it imports none of them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import SlicerLeapError
from ..io.output_files import case_name, check_outputs

def job_options(parser) -> None:
    """--device and --keep-files, on every command that runs a job."""
    parser.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:1, mps")
    parser.add_argument("--keep-files", action="store_true", help="keep the job folder (inputs, outputs, worker.log)")


def batch_options(parser) -> None:
    """--workers and --cluster, on every command that takes a folder (or table) of inputs."""
    parser.add_argument("--workers", type=int, default=None,
                        help="with a folder: run N files at once on a local Dask cluster, each job with cores/N threads "
                             "(default: one file after another)")
    parser.add_argument("--cluster", default=None,
                        help="with a folder: the Dask scheduler to run on (tcp://host:8786); its workers need this package "
                             "and the input and output folders at the same paths (a shared filesystem)")


def is_volume_folder(path) -> bool:
    """A folder of volume files (not a DICOM series): a batch, one job per file."""
    from ..io import SUPPORTED_SUFFIXES

    path = Path(path)
    return path.is_dir() and not any(path.glob("*.dcm")) and any(p.name.endswith(SUPPORTED_SUFFIXES) for p in path.iterdir())


def refuse_batch_options_for_one_file(args) -> None:
    if getattr(args, "workers", None) or getattr(args, "cluster", None):
        raise SlicerLeapError("--workers and --cluster run a folder of inputs (or a table of pairs), not one file.",
                              "Give a folder as --input (or --pairs for register), or drop --workers/--cluster.")


def report_batch(records) -> int:
    from ..jobs.batch import batch_exit_code, summary_table

    print(summary_table(records))
    return batch_exit_code(records)


def process_options(parser) -> None:
    """Training on several processes through torchrun (DDP: gloo on CPU, NCCL on GPUs)."""
    parser.add_argument("--nproc-per-node", type=int, default=1,
                        help="training processes on this machine (one per GPU; on CPU each takes cores/N threads); "
                             "the global batch is split between them, so the result matches one process")
    parser.add_argument("--nnodes", type=int, default=1, help="machines taking part: run the same command on each")
    parser.add_argument("--rdzv-endpoint", default=None, help="with --nnodes > 1: host:port where the machines meet (torchrun's c10d rendezvous)")


def processes_of(args) -> dict | None:
    if args.nproc_per_node < 1 or args.nnodes < 1:
        raise SlicerLeapError("--nproc-per-node and --nnodes count processes and machines: 1 or more.", "Give positive numbers.")
    if args.nnodes > 1 and not args.rdzv_endpoint:
        raise SlicerLeapError("--nnodes > 1 needs --rdzv-endpoint host:port (where the machines meet).",
                              "Give the first machine's address and a free port, the same on every machine.")
    if args.nproc_per_node * args.nnodes == 1:
        return None
    return {"nproc_per_node": args.nproc_per_node, "nnodes": args.nnodes, "rdzv_endpoint": args.rdzv_endpoint}


def trained_model_options(parser, default_id: str) -> None:
    """--out, --id, --modality, --seed: what every train command asks about the model it trains and registers."""
    parser.add_argument("--out", required=True, help="folder for model.safetensors + card.json (also registered in the catalog)")
    parser.add_argument("--id", default=default_id, help="model id name@x.y.z")
    parser.add_argument("--modality", default="any", choices=["CT", "MR", "PET", "US", "any"],
                        help="the modality of the training scans, recorded in the model's card (segment checks scans against it)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the initialisation and sampling (reproducible runs)")


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


def volume_files(folder: Path) -> dict[str, Path]:
    from ..io import SUPPORTED_SUFFIXES

    if not folder.is_dir():
        raise SlicerLeapError(f"'{folder}' is not a folder.", "Give a folder of volume files (.nrrd, .nii.gz, .mha).")
    return {case_name(p): p for p in sorted(folder.iterdir()) if p.name.endswith(SUPPORTED_SUFFIXES)}


def train_and_register(task: str, inputs: dict, params: dict, args) -> int:
    """Run a training task; on success register its model in the catalog and copy weights + card to --out."""
    from ..device import threads_per_process
    from ..jobs.files import print_progress, run_task_on_files
    from ..models import get_catalog
    from ..models.cards import register_job_model

    if params.get("model_id"):
        get_catalog().check_new_id(params["model_id"])
    processes = processes_of(args) if hasattr(args, "nproc_per_node") else None
    env = {"OMP_NUM_THREADS": str(threads_per_process(processes["nproc_per_node"]))} if processes else None
    result, job = run_task_on_files(task, inputs, params, None, args.device, args.keep_files, on_progress=print_progress,
                                    processes=processes, env=env)
    try:
        if "model" not in result["outputs"]:  # another machine of a multi-machine run holds rank 0 and the model
            print("training finished on this machine; the machine running the first process writes and registers the model")
            return 0
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
