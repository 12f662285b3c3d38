"""Task "train-interactive": train the click network (segmentation/interactive/) on image/label pairs by simulating
an annotator; hand back weights + card. Every label value is a structure to click on, and so is their union."""
from __future__ import annotations

from ..models.cards import model_output, trained_model_card
from ..models.domain import training_domain
from ..models.weights import save_weights
from ..segmentation.interactive.click_net import CLICK_RADIUS_MM, WORKING_MM
from ..segmentation.interactive.click_net_refiner import TASK
from ..segmentation.interactive.click_training import ClickTrainingConfig, config_dict, prepare_case, train_click_net
from .labelled_cases import labelled_cases


def run(ctx) -> dict:
    p = ctx.params
    config = ClickTrainingConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in (p.get("config") or {}).items()})
    measured = []
    cases = [prepare_case(image, label) for image, label in labelled_cases(ctx, [], measured)]
    net, history = train_click_net(cases, config, ctx.device, ctx.report, should_stop=ctx.stop_requested)
    save_weights(net, ctx.output_path("model.safetensors"))
    card = trained_model_card(
        p, default_id="my-clicks@1.0.0", default_title="Click network trained in SlicerLeap", task=TASK,
        module="SKSSegmentation", architecture=config.architecture(),
        input_spec={"spacing_mm": [WORKING_MM] * 3, "channels": 4, "click_radius_mm": CLICK_RADIUS_MM,
                    "normalisation": {"kind": "percentile", "lower": 1.0, "upper": 99.0, "over": "the interaction's region"}},
        labels=[], training_data=f"{len(cases)} user case(s) with labelmaps, clicks simulated on their structures",
        training=config_dict(config), evaluation={"history": history}, domain=training_domain(measured, p.get("modality")))
    return {"outputs": {"model": model_output(ctx, card)}, "metrics": {"final_loss": history[-1]["loss"] if history else None}}
