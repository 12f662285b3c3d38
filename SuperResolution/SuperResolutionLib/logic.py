"""Restore a thick-slice volume to a finer spacing in a background worker. This version offers the
classical interpolators (linear, cubic B-spline, windowed sinc) that the learned methods are measured
against; the result is a new volume placed next to the input."""
from __future__ import annotations

from slicerleap.errors import BadInputError
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume

METHODS = ("bspline", "linear", "sinc")


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


class SuperResolutionLogic:
    """Super-resolution jobs on a scene. `ctx` defaults to the process-wide scene context."""

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    def create_job(self, input_volume, method: str = "bspline", spacing=None, device: str = "auto",
                   keep_files: bool = False) -> SceneJob:
        """A job (not started yet); see spacing_param for `spacing` (mm)."""
        require_scalar_volume(input_volume, "input volume")
        if method not in METHODS:
            raise BadInputError(f"Unknown super-resolution method '{method}'.", f"Use one of: {', '.join(METHODS)}.")
        return SceneJob(self.ctx, "superres", {"image": input_volume}, {"method": method, "spacing": spacing_param(spacing)},
                        device=device, keep_files=keep_files)

    def start(self, input_volume, method: str = "bspline", spacing=None, device: str = "auto",
              keep_files: bool = False) -> SceneJob:
        """Start resampling in a worker process and return at once; poll() the job, then finish()."""
        return self.create_job(input_volume, method, spacing, device, keep_files).start()

    def process(self, input_volume, method: str = "bspline", spacing=None, device: str = "auto",
                keep_files: bool = False, on_progress=None, timeout: float | None = None) -> dict:
        """Blocking form: returns {"volume": vtkMRMLScalarVolumeNode} at the target spacing, covering
        the input's extent, with the input's orientation."""
        return self.create_job(input_volume, method, spacing, device, keep_files).run(on_progress=on_progress, timeout=timeout)
