"""Task "segment": one volume in, a labelmap (and optional foreground probability) out, with a catalog model. The scan
is checked against the model's declared domain first (models/domain.py): refused outside it unless params["force"]."""
from __future__ import annotations

import numpy as np

from ..io import read_volume
from ..models import get_catalog
from ..models.domain import check_result, require_domain
from ..models.networks import load_model
from ..segmentation.inference import segment_volume
from ..transforms.input_checks import check_volume_content


def run(ctx) -> dict:
    card = get_catalog().resolve(ctx.spec.model, "segmentation", "segment")
    image = read_volume(ctx.input_path("image"))
    check_volume_content(image, min_size=1)  # a broken scan is named as such, not as outside the domain
    domain = require_domain(image, card, bool(ctx.params.get("force", False)), ctx.report)  # before any work
    ctx.report(0.05, "loading model", f"{card['id']} on {ctx.device}")
    net = load_model(card, ctx.device)
    ctx.extra_result["model"] = {"id": card["id"], "sha256": card["sha256"]}
    labels, probability = segment_volume(image, card, net, ctx.device, ctx.report,
                                         with_probabilities=bool(ctx.params.get("probability", False)),
                                         postprocess=ctx.params.get("postprocess"), backend=ctx.params.get("backend", "auto"))
    ctx.write_output(labels.with_array(labels.array.astype(np.int16)), "segmentation.nrrd")
    outputs = {"segmentation": {"kind": "labels", "file": "outputs/segmentation.nrrd", "reference": "image",
                                "labels": card["labels"], "name": ctx.params.get("output_name", labels.metadata["name"]),
                                "attributes": {"SlicerLeap.model": card["id"], "SlicerLeap.provenance": "model"}}}
    if probability is not None:
        ctx.write_output(probability, "probability.nrrd")
        outputs["probability"] = {"kind": "volume", "file": "outputs/probability.nrrd", "reference": "image",
                                  "name": labels.metadata["name"] + " probability"}
    result_check = check_result(image, labels.array, card, domain.tissue)
    for finding in result_check:
        ctx.report(0.97, "result check", "Warning: " + finding)
    voxel_ml = float(np.prod(image.spacing)) / 1000.0
    metrics = {"volume_ml": {l["name"]: round(float((labels.array == l["value"]).sum()) * voxel_ml, 3) for l in card["labels"]},
               "domain": domain.as_dict(), "result_check": result_check}
    return {"outputs": outputs, "metrics": metrics}
