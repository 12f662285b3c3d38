"""Task "register": fixed + moving volumes in; a displacement field (grid transform), the warped moving
volume, its Jacobian determinant and, when a moving labelmap is given, the labels propagated onto the
fixed image out. Affine pre-alignment (SimpleITK), then either a catalog network (TM-DCA / VoxelMorph)
whose field is refined on the pair (optionally after neural instance optimisation), or direct per-pair
optimisation of the field."""
from __future__ import annotations

import time

import numpy as np

from ..io import read_volume
from ..io.transform_io import write_displacement_transform
from ..models import get_catalog
from ..models.domain import require_domain
from ..registration.affine import affine_register
from ..registration.field_metrics import field_metrics, ncc
from ..registration.instance_optimisation import InstanceOptimisationConfig, optimise_displacement
from ..registration.network_registration import register_with_network
from ..registration.methods import REGISTRATION
from ..registration.overlap import check_overlap
from ..registration.working_grid import jacobian_determinant, on_fixed_grid, warp_volume
from ..transforms import check_scalar_volume, normalise, resample_to_reference

def run(ctx) -> dict:
    method = ctx.params.get("method", "optimisation")
    p = {**ctx.params, **REGISTRATION.resolve(method, ctx.params)}  # checked, declared defaults filled in
    fixed = read_volume(ctx.input_path("fixed"))
    moving = read_volume(ctx.input_path("moving"))
    # the outputs (field, warped volume, Jacobian) live on the fixed grid: ~170 B per fixed voxel at the peak
    # (benchmarks/memory_estimates.py); the moving volume is already in memory
    check_scalar_volume(moving, "moving volume", bytes_per_voxel=0)
    check_scalar_volume(fixed, "fixed volume", bytes_per_voxel=176)
    domains = None
    if method == "network":  # both images checked against the network's domain before any work
        card = get_catalog().resolve(ctx.spec.model, "registration", "register")
        domains = {role: require_domain(image, card, p["force"], ctx.report,
                                        "Use --method optimisation (no trained network) or a network made for this kind of "
                                        "scan").as_dict() for role, image in (("fixed", fixed), ("moving", moving))}
    started = time.time()
    if p["affine"]:
        ctx.report(0.02, "affine", "affine pre-alignment")
        affine = affine_register(fixed, moving, int(p.get("affine_iterations", 300)), ctx.report)
    else:
        affine = np.eye(4)
    check_overlap(fixed, moving, affine)
    if method == "network":
        field, model = register_with_network(fixed, moving, affine, ctx.spec.model, p["nio_iterations"],
                                             ctx.device, ctx.report, ctx.stop_requested, refine_iterations=p["refine_iterations"])
        ctx.extra_result["model"] = {"id": model["id"], "sha256": model["sha256"]}
    else:
        config = InstanceOptimisationConfig(working_spacing_mm=p["working_spacing_mm"], levels=p["levels"],
                                            iterations=p["iterations"], smoothness=p["smoothness"])
        field = optimise_displacement(fixed, moving, affine, config, ctx.device, ctx.report, should_stop=ctx.stop_requested)
    field = on_fixed_grid(field, fixed)  # every output on the fixed image's grid, folding measured there
    seconds = time.time() - started
    ctx.report(0.88, "outputs", "warping the moving volume and computing the Jacobian")
    warped = warp_volume(moving, field, fixed)
    jac = jacobian_determinant(field)
    write_displacement_transform(field, ctx.output_path("displacement.nrrd"))
    ctx.write_output(fixed.with_array(warped.astype(np.float32)), "warped.nrrd")
    ctx.write_output(field.with_array(jac.astype(np.float32)), "jacobian.nrrd")
    mask = normalise(fixed.array, {"kind": "percentile", "lower": 1, "upper": 99}) > 0.05
    before = resample_to_reference(moving.with_array(moving.array.astype(np.float32)), fixed, "linear").array
    fixed_f = fixed.array.astype(np.float32)
    metrics = {"ncc_before": ncc(fixed_f, before, mask), "ncc_after": ncc(fixed_f, warped, mask),
               **field_metrics(jac), "registration_s": round(seconds, 2), "method": method}
    if domains:
        metrics["domain"] = domains
    ctx.report(0.95, "outputs", f"NCC {metrics['ncc_before']:.3f} -> {metrics['ncc_after']:.3f}, "
                                f"folding {metrics['folding_percent']:.3f}%")
    base = moving.metadata.get("name", "moving")
    outputs = {
        "transform": {"kind": "displacement", "file": "outputs/displacement.nrrd", "fixed": "fixed", "moving": "moving",
                      "name": f"{base} to {fixed.metadata.get('name', 'fixed')} (deformable)"},
        "warped": {"kind": "volume", "file": "outputs/warped.nrrd", "reference": "fixed", "name": f"{base} warped"},
        "jacobian": {"kind": "volume", "file": "outputs/jacobian.nrrd", "next_to": "fixed", "name": f"{base} Jacobian determinant"},
    }
    if "moving_labels" in ctx.spec.inputs:
        labels = read_volume(ctx.input_path("moving_labels"))
        propagated = warp_volume(labels, field, fixed, labels=True)
        ctx.write_output(fixed.with_array(propagated.astype(np.int16)), "labels.nrrd")
        outputs["labels"] = {"kind": "labels", "file": "outputs/labels.nrrd", "reference": "fixed",
                             "labels": p.get("labels") or [], "name": p.get("labels_name", f"{base} labels propagated"),
                             "attributes": {"SlicerLeap.provenance": "registration"}}
    return {"outputs": outputs, "metrics": metrics}
