"""Task "train-recon": an E2E-VarNet (reconstruction/varnet.py) on fully sampled k-space files, handed back as weights +
card (the parent registers it). Input "kspace": the files; parameters: ReconTrainingConfig's fields, "validation_files"
(default 1 when there are 2 or more files: subjects stay apart), model_id, title, training_data."""
from __future__ import annotations

from ..errors import BadInputError
from ..models.cards import model_output, trained_model_card
from ..models.weights import save_weights
from ..reconstruction.kspace import read_kspace
from ..reconstruction.masks import MASK_KINDS, acquired_lines
from ..reconstruction.training import ReconTrainingConfig, train_varnet


def run(ctx) -> dict:
    paths = ctx.input_paths("kspace")
    if not paths:
        raise BadInputError("Training needs fully sampled k-space files.", "Give a folder of .h5 (fastMRI layout) or .npy + .json files.")
    p = ctx.params
    files = []
    for n, path in enumerate(paths):
        kspace = read_kspace(path)
        lines = kspace.mask if kspace.mask is not None else acquired_lines(kspace.data)
        if not lines.all():
            raise BadInputError(f"Training file {n + 1} is undersampled ({int(lines.sum())} of {lines.size} lines).",
                                "Train on fully sampled k-space: the training undersamples it itself.")
        files.append(kspace)
        ctx.report(0.02 * (n + 1) / len(paths), "preparing", f"file {n + 1}/{len(paths)}: {kspace.data.shape[0]} slices, "
                   f"{kspace.data.shape[1]} coils")
    n_val = int(p["validation_files"] if p.get("validation_files") is not None else 1 if len(files) > 1 else 0)
    if n_val >= len(files):
        raise BadInputError(f"{n_val} validation file(s) leave none to train on.", "Give more files, or fewer validation files.")
    train = [s for f in files[:len(files) - n_val] for s in f.data]
    val = [s for f in files[len(files) - n_val:] for s in f.data]
    mask = p.get("mask", "random")
    if mask not in MASK_KINDS[1:]:
        raise BadInputError(f"Training mask '{mask}' is not equispaced or random.", "Use --mask equispaced or random.")
    fields = ReconTrainingConfig.__dataclass_fields__
    config = ReconTrainingConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in p.items() if k in fields and v is not None})
    net, history = train_varnet(train, val, config, ctx.device, ctx.report, ctx.stop_requested)
    if not history:
        raise BadInputError("Training stopped before the first validation: no model to keep.", "Let it run for one validation interval.")
    save_weights(net, ctx.output_path("model.safetensors"))
    scores = [h["val_psnr"] for h in history if h["val_psnr"] is not None]
    card = trained_model_card(
        p, default_id="my-varnet@1.0.0", default_title="E2E-VarNet trained in SlicerLeap", task="reconstruction",
        module="SuperResolution", architecture=config.architecture(),
        input_spec={"spacing_mm": [None, None, None],  # k-space in, the scan's own grid out
                    "normalisation": {"kind": "percentile", "lower": 0.0, "upper": 99.9},  # of each slice's zero-filled image
                    "kspace": "Cartesian 2D, centred, undersampled along the width", "coils": sorted({int(f.data.shape[1]) for f in files}),
                    "accelerations": list(config.accelerations), "mask": config.mask}, labels=[],
        training_data=f"{len(train)} slices from {len(files) - n_val} file(s), {len(val)} validation slices from {n_val} other file(s)",
        training=config.to_dict(), evaluation={"validation_score": "PSNR (dB) at 4x equispaced vs the fully sampled RSS",
                                               "best": max(scores) if scores else None, "history": history})
    card["modality"] = "MR"
    return {"outputs": {"model": model_output(ctx, card)},
            "metrics": {"best_validation_psnr": card["evaluation"]["best"], "steps": history[-1]["step"], "train_slices": len(train)}}
