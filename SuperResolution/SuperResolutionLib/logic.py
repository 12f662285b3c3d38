"""Restore a thick-slice volume at a finer spacing in a background worker; the result is a new volume
placed next to the input, with the input's orientation and field of view.

Methods: "sr4zct" (default), self-supervised through-plane super-resolution (Shi, Pelt, Batenburg, MLMI
2023): a small 2D network is trained on this scan's own sharp in-plane slices, degraded the way thick slices
degrade, then applied to its coronal and sagittal slices; nothing is learned from other patients, and
the training budget (iterations, optional time limit) trades time for quality. "bspline" (cubic
B-spline; "cubic" is accepted as an alias), "linear" and "sinc" (windowed sinc) are the classical
interpolators it is measured against. "dmdip": dual-modal deep image prior (Bi et al., MLMI 2023), a
per-scan optimisation that restores the input and, optionally, a second contrast of the same subject on
the same grid (e.g. T2w beside T1w) together, each output consistent with its measured slices.
"tv": total-variation reconstruction, classical: the image of least total variation that reproduces the
measured slices (same degradation models as dmDIP), from cubic interpolation; seconds.
Optionally also returns the result minus cubic interpolation
(output "difference"), i.e. what the method added beyond the classical baseline."""
from __future__ import annotations

import math

import numpy as np

from slicerleap.enhancement.slice_profile import DEGRADATIONS, check_thick_slices
from slicerleap.errors import BadInputError
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume
from slicerleap.scene.volumes import world_ijk_to_ras

METHODS = ("sr4zct", "dmdip", "tv", "bspline", "linear", "sinc")
PER_SCAN_METHODS = ("sr4zct", "dmdip", "tv")
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


def _budget_params(what: str, iterations, time_budget_s, thickness_mm) -> dict:
    count = _number(iterations, f"number of {what} iterations", "Use a whole number of at least 1, e.g. 400.")
    if count < 1 or count != int(count):
        raise BadInputError(f"{what} iterations must be a whole number of at least 1 (got {iterations}).",
                            "Use e.g. 400; fewer is faster, more restores more detail.")
    budget = _optional_non_negative(time_budget_s, f"{what} time budget", "s", "Use 0 for no time limit, or a number of seconds, e.g. 120.")
    thickness = _optional_non_negative(thickness_mm, "slice thickness", "mm",
                                       "Use 0 when the thickness equals the slice spacing, or the scanner's slice thickness in mm.")
    return {"iterations": int(count), "time_budget_s": budget or None, "thickness_mm": thickness or None}


def sr4zct_params(iterations=400, time_budget_s=None, thickness_mm=None, network: str = "unet") -> dict:
    """Checked SR4ZCT job parameters. `time_budget_s` None or 0: no time limit; `thickness_mm` None or 0:
    the slice thickness equals the slice spacing (no overlap or gap)."""
    if network not in NETWORKS:
        raise BadInputError(f"Unknown SR4ZCT network '{network}'.", f"Use one of: {', '.join(NETWORKS)}.")
    return {**_budget_params("SR4ZCT", iterations, time_budget_s, thickness_mm), "network": network}


def degradation_model_params(label: str, iterations=300, time_budget_s=None, thickness_mm=None,
                             degradation: str = "slice-profile") -> dict:
    """Checked parameters of a method that inverts a slice degradation model (dmDIP, TV reconstruction;
    `label` names it in messages): iterations (dmDIP: per slab of coronal slices; the time budget is for
    the whole volume) and `degradation`: "slice-profile" (thick slices are box averages, as 2D multi-slice
    acquisitions) or "kspace" (dmDIP's central-k-space truncation, for 3D acquisitions)."""
    if degradation not in DEGRADATIONS:
        raise BadInputError(f"Unknown {label} degradation model '{degradation}'.", f"Use one of: {', '.join(DEGRADATIONS)}.")
    return {**_budget_params(label, iterations, time_budget_s, thickness_mm), "degradation": degradation}


def sr4zct_checkpoint(restored_volume) -> dict:
    """The reference to the SR4ZCT network an earlier job kept with `restored_volume` (saved with the scene)."""
    import json

    from slicerleap.enhancement.checkpoints import CHECKPOINT_ATTRIBUTE

    text = restored_volume.GetAttribute(CHECKPOINT_ATTRIBUTE) if restored_volume is not None else None
    if not text:
        name = restored_volume.GetName() if restored_volume is not None else "None"
        raise BadInputError(f"'{name}' was not restored by SR4ZCT, so there is no training to continue.",
                            "Select a volume an SR4ZCT job created, or start from scratch.")
    try:
        return json.loads(text)
    except ValueError:
        raise BadInputError(f"The SR4ZCT network reference on '{restored_volume.GetName()}' is malformed.", "Start from scratch.") from None


