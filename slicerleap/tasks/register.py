"""Task "register": fixed + moving volumes in; a displacement field (grid transform), the warped moving
volume and its Jacobian determinant out. Affine pre-alignment, then per-pair instance optimisation."""
from __future__ import annotations

import numpy as np

from ..io import read_volume
from ..io.transform_io import write_displacement_transform
from ..registration.affine import affine_register
from ..registration.instance_optimisation import InstanceOptimisationConfig, jacobian_determinant, optimise_displacement, sample_affine
from ..transforms import check_scalar_volume, normalise, resample_to_reference


def _ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    a, b = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-8))


def run(ctx) -> dict:
    fixed = read_volume(ctx.input_path("fixed"))
    moving = read_volume(ctx.input_path("moving"))
    check_scalar_volume(fixed, "fixed volume")
    check_scalar_volume(moving, "moving volume")
    p = ctx.params
    config = InstanceOptimisationConfig(working_spacing_mm=float(p.get("working_spacing_mm", 3.0)), levels=int(p.get("levels", 2)),
                                        iterations=int(p.get("iterations", 80)), smoothness=float(p.get("smoothness", 1.0)))
    if p.get("affine", True):
        ctx.report(0.02, "affine", "affine pre-alignment")
        affine = affine_register(fixed, moving, int(p.get("affine_iterations", 100)), ctx.report)
    else:
        affine = np.eye(4)
    field = optimise_displacement(fixed, moving, affine, config, ctx.device, ctx.report, should_stop=ctx.stop_requested)
    ctx.report(0.88, "outputs", "warping the moving volume and computing the Jacobian")
    displacement_on_fixed = _displacement_on_grid(field, fixed)
    warped = sample_affine(moving, fixed, np.eye(4), displacement_on_fixed)
    jac = jacobian_determinant(field)
    write_displacement_transform(field, ctx.output_path("displacement.nrrd"))
    ctx.write_output(fixed.with_array(warped.astype(np.float32)), "warped.nrrd")
    ctx.write_output(field.with_array(jac.astype(np.float32)), "jacobian.nrrd")
    mask = normalise(fixed.array, {"kind": "percentile", "lower": 1, "upper": 99}) > 0.05
    before = resample_to_reference(moving.with_array(moving.array.astype(np.float32)), fixed, "linear").array
    metrics = {"ncc_before": _ncc(fixed.array.astype(np.float32), before, mask),
               "ncc_after": _ncc(fixed.array.astype(np.float32), warped, mask),
               "folding_percent": float((jac <= 0).mean() * 100.0),
               "jacobian_min": float(jac.min()), "jacobian_max": float(jac.max())}
    ctx.report(0.95, "outputs", f"NCC {metrics['ncc_before']:.3f} -> {metrics['ncc_after']:.3f}, folding {metrics['folding_percent']:.3f}%")
    base = moving.metadata.get("name", "moving")
    return {"outputs": {
        "transform": {"kind": "displacement", "file": "outputs/displacement.nrrd", "fixed": "fixed", "moving": "moving",
                      "name": f"{base} to {fixed.metadata.get('name', 'fixed')} (deformable)"},
        "warped": {"kind": "volume", "file": "outputs/warped.nrrd", "reference": "fixed", "name": f"{base} warped"},
        "jacobian": {"kind": "volume", "file": "outputs/jacobian.nrrd", "next_to": "fixed", "name": f"{base} Jacobian determinant"},
    }, "metrics": metrics}


def _displacement_on_grid(field, grid) -> np.ndarray:
    """The RAS displacement sampled at every voxel of `grid` (linear interpolation per component)."""
    comps = [resample_to_reference(field.with_array(field.array[..., c].astype(np.float32)), grid, "linear", extrapolate=True).array
             for c in range(3)]
    return np.stack(comps, -1)
