"""Task "segment": one volume in, a labelmap (and optional foreground probability) out, with a catalog model. The scan
is checked against the model's declared domain first (models/domain.py): refused outside it unless params["force"].
A T1 head with its skull given to a brain model is skull-stripped first by registering the MNI template
(registration/brain_extraction.py; params["brain_mask"] = "off" to refuse it instead), and nothing is labelled
outside that brain."""
from __future__ import annotations

import numpy as np

from ..data.samples import BRAIN_LABEL, mni_brain_template
from ..io import read_volume
from ..models import get_catalog
from ..models.domain import check_domain, check_result, require_domain, wants_brain_extraction
from ..models.networks import load_model
from ..registration.brain_extraction import extract_brain
from ..segmentation.inference import segment_volume
from ..segmentation.inference_options import check_brain_mask
from ..transforms.input_checks import check_volume_content


def run(ctx) -> dict:
    card = get_catalog().resolve(ctx.spec.model, "segmentation", "segment")
    image = read_volume(ctx.input_path("image"))
    check_volume_content(image, min_size=1)  # a broken scan is named as such, not as outside the domain
    brain_mask = check_brain_mask(ctx.params.get("brain_mask", "auto"))
    brain, brain_info = None, None
    check = check_domain(image, card)  # once: it also says whether the scan still has its skull
    if brain_mask == "auto" and wants_brain_extraction(check, card):
        ctx.report(0.02, "brain mask", "the scan has its skull; the model was trained on skull-stripped brains")
        brain, brain_info = extract_brain(image, mni_brain_template(), ctx.report)
        image = image.with_array(image.array.astype(np.float32) * brain.array)  # the model sees what it was trained on
        check = None  # the brain is checked again
    domain = require_domain(image, card, bool(ctx.params.get("force", False)), ctx.report, check=check)  # before any work
    ctx.report(0.05, "loading model", f"{card['id']} on {ctx.device}")
    net = load_model(card, ctx.device)
    ctx.extra_result["model"] = {"id": card["id"], "sha256": card["sha256"]}
    labels, probability = segment_volume(image, card, net, ctx.device, ctx.report,
                                         with_probabilities=bool(ctx.params.get("probability", False)),
                                         postprocess=ctx.params.get("postprocess"), backend=ctx.params.get("backend", "auto"))
    if brain is not None:  # nothing labelled outside the brain
        labels = labels.with_array(np.where(brain.array > 0, labels.array, 0))
    ctx.write_output(labels.with_array(labels.array.astype(np.int16)), "segmentation.nrrd")
    outputs = {"segmentation": {"kind": "labels", "file": "outputs/segmentation.nrrd", "reference": "image",
                                "labels": card["labels"], "name": ctx.params.get("output_name", labels.metadata["name"]),
                                "attributes": {"SlicerLeap.model": card["id"], "SlicerLeap.provenance": "model"}}}
    if probability is not None:
        ctx.write_output(probability, "probability.nrrd")
        outputs["probability"] = {"kind": "volume", "file": "outputs/probability.nrrd", "reference": "image",
                                  "name": labels.metadata["name"] + " probability"}
    if brain is not None:
        ctx.write_output(brain.with_array(brain.array.astype(np.int16)), "brain_mask.nrrd")
        outputs["brain_mask"] = {"kind": "labels", "file": "outputs/brain_mask.nrrd", "reference": "image",
                                 "labels": [BRAIN_LABEL], "name": brain.metadata["name"],
                                 "attributes": {"SlicerLeap.provenance": "registration"}}
    result_check = check_result(image, labels.array, card, domain.tissue)
    for finding in result_check:
        ctx.report(0.97, "result check", "Warning: " + finding)
    voxel_ml = float(np.prod(image.spacing)) / 1000.0
    metrics = {"volume_ml": {l["name"]: round(float((labels.array == l["value"]).sum()) * voxel_ml, 3) for l in card["labels"]},
               "domain": domain.as_dict(), "result_check": result_check}
    if brain_info is not None:
        metrics["brain_mask"] = brain_info
    return {"outputs": outputs, "metrics": metrics}
