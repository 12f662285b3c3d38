"""Task "superres": restore a thick-slice volume at a finer spacing.

Methods and their parameters: slicerleap/enhancement/methods.py (SR4ZCT, dmDIP with an optional second co-registered
contrast, TV reconstruction, and the interpolators). Job parameters besides those: "spacing" (target, mm),
"resume_from" (SR4ZCT), "output_name", "output_name2"."""
from __future__ import annotations

import json

import numpy as np

from ..enhancement.checkpoints import CHECKPOINT_ATTRIBUTE
from ..enhancement.methods import SUPERRES
from ..errors import BadInputError
from ..io import read_volume
from ..transforms import check_scalar_volume, resample_to_reference, resample_to_spacing


def target_spacing(volume, requested) -> list[float]:
    """Requested spacing (mm), or isotropic at the finest in-plane spacing."""
    if requested:
        spacing = [float(s) for s in (requested if isinstance(requested, (list, tuple)) else [requested] * 3)]
        if len(spacing) != 3 or min(spacing) <= 0:
            raise BadInputError(f"Target spacing {requested} is not three positive numbers (mm).", "Give e.g. 1.0 or [1, 1, 1].")
        return spacing
    return [float(min(volume.spacing))] * 3


def spacing_notes(input_spacing, target) -> list[str]:
    """What the user should know about the requested grid: axes it makes coarser (one --spacing value is isotropic,
    so 1.5 mm asked of a 0.96 mm CT also coarsens its slices' pixels), or nothing to restore at all."""
    axes = "IJK"
    coarser = [f"{axes[n]} ({input_spacing[n]:g} -> {target[n]:g} mm)" for n in range(3) if target[n] > input_spacing[n] * 1.001]
    notes = []
    if coarser:
        notes.append(f"The output is coarser than the input along {', '.join(coarser)}: detail is lost there. To refine only the "
                     f"slices, give three values, e.g. --spacing {input_spacing[0]:g} {input_spacing[1]:g} {min(target):g}.")
    if np.allclose(input_spacing, target, rtol=1e-3):
        notes.append(f"The input is already at the target spacing ({', '.join(f'{s:g}' for s in target)} mm): there is "
                     f"nothing to restore, the output only repeats the input.")
    return notes


def _at_spacing(volume, spacing):
    """The per-scan methods restore to the in-plane pixel size; cubic B-spline takes them to any other spacing."""
    return volume if np.allclose(volume.spacing, spacing, rtol=1e-3) else resample_to_spacing(volume, spacing, "bspline")


def _sr4zct(ctx, p, image, spacing):
    """SR4ZCT, from scratch or resuming the network of an earlier result on the same volume ("resume_from": its
    checkpoint reference). Returns the restored volume and the new checkpoint reference."""
    from ..enhancement.checkpoints import load_checkpoint, save_checkpoint
    from ..enhancement.sr4zct import SR4ZCTConfig, sr4zct_with_network

    config = SR4ZCTConfig(thickness_mm=p["thickness_mm"] or None, network=p["network"], iterations=p["iterations"],
                          time_budget_s=p["time_budget_s"] or None, seed=p["seed"])
    info = {"network": config.network, "thickness_mm": config.thickness_mm, "shape_ijk": list(image.shape_ijk),
            "spacing_mm": [round(float(s), 5) for s in image.spacing]}
    resume, state, done_before = ctx.params.get("resume_from"), None, 0
    if resume:
        changed = [key for key in info if resume.get(key) != info[key]]
        if changed:
            raise BadInputError(f"The result to continue from was trained with a different {', '.join(changed)} "
                                "(another volume or other settings).",
                                "Continue only from a result of this volume with the same settings, or start from scratch.")
        state, done_before = load_checkpoint(resume), int(resume.get("iterations_done", 0))
        config.seed += done_before  # new crops, not the first run's again
        ctx.report(0.03, "training", f"continuing from {done_before} iterations")
    restored, net, done = sr4zct_with_network(image, config, ctx.device, ctx.report, should_stop=ctx.stop_requested,
                                              initial_state=state)
    reference = save_checkpoint(net, {**info, "iterations_done": done_before + done})
    return _at_spacing(restored, spacing), reference


