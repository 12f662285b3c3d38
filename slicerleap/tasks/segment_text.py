"""Task "segment-text": one volume and a text prompt in, a labelmap (and optional probability) out, with a
text-prompted (MPTPN) catalog model. params: prompt; slab_mm [s1, s2] (patient S, mm) or absent for every axial
slice; probability; output_name; force (run outside the model's declared domain)."""
from __future__ import annotations

import numpy as np

from ..io import read_volume
from ..models import get_catalog
from ..models.domain import require_domain
from ..models.networks import load_model
from ..segmentation.mptpn.inference import segment_with_prompt


def run(ctx) -> dict:
    card = get_catalog().resolve(ctx.spec.model, "text-segmentation", "segment-text")
    image = read_volume(ctx.input_path("image"))
    domain = require_domain(image, card, bool(ctx.params.get("force", False)), ctx.report)  # before any work
    prompt = ctx.params.get("prompt", "")
    ctx.report(0.02, "loading model", f"{card['id']} on {ctx.device}")
    net = load_model(card, ctx.device)
    ctx.extra_result["model"] = {"id": card["id"], "sha256": card["sha256"]}
    labels, slices, probability = segment_with_prompt(image, card, net, prompt, ctx.device, ctx.params.get("slab_mm"), ctx.report,
                                                      bool(ctx.params.get("probability", False)))
    ctx.write_output(labels, "segmentation.nrrd")
    name = ctx.params.get("output_name") or f"{image.metadata.get('name', 'volume')}: {prompt.strip()}"
    outputs = {"segmentation": {"kind": "labels", "file": "outputs/segmentation.nrrd", "reference": "image", "labels": card["labels"],
                                "name": name, "attributes": {"SlicerLeap.model": card["id"], "SlicerLeap.provenance": "model",
                                                             "SlicerLeap.prompt": prompt.strip()}}}
    if probability is not None:
        ctx.write_output(probability, "probability.nrrd")
        outputs["probability"] = {"kind": "volume", "file": "outputs/probability.nrrd", "reference": "image", "name": name + " probability"}
    voxel_ml = float(np.prod(image.spacing)) / 1000.0
    return {"outputs": outputs, "metrics": {"slices": len(slices), "volume_ml": round(float((labels.array > 0).sum()) * voxel_ml, 3),
                                            "domain": domain.as_dict()}}
