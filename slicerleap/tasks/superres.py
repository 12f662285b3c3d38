"""Task "superres": resample a thick-slice volume to a finer spacing with a classical interpolator
(linear, cubic B-spline, windowed sinc) — the baselines the learned methods are compared with."""
from __future__ import annotations

import numpy as np

from ..errors import BadInputError
from ..io import read_volume
from ..transforms import check_scalar_volume, resample_to_spacing

METHODS = ("linear", "bspline", "sinc")


def target_spacing(volume, requested) -> list[float]:
    """Requested spacing (mm), or isotropic at the finest in-plane spacing."""
    if requested:
        spacing = [float(s) for s in (requested if isinstance(requested, (list, tuple)) else [requested] * 3)]
        if len(spacing) != 3 or min(spacing) <= 0:
            raise BadInputError(f"Target spacing {requested} is not three positive numbers (mm).", "Give e.g. 1.0 or [1, 1, 1].")
        return spacing
    return [float(min(volume.spacing))] * 3


def run(ctx) -> dict:
    method = ctx.params.get("method", "bspline")
    if method not in METHODS:
        raise BadInputError(f"Unknown super-resolution method '{method}'.", f"Use one of: {', '.join(METHODS)}.")
    image = read_volume(ctx.input_path("image"))
    spacing = target_spacing(image, ctx.params.get("spacing"))
    check_scalar_volume(image, min_size=2, working_spacing=spacing, bytes_per_voxel=16)
    ctx.report(0.1, "resampling", f"{method} to {spacing} mm")
    out = resample_to_spacing(image.with_array(image.array.astype(np.float32)), spacing, method)
    ctx.check_cancelled()
    if np.issubdtype(image.array.dtype, np.integer):  # keep the scanner's integer type (B-spline/sinc overshoot is clipped)
        info = np.iinfo(image.array.dtype)
        out = out.with_array(np.clip(np.rint(out.array), info.min, info.max).astype(image.array.dtype))
    ctx.write_output(out, "restored.nrrd")
    name = ctx.params.get("output_name", f"{image.metadata.get('name', 'volume')} {method} {spacing[2]:g}mm")
    return {"outputs": {"volume": {"kind": "volume", "file": "outputs/restored.nrrd", "next_to": "image", "name": name}},
            "metrics": {"input_spacing_mm": image.spacing.round(4).tolist(), "output_spacing_mm": spacing,
                        "output_shape_ijk": list(out.shape_ijk)}}