def _dmdip(ctx, p, image, spacing):
    """dmDIP on the input and, when given, the second contrast (same grid). Returns both restored volumes."""
    from ..enhancement.dmdip import DMDIPConfig, dmdip

    volumes = [image]
    if "image2" in ctx.spec.inputs:
        second = read_volume(ctx.input_path("image2"))
        if not second.same_geometry(image, atol=1e-4):
            raise BadInputError("The second contrast is not on the same voxel grid as the first.",
                                "Register and resample it onto the first volume (e.g. RegistrationDL, then Resample), then run again.")
        check_scalar_volume(second, "second contrast", min_size=2)
        volumes.append(second.with_array(second.array.astype(np.float32)))
    config = DMDIPConfig(iterations=p["iterations"], time_budget_s=p["time_budget_s"] or None, seed=p["seed"],
                         thickness_mm=p["thickness_mm"] or None, degradation=p["degradation"], tv_weight=p["tv_weight"])
    restored = dmdip(volumes, config, ctx.device, ctx.report, should_stop=ctx.stop_requested)
    return [_at_spacing(r, spacing) for r in restored]


BYTES_PER_FINE_VOXEL = {"tv": 64}


def run(ctx) -> dict:
    method = SUPERRES.method(ctx.params.get("method", "bspline")).name  # unknown: refused; "cubic" is bspline
    p = SUPERRES.resolve(method, ctx.params)  # checked, the method's declared defaults filled in
    image = read_volume(ctx.input_path("image"))
    spacing = target_spacing(image, ctx.params.get("spacing"))
    # peak per voxel of the finest grid the method passes through (in-plane of the input, through-plane of the
    # target), measured by benchmarks/memory_estimates.py: ~20-28 B for interpolation, ~64 B for tv
    finest = np.minimum(image.spacing, np.asarray(spacing, float))
    check_scalar_volume(image, min_size=2 if method != "sr4zct" else 8, working_spacing=finest,
                        bytes_per_voxel=BYTES_PER_FINE_VOXEL.get(method, 28))
    notes = spacing_notes(image.spacing, spacing)
    for note in notes:
        ctx.report(0.01, "checking", note)
    ctx.report(0.02, "resampling" if method != "sr4zct" else "training", f"{method} to {spacing} mm")
    source = image.with_array(image.array.astype(np.float32))
    outputs, attributes = {}, {}
    if method == "sr4zct":
        out, checkpoint = _sr4zct(ctx, p, source, spacing)
        attributes[CHECKPOINT_ATTRIBUTE] = json.dumps(checkpoint)
    elif method == "dmdip":
        out, *second = _dmdip(ctx, p, source, spacing)
        if second:
            outputs["volume2"] = {"kind": "volume", "file": ctx.write_output(second[0], "restored2.nrrd"), "next_to": "image2",
                                  "name": f"{ctx.params.get('output_name2', 'second contrast')} dmdip"}
    elif method == "tv":
        from ..enhancement.tv_reconstruction import tv_reconstruct

        out = _at_spacing(tv_reconstruct(source, ctx.device, p["thickness_mm"] or None, p["degradation"], p["iterations"],
                                         ctx.report, ctx.stop_requested), spacing)
    else:
        out = resample_to_spacing(source, spacing, method)
    ctx.check_cancelled()
    if p["difference_from_cubic"]:  # what the method added beyond cubic interpolation
        cubic = resample_to_reference(source, out, "bspline", extrapolate=True)
        outputs["difference"] = {"kind": "volume", "file": ctx.write_output(out.with_array(out.array - cubic.array), "difference.nrrd"),
                                 "next_to": "image", "name": f"{image.metadata.get('name', 'volume')} {method} minus cubic"}
    if np.issubdtype(image.array.dtype, np.integer):  # keep the scanner's integer type (overshoot clipped)
        info = np.iinfo(image.array.dtype)
        out = out.with_array(np.clip(np.rint(out.array), info.min, info.max).astype(image.array.dtype))
    name = ctx.params.get("output_name", f"{image.metadata.get('name', 'volume')} {method} {spacing[2]:g}mm")
    outputs["volume"] = {"kind": "volume", "file": ctx.write_output(out, "restored.nrrd"), "next_to": "image", "name": name,
                         "attributes": attributes}
    return {"outputs": outputs,
            "metrics": {"method": method, "input_spacing_mm": image.spacing.round(4).tolist(), "output_spacing_mm": spacing,
                        "output_shape_ijk": list(out.shape_ijk), "notes": notes}}
