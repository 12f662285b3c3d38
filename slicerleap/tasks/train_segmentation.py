"""Task "train-segmentation": train a MONAI U-Net on image/label pairs and hand back weights + card.

The parent registers the model in the user catalog only when the job succeeds, so a cancelled or
failed training leaves the catalog as it was."""
from __future__ import annotations


import numpy as np

from ..errors import BadInputError
from ..io import read_volume
from ..models.cards import model_output, trained_model_card
from ..models.domain import measure_training_case, training_domain
from ..models.weights import save_weights
from ..segmentation.unet_trainer import UNetTrainingConfig, prepare_pair, train_unet
from ..transforms import check_scalar_volume


def run(ctx) -> dict:
    images, labels = ctx.input_paths("images"), ctx.input_paths("labels")
    if not images or len(images) != len(labels):
        raise BadInputError(f"Training needs pairs of images and labels; got {len(images)} images and {len(labels)} labelmaps.",
                            "Give one segmentation per training volume.")
    p = ctx.params
    label_specs = p.get("labels") or []
    n_classes = 1 + max([int(l["value"]) for l in label_specs] or [1])
    config = UNetTrainingConfig(
        spacing_mm=tuple(p.get("spacing_mm", (2.0, 2.0, 2.0))), patch=tuple(p.get("patch", (64, 64, 64))),
        channels=tuple(p.get("channels", (8, 16, 32, 64))), strides=(2,) * (len(p.get("channels", (8, 16, 32, 64))) - 1), epochs=int(p.get("epochs", 10)),
        iterations_per_epoch=int(p.get("iterations_per_epoch", 10)), batch_size=int(p.get("batch_size", 2)),
        learning_rate=float(p.get("learning_rate", 2e-3)), n_classes=n_classes, seed=int(p.get("seed", 0)),
        normalisation=p.get("normalisation", {"kind": "percentile", "lower": 0.5, "upper": 99.5}))
    pairs, measured = [], []
    for n, (image_path, label_path) in enumerate(zip(images, labels)):
        image, label = read_volume(image_path), read_volume(label_path)
        check_scalar_volume(image, f"training image {n + 1}", working_spacing=config.spacing_mm)
        if not np.any(label.array):
            raise BadInputError(f"Training labelmap {n + 1} ('{label.metadata.get('name')}') is empty.",
                                "Paint at least one structure, or leave that case out.")
        ctx.report(0.02 * (n + 1) / len(images), "preparing", f"case {n + 1}/{len(images)}")
        measured.append(measure_training_case(image, label.array, label_specs))
        pairs.append(prepare_pair(image, label, config))
    n_val = int(p["validation_cases"] if p.get("validation_cases") is not None else 1 if len(pairs) > 2 else 0)
    train, val = pairs[n_val:] or pairs, pairs[:n_val] or pairs
    net, history = train_unet(train, val, config, ctx.device, ctx.report)
    save_weights(net, ctx.output_path("model.safetensors"))
    card = trained_model_card(
        p, default_id="my-unet@1.0.0", default_title="U-Net trained in SlicerLeap", task="segmentation",
        module="SKSSegmentation", architecture=config.architecture(),
        input_spec={"spacing_mm": list(config.spacing_mm), "patch": list(config.patch), "channels": 1,
                    "normalisation": config.normalisation},
        labels=label_specs,
        training_data=f"{len(pairs)} user case(s) ({len(train)} train / {len(val)} validation) from the user's own scene or folder",
        evaluation={"history": history, "final_val_dice": history[-1]["val_dice"]},
        domain=training_domain(measured, p.get("modality")))
    return {"outputs": {"model": model_output(ctx, card)},
            "metrics": {"final_val_dice": history[-1]["val_dice"], "epochs": len(history)}}
