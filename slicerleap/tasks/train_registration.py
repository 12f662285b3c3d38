"""Task "train-registration": train (or fine-tune) a registration network on the user's own images —
pairs of different subjects after affine co-alignment, plus deformed copies and, optionally, synthetic
label maps — and hand back weights + card. Labelmaps are optional: with them, Dice of warped labels
joins the loss (weak supervision) and picks the best weights; without, local NCC does.

The parent registers the model only when the job succeeds: a failed or cancelled training leaves the
catalog as it was."""
from __future__ import annotations


from ..errors import BadInputError
from ..io import read_volume
from ..models.cards import model_output, trained_model_card
from ..models import get_catalog
from ..models.weights import load_verified_state_dict, save_weights
from ..registration.losses import REGULARISERS, SIMILARITIES, RegistrationLossConfig
from ..registration.training import RegistrationTrainingConfig, tm_dca_architecture, train_registration, voxelmorph_architecture
from ..registration.training_pairs import PairSampler, PairSamplerConfig, prepare_training_set
from ..registration.working_grid import NORMALISATION
from ..transforms import check_scalar_volume


def run(ctx) -> dict:
    image_paths, label_paths = ctx.input_paths("images"), ctx.input_paths("labels")
    if len(image_paths) < 1:
        raise BadInputError("Training a registration network needs at least one image.", "Give two or more images of different subjects.")
    if label_paths and len(label_paths) != len(image_paths):
        raise BadInputError(f"Got {len(label_paths)} labelmaps for {len(image_paths)} images.", "Give a labelmap for every image, or none.")
    p = ctx.params
    if p.get("regulariser", "diffusion") not in REGULARISERS or p.get("similarity", "lncc") not in SIMILARITIES:
        raise BadInputError(f"Unknown regulariser '{p.get('regulariser')}' or similarity '{p.get('similarity')}'.",
                            f"Regularisers: {', '.join(REGULARISERS)}; similarities: {', '.join(SIMILARITIES)}.")
    images = [read_volume(path) for path in image_paths]
    for n, image in enumerate(images):
        check_scalar_volume(image, f"training image {n + 1}")
    labels = [read_volume(path) for path in label_paths] or None
    start_card = get_catalog().get(p["start_from"], "registration", "train-registration") if p.get("start_from") else None
    spacing = float(start_card["input"]["spacing_mm"][0]) if start_card else float(p.get("spacing_mm", 2.5))
    architecture = (start_card["architecture"] if start_card else
                    tm_dca_architecture() if p.get("architecture", "tm-dca") == "tm-dca" else voxelmorph_architecture())
    data = prepare_training_set(images, labels, spacing, ctx.report)
    n_classes = 1 + max(int(lab.max()) for _, lab in data) if labels else 1
    shape = data[0][0].shape
    sampler = PairSampler(data, PairSamplerConfig(shape=shape, synthetic_fraction=float(p.get("synthetic_fraction", 0.2)),
                                                  max_displacement_voxels=float(p.get("max_displacement_voxels", 3.0))), seed=int(p.get("seed", 0)))
    validation = PairSampler(data, PairSamplerConfig(shape=shape, synthetic_fraction=0.0), seed=int(p.get("seed", 0)) + 1000)
    validation_pairs = [validation.sample() for _ in range(max(2, min(4, len(data))))]
    config = RegistrationTrainingConfig(architecture=architecture, iterations=int(p.get("iterations", 300)),
                                        learning_rate=float(p.get("learning_rate", 3e-4 if start_card is None else 1e-4)),
                                        validate_every=int(p.get("validate_every", 50)), seed=int(p.get("seed", 0)),
                                        loss=RegistrationLossConfig(similarity=p.get("similarity", "lncc"),
                                                                    regulariser=p.get("regulariser", "diffusion")))
    initial = load_verified_state_dict(start_card) if start_card else None
    net, history = train_registration(sampler, validation_pairs, config, ctx.device, n_classes, ctx.report, ctx.stop_requested, initial)
    if not history:
        raise BadInputError("Training stopped before the first validation: no model to keep.", "Let it run for at least one validation interval.")
    save_weights(net, ctx.output_path("model.safetensors"))
    score = "Dice of warped labels" if labels else "local NCC after warping"
    card = trained_model_card(
        p, default_id="my-registration@1.0.0", default_title="Registration network trained in SlicerLeap", task="registration",
        module="RegistrationDL", architecture=architecture,
        input_spec={"spacing_mm": [spacing] * 3, "channels": 1, "normalisation": NORMALISATION}, labels=[],
        training_data=f"{len(images)} user image(s){' with labelmaps' if labels else ''}, affinely co-aligned; pairs of "
                      "different subjects and deformed copies" + (f"; fine-tuned from {start_card['id']}" if start_card else ""),
        evaluation={"validation_score": score, "best": max(h["val_dice"] for h in history), "history": history})
    return {"outputs": {"model": model_output(ctx, card)},
            "metrics": {"best_validation": card["evaluation"]["best"], "validation_score": score,
                        "iterations": history[-1]["iteration"], "images": len(images)}}
