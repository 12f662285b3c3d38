"""`slicerleap segment`: a volume, or a folder of volumes, with a catalog segmentation model."""
from __future__ import annotations

from pathlib import Path

from ..segmentation.inference_options import BRAIN_MASK_CHOICES
from .common import batch_options, is_volume_folder, job_options, refuse_batch_options_for_one_file, report_batch, run_task


def cmd_segment(args) -> int:
    source, target = Path(args.input), Path(args.output)
    params = {"backend": args.backend, "force": args.force, "brain_mask": args.brain_mask}
    if is_volume_folder(source):
        from ..batch import folder_items, run_batch

        items = folder_items("segment", source, target, params, args.model, "segmentation")
        return report_batch(run_batch(items, args.workers, args.cluster, args.device))
    refuse_batch_options_for_one_file(args)
    return run_task("segment", {"image": source}, {**params, "probability": bool(args.probability)}, args.model,
                args.device, args.keep_files,
                {"segmentation": target, "probability": args.probability, "brain_mask": args.brain_mask_output})


def add_commands(sub) -> None:
    p = sub.add_parser("segment", help="segment a volume (or a folder of volumes) with a catalog model")
    p.add_argument("--input", required=True, help="volume file, DICOM folder, or folder of volume files")
    p.add_argument("--output", required=True, help="labelmap file (geometry identical to the input), or folder")
    p.add_argument("--model", default=None, help="model id (default: the bundled default segmentation model)")
    p.add_argument("--probability", default=None, help="also write the foreground probability volume here")
    p.add_argument("--backend", choices=["auto", "torch", "openvino"], default="auto",
                   help="what runs the network: auto = OpenVINO on a CPU when installed and the volume is large enough "
                        "(same results, 2-3x faster for SKS), else PyTorch")
    p.add_argument("--force", action="store_true", help="run even when the scan is outside the model's declared domain "
                   "(another modality, not skull-stripped, ...): the result is then not what the model was made for")
    p.add_argument("--brain-mask", choices=BRAIN_MASK_CHOICES, default="auto",
                   help="auto: a T1 head that still has its skull, given to a model trained on skull-stripped brains, is "
                        "skull-stripped first by registering the MNI template (15-30 s; nothing is labelled outside that "
                        "brain; --brain-mask-output saves the mask); off: such a scan is refused (or run as is with --force)")
    p.add_argument("--brain-mask-output", default=None,
                   help="write the brain mask here when one was made (see --brain-mask)")
    job_options(p)
    batch_options(p)
    p.set_defaults(func=cmd_segment)