def check_second_contrast(first, second) -> None:
    """dmDIP's second contrast must be a scalar volume on exactly the first one's voxel grid (in world RAS, as the
    job receives both)."""
    require_scalar_volume(second, "second contrast")
    if second is first:
        raise BadInputError("The second contrast is the input volume itself.",
                            "Select another contrast of the same subject (e.g. T2w for a T1w input), or none.")
    same_dims = tuple(first.GetImageData().GetDimensions()) == tuple(second.GetImageData().GetDimensions())
    if not (same_dims and np.allclose(world_ijk_to_ras(first), world_ijk_to_ras(second), atol=1e-4)):
        raise BadInputError(f"The second contrast '{second.GetName()}' is not on the same voxel grid as '{first.GetName()}'.",
                            "Register it to the input (RegistrationDL), resample it onto the input's grid, then run again.")


class SuperResolutionLogic:
    """Super-resolution jobs on a scene. `ctx` defaults to the process-wide scene context."""

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    def create_job(self, input_volume, method: str = "sr4zct", spacing=None, iterations: int = 400,
                   time_budget_s: float | None = None, thickness_mm: float | None = None, network: str = "unet",
                   difference_from_cubic: bool = False, second_volume=None, degradation: str = "slice-profile",
                   resume_from=None, device: str = "auto", keep_files: bool = False) -> SceneJob:
        """A job (not started yet); see spacing_param for `spacing` (mm). The per-scan methods (SR4ZCT,
        dmDIP): `iterations` (the budget; dmDIP: per slab of coronal slices), `time_budget_s` (stop after
        this many seconds, keeping the result so far; None or 0: no limit), `thickness_mm` (slice thickness
        when it differs from the slice spacing, e.g. overlapping slices; None or 0: same as the spacing).
        SR4ZCT only: `network` ("unet" or "msd"); `resume_from` (a volume an earlier SR4ZCT job restored from
        this input: training continues from its network for `iterations` more). dmDIP only: `second_volume` (another contrast of the same
        subject on the same voxel grid, restored too: output "volume2"), `degradation` ("slice-profile" or
        "kspace"; also for "tv"). `difference_from_cubic`: also output the result minus cubic interpolation ("difference")."""
        require_scalar_volume(input_volume, "input volume")
        method = METHOD_ALIASES.get(method, method)
        if method not in METHODS:
            raise BadInputError(f"Unknown super-resolution method '{method}'.", f"Use one of: {', '.join(METHODS)}.")
        if second_volume is not None and method != "dmdip":
            raise BadInputError("A second contrast is used by dmDIP only.", "Choose the dmdip method, or clear the second contrast.")
        params = {"method": method, "spacing": spacing_param(spacing), "difference_from_cubic": bool(difference_from_cubic)}
        checked = sr4zct_params(iterations, time_budget_s, thickness_mm, network)  # checked whatever the method
        inputs = {"image": input_volume}
        if method == "tv":
            checked = degradation_model_params("TV reconstruction", iterations, None, thickness_mm, degradation)
        if method == "dmdip":
            checked = degradation_model_params("dmDIP", iterations, time_budget_s, thickness_mm, degradation)
            if second_volume is not None:
                check_second_contrast(input_volume, second_volume)
                inputs["image2"] = second_volume
                params["output_name2"] = second_volume.GetName()
        if method in PER_SCAN_METHODS:
            check_thick_slices(input_volume.GetSpacing(), checked["thickness_mm"], input_volume.GetName())
            params.update(checked)
        if resume_from is not None:
            if method != "sr4zct":
                raise BadInputError("Only SR4ZCT can continue an earlier optimisation.", "Choose the sr4zct method, or start from scratch.")
            params["resume_from"] = sr4zct_checkpoint(resume_from)
        return SceneJob(self.ctx, "superres", inputs, params, device=device, keep_files=keep_files)

    def start(self, input_volume, **options) -> SceneJob:
        """Start restoring in a worker process and return at once; poll() the job, then finish().
        `options` are create_job's keyword arguments."""
        return self.create_job(input_volume, **options).start()

    def process(self, input_volume, on_progress=None, timeout: float | None = None, **options) -> dict:
        """Blocking form: returns {"volume": vtkMRMLScalarVolumeNode} at the target spacing, covering the
        input's extent, with the input's orientation, plus "difference" (the result minus cubic
        interpolation, on the same grid) when `difference_from_cubic`, and "volume2" (the restored second
        contrast) for dmDIP with a `second_volume`. `options` are create_job's."""
        return self.create_job(input_volume, **options).run(on_progress=on_progress, timeout=timeout)
