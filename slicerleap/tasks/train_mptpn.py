"""Task "train-mptpn": train a text-prompted slice segmenter (MPTPN, or the image-only U-Net baseline) from cases
with masks; prompts are written from each slice's mask unless the user gave their own. Hands back weights + card.

inputs: images + labels (pairs). params: config (the declared training parameters, segmentation/training_methods.py:
MPTPN_TRAINING, method = "model", and other MPTPNTrainingConfig fields); prompts: one list per case (or
absent) of {"s_mm": patient S position of the axial slice, "prompt": text} that replace the generated prompt of
that slice; target: the word prompts use for the object (default "lesion"); label_value (default: any non-zero);
empty_share: lesion-free slices per lesion slice (default 0.25); in_plane_spacing_mm (default: median of the
images); model_id, title, modality, label."""
from __future__ import annotations


import numpy as np

from .. import __version__
from ..errors import BadInputError
from ..io import read_volume
from ..mixed_precision import resolve_precision
from ..models.cards import model_output, trained_model_card
from ..models.domain import measure_training_case, training_domain
from ..models.weights import save_weights
from ..segmentation.mptpn import text_encoder
from ..segmentation.label_specs import LESION_LABEL
from ..segmentation.mptpn.trainer import MPTPNTrainingConfig, train_mptpn
from ..segmentation.training_methods import MPTPN_TRAINING, training_config
from ..segmentation.mptpn.prompted_slices import PromptedSlices, prompted_slices
from ..segmentation.slice_data import median_in_plane_spacing, prepare_case, slice_input_spec
from ..segmentation.mptpn.inference import slice_positions_mm
from ..transforms import check_scalar_volume

ENCODER_DIFFERENCE = ("The paper's text branch reads BERT-base (12 layers, 768-d word vectors); this model reads "
                      "all-MiniLM-L6-v2 (6-layer BERT distilled for sentence similarity, 384-d), frozen and shipped in a "
                      "PyPI wheel because nothing may be downloaded at run time. The Conv1d text branch projects its "
                      "vectors to the width MPTPN needs.")


def text_prompt_spec() -> dict:
    return {"encoder": text_encoder.NAME, "max_tokens": text_encoder.MAX_TOKENS, "width": text_encoder.width(),
            "differs_from_paper": ENCODER_DIFFERENCE}


def _user_prompts(entries, case) -> dict[int, str]:
    """{grid slice k: prompt} from [{"s_mm", "prompt"}]: the slice whose centre is nearest to each position."""
    positions = slice_positions_mm(case.grid)
    out = {}
    for entry in entries or []:
        if not str(entry.get("prompt", "")).strip() or "s_mm" not in entry:
            raise BadInputError(f"A user prompt of '{case.name}' needs both 's_mm' and a non-empty 'prompt': got {entry}.",
                                "Give each prompt with the S position (mm) of the slice it describes.")
        out[int(np.argmin(np.abs(positions - float(entry["s_mm"]))))] = str(entry["prompt"]).strip()
    return out


def run(ctx) -> dict:
    p = ctx.params
    images, labels = ctx.input_paths("images"), ctx.input_paths("labels")
    if not images or len(images) != len(labels):
        raise BadInputError(f"Text-prompted training needs cases with masks; got {len(images)} images and {len(labels)} labelmaps.",
                            "Segment the target in each training case (Segment Editor), then train.")
    user_prompts = p.get("prompts") or [None] * len(images)
    if len(user_prompts) != len(images):
        raise BadInputError(f"{len(user_prompts)} prompt lists for {len(images)} cases.", "Give one prompt list (or null) per case.")
    config = MPTPNTrainingConfig(**training_config(MPTPN_TRAINING, p.get("config"), MPTPNTrainingConfig))
    label_value, target = p.get("label_value"), str(p.get("target", "lesion"))
    pairs = []
    label = {**LESION_LABEL, **p.get("label", {}), "value": 1}
    for n, (i, l) in enumerate(zip(images, labels)):
        image = read_volume(i)
        check_scalar_volume(image, f"training image {n + 1}", min_size=1)
        pairs.append((image, read_volume(l)))
    measured = [measure_training_case(image, (lab.array == label_value) if label_value is not None else lab.array > 0, [label])
                for image, lab in pairs]
    spacing = float(p.get("in_plane_spacing_mm") or median_in_plane_spacing([im for im, _ in pairs]))
    spec = slice_input_spec(spacing, 0, p.get("normalisation"))
    rng = np.random.default_rng(config.seed)
    parts = []
    for n, (image, lab) in enumerate(pairs):
        ctx.report(0.05 * n / len(pairs), "preparing", f"case {n + 1}/{len(pairs)}")
        binary = lab.with_array((lab.array == label_value) if label_value is not None else lab.array > 0)
        case = prepare_case(image, spec, binary)
        parts.append(prompted_slices(case, config.img_size, float(p.get("empty_share", 0.25)), rng=rng, target=target,
                                     prompts=_user_prompts(user_prompts[n], case)))
    train = PromptedSlices.concatenate(parts)
    lesion_slices = int((train.masks.flatten(1).sum(1) > 0).sum())
    if not lesion_slices:
        raise BadInputError("No axial slice of the training cases shows the target (>= 5 pixels at the working spacing).",
                            "Check that the labelmaps hold the target, or use a finer --spacing.")
    net, history, seconds = train_mptpn(
        train, config, ctx.device, lambda f, message, record: ctx.report(0.05 + 0.9 * f, "training", message, **{k: v for k, v in record.items() if k != "stage"}),
        ctx.stop_requested)
    save_weights(net.net if config.model == "unet" else net, ctx.output_path("model.safetensors"))
    kind = "MPTPN (text-prompted, 2D)" if config.model == "mptpn" else "MONAI 2D U-Net (image only, prompts ignored)"
    card = trained_model_card(
        p, default_id=f"my-{config.model}-text@1.0.0", default_title=f"{kind} trained in SlicerLeap", task="text-segmentation",
        module="SKSSegmentation", architecture=config.architecture(),
        input_spec={**spec, "img_size": config.img_size, "text_prompt": text_prompt_spec()},
        labels=[label], domain=training_domain(measured, p.get("modality")),
        training_data=f"{len(pairs)} case(s) with masks from the user's scene or folder: {len(train)} axial slices "
                      f"({lesion_slices} showing the {target}), prompts "
                      f"{'partly written by the user, the rest ' if any(user_prompts) else ''}generated from the masks",
        training={**config.to_dict(), "precision": resolve_precision(config.precision, ctx.device),  # stage 1 always fp32
                  "seconds": round(seconds, 1), "device": str(ctx.device), "slicerleap": __version__},
        evaluation={"history": [r for r in history if r.get("step", 0) % 10 == 0 or r is history[-1]]})
    return {"outputs": {"model": model_output(ctx, card)},
            "metrics": {"final_loss": history[-1]["loss"] if history else None, "seconds": round(seconds, 1),
                        "cases": len(pairs), "slices": len(train), "lesion_slices": lesion_slices}}
