"""Task "train-segmentation": train a MONAI U-Net on image/label pairs and hand back weights + card.

The parent registers the model in the user catalog only when the job succeeds, so a cancelled or
failed training leaves the catalog as it was."""
from __future__ import annotations


from ..models.cards import model_output, trained_model_card
from ..models.domain import training_domain
from ..models.weights import save_weights
from ..segmentation.unet_trainer import UNetTrainingConfig, prepare_pair, train_unet
from .labelled_cases import labelled_cases


def run(ctx) -> dict:
    p = ctx.params
    label_specs = p.get("labels") or []
    n_classes = 1 + max([int(l["value"]) for l in label_specs] or [1])
    config = UNetTrainingConfig(
        spacing_mm=tuple(p.get("spacing_mm", (2.0, 2.0, 2.0))), patch=tuple(p.get("patch", (64, 64, 64))),
        channels=tuple(p.get("channels", (8, 16, 32, 64))), strides=(2,) * (len(p.get("channels", (8, 16, 32, 64))) - 1), epochs=int(p.get("epochs", 10)),
        iterations_per_epoch=int(p.get("iterations_per_epoch", 10)), batch_size=int(p.get("batch_size", 2)),
        learning_rate=float(p.get("learning_rate", 2e-3)), n_classes=n_classes, seed=int(p.get("seed", 0)),
        normalisation=p.get("normalisation", {"kind": "percentile", "lower": 0.5, "upper": 99.5}))
    measured = []
    pairs = [prepare_pair(image, label, config) for image, label in labelled_cases(ctx, label_specs, measured, config.spacing_mm)]
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
