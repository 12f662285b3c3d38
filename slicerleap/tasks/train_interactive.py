"""Task "train-interactive": train the click network (segmentation/interactive/) on image/label pairs by simulating
an annotator; hand back weights + card. Every label value is a structure to click on, and so is their union."""
from __future__ import annotations

import numpy as np

from ..errors import BadInputError
from ..io import read_volume
from ..models.cards import model_output, trained_model_card
from ..models.weights import save_weights
from ..segmentation.interactive.click_net import CLICK_RADIUS_MM, WORKING_MM
from ..segmentation.interactive.click_net_refiner import TASK
from ..segmentation.interactive.click_training import ClickTrainingConfig, config_dict, prepare_case, train_click_net
from ..transforms import check_scalar_volume


def run(ctx) -> dict:
    images, labels = ctx.input_paths("images"), ctx.input_paths("labels")
    if not images or len(images) != len(labels):
        raise BadInputError(f"Training needs pairs of images and labels; got {len(images)} images and {len(labels)} labelmaps.",
                            "Give one labelmap per training volume, named like it.")
    p = ctx.params
    config = ClickTrainingConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in (p.get("config") or {}).items()})
    cases = []
    for n, (image_path, label_path) in enumerate(zip(images, labels)):
        image, label = read_volume(image_path), read_volume(label_path)
        check_scalar_volume(image, f"training image {n + 1}")
        if not np.any(label.array):
            raise BadInputError(f"Training labelmap {n + 1} ('{label.metadata.get('name')}') is empty.",
                                "Paint at least one structure, or leave that case out.")
        ctx.report(0.02 * (n + 1) / len(images), "preparing", f"case {n + 1}/{len(images)}")
        cases.append(prepare_case(image, label))
    net, history = train_click_net(cases, config, ctx.device, ctx.report, should_stop=ctx.stop_requested)
    save_weights(net, ctx.output_path("model.safetensors"))
    card = trained_model_card(
        p, default_id="my-clicks@1.0.0", default_title="Click network trained in SlicerLeap", task=TASK,
        module="SKSSegmentation", architecture=config.architecture(),
        input_spec={"spacing_mm": [WORKING_MM] * 3, "channels": 4, "click_radius_mm": CLICK_RADIUS_MM,
                    "normalisation": {"kind": "percentile", "lower": 1.0, "upper": 99.0, "over": "the interaction's region"}},
        labels=[], training_data=f"{len(cases)} user case(s) with labelmaps, clicks simulated on their structures",
        training=config_dict(config), evaluation={"history": history})
    if p.get("modality") not in (None, "any"):
        card["domain"] = {"modality": p["modality"], "source": "the modality the user gave for the training cases"}
    return {"outputs": {"model": model_output(ctx, card)}, "metrics": {"final_loss": history[-1]["loss"] if history else None}}
