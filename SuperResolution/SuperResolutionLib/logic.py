"""Restore a thick-slice volume at a finer spacing in a background worker; the result is a new volume
placed next to the input, with the input's orientation and field of view.

Methods: "sr4zct" (default), self-supervised through-plane super-resolution (Shi, Pelt, Batenburg, MLMI
2023): a small 2D network is trained on this scan's own sharp in-plane slices, degraded the way thick slices
degrade, then applied to its coronal and sagittal slices; nothing is learned from other patients, and
the training budget (iterations, optional time limit) trades time for quality. "bspline" (cubic
B-spline; "cubic" is accepted as an alias), "linear" and "sinc" (windowed sinc) are the classical
interpolators it is measured against. Optionally also returns the result minus cubic interpolation
(output "difference"), i.e. what the method added beyond the classical baseline."""
from __future__ import annotations

import math

from slicerleap.enhancement.slice_profile import check_thick_slices
from slicerleap.errors import BadInputError
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume

METHODS = ("sr4zct", "bspline", "linear", "sinc")
METHOD_ALIASES = {"cubic": "bspline"}
NETWORKS = ("unet", "msd")  # SR4ZCT: small residual 2D U-Net (CPU-friendly default), or the paper's MS-D net


def spacing_param(spacing) -> float | list[float] | None:
    """The job's "spacing" (mm): None or 0 -> isotropic at the input's finest spacing; a number ->
    isotropic; three numbers -> per axis (I, J, K)."""
    if spacing is None:
        return None
    if isinstance(spacing, (int, float)):
        if spacing < 0:
            raise BadInputError(f"The target spacing cannot be negative (got {spacing} mm).", "Use 0 for automatic, or e.g. 1.0 mm.")
        return float(spacing) or None
    values = [float(s) for s in spacing]
    if len(values) != 3 or min(values) <= 0:
        raise BadInputError(f"The target spacing {list(spacing)} is not three positive numbers (mm).", "Give e.g. [1, 1, 1].")
    return values


def _number(value, what: str, fix: str) -> float:
    try:
        number = float(value) if not isinstance(value, (bool, str)) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise BadInputError(f"The {what} must be a number (got {value!r}).", fix)
    return number


def _optional_non_negative(value, what: str, unit: str, fix: str) -> float | None:
    """None stays None; otherwise a finite number >= 0, or a BadInputError naming `what`."""
    if value is None:
        return None
    number = _number(value, what, fix)
    if number < 0:
        raise BadInputError(f"The {what} cannot be negative (got {value} {unit}).", fix)
    return number


def sr4zct_params(iterations=400, time_budget_s=None, thickness_mm=None, network: str = "unet") -> dict:
    """Checked SR4ZCT job parameters. `time_budget_s` None or 0: no time limit; `thickness_mm` None or 0:
    the slice thickness equals the slice spacing (no overlap or gap)."""
    count = _number(iterations, "number of SR4ZCT iterations", "Use a whole number of at least 1, e.g. 400.")
    if count < 1 or count != int(count):
        raise BadInputError(f"SR4ZCT iterations must be a whole number of at least 1 (got {iterations}).",
                            "Use e.g. 400; fewer is faster, more restores more detail.")
    budget = _optional_non_negative(time_budget_s, "SR4ZCT time budget", "s", "Use 0 for no time limit, or a number of seconds, e.g. 120.")
    thickness = _optional_non_negative(thickness_mm, "slice thickness", "mm",
                                       "Use 0 when the thickness equals the slice spacing, or the scanner's slice thickness in mm.")
    if network not in NETWORKS:
        raise BadInputError(f"Unknown SR4ZCT network '{network}'.", f"Use one of: {', '.join(NETWORKS)}.")
    return {"iterations": int(count), "time_budget_s": budget or None, "thickness_mm": thickness or None, "network": network}


class SuperResolutionLogic:
    """Super-resolution jobs on a scene. `ctx` defaults to the process-wide scene context."""

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    def create_job(self, input_volume, method: str = "sr4zct", spacing=None, iterations: int = 400,
                   time_budget_s: float | None = None, thickness_mm: float | None = None, network: str = "unet",
                   difference_from_cubic: bool = False, device: str = "auto", keep_files: bool = False) -> SceneJob:
        """A job (not started yet); see spacing_param for `spacing` (mm). SR4ZCT only: `iterations`
        (training budget), `time_budget_s` (stop training after this many seconds; None or 0: no limit),
        `thickness_mm` (slice thickness when it differs from the slice spacing, e.g. overlapping slices;
        None or 0: same as the spacing), `network` ("unet" or "msd"). `difference_from_cubic`: also
        output the result minus cubic interpolation ("difference")."""
        require_scalar_volume(input_volume, "input volume")
        method = METHOD_ALIASES.get(method, method)
        if method not in METHODS:
            raise BadInputError(f"Unknown super-resolution method '{method}'.", f"Use one of: {', '.join(METHODS)}.")
        params = {"method": method, "spacing": spacing_param(spacing), "difference_from_cubic": bool(difference_from_cubic)}
        checked = sr4zct_params(iterations, time_budget_s, thickness_mm, network)  # checked whatever the method
        if method == "sr4zct":
            check_thick_slices(input_volume.GetSpacing(), checked["thickness_mm"], input_volume.GetName())
            params.update(checked)
        return SceneJob(self.ctx, "superres", {"image": input_volume}, params, device=device, keep_files=keep_files)

    def start(self, input_volume, **options) -> SceneJob:
        """Start restoring in a worker process and return at once; poll() the job, then finish().
        `options` are create_job's keyword arguments."""
        return self.create_job(input_volume, **options).start()

    def process(self, input_volume, on_progress=None, timeout: float | None = None, **options) -> dict:
        """Blocking form: returns {"volume": vtkMRMLScalarVolumeNode} at the target spacing, covering the
        input's extent, with the input's orientation, plus "difference" (the result minus cubic
        interpolation, on the same grid) when `difference_from_cubic`. `options` are create_job's."""
        return self.create_job(input_volume, **options).run(on_progress=on_progress, timeout=timeout)
