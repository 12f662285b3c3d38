"""Deformable registration of a moving volume to a fixed one in a background worker: optional affine
pre-alignment, then per-pair instance optimisation of a displacement field. Results come back as a
grid transform (fixed -> moving resampling field, references to both volumes), the warped moving
volume on the fixed grid, and the Jacobian determinant of the transform."""
from __future__ import annotations

from slicerleap.errors import BadInputError
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume


class RegistrationDLLogic:
    """Registration jobs on a scene. `ctx` defaults to the process-wide scene context."""

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    def create_job(self, fixed_volume, moving_volume, iterations: int = 80, smoothness: float = 1.0,
                   working_spacing_mm: float = 3.0, affine: bool = True, levels: int = 2,
                   device: str = "auto", keep_files: bool = False) -> SceneJob:
        """A job (not started yet). `working_spacing_mm`: isotropic spacing (mm) the field is optimised
        at; `smoothness`: weight of the field's regulariser; `levels`: coarse-to-fine pyramid levels."""
        require_scalar_volume(fixed_volume, "fixed volume")
        require_scalar_volume(moving_volume, "moving volume")
        if fixed_volume.GetID() == moving_volume.GetID():
            raise BadInputError(f"The fixed and moving volumes are the same volume ('{fixed_volume.GetName()}').",
                                "Select two different volumes: the moving one is deformed onto the fixed one.")
        if int(iterations) < 1:
            raise BadInputError(f"Iterations must be at least 1 (got {iterations}).", "Use e.g. 80.")
        if float(smoothness) < 0:
            raise BadInputError(f"Smoothness cannot be negative (got {smoothness}).", "Use 0 (none) or more, e.g. 1.0.")
        if float(working_spacing_mm) <= 0:
            raise BadInputError(f"The working spacing must be positive (got {working_spacing_mm} mm).", "Use e.g. 3.0 mm.")
        if int(levels) < 1:
            raise BadInputError(f"Levels must be at least 1 (got {levels}).", "Use 1 to 3.")
        params = {"iterations": int(iterations), "smoothness": float(smoothness),
                  "working_spacing_mm": float(working_spacing_mm), "affine": bool(affine), "levels": int(levels)}
        return SceneJob(self.ctx, "register", {"fixed": fixed_volume, "moving": moving_volume}, params,
                        device=device, keep_files=keep_files)

    def start(self, fixed_volume, moving_volume, **options) -> SceneJob:
        """Start registering in a worker process and return at once; poll() the job, then finish().
        `options` are create_job's keyword arguments."""
        return self.create_job(fixed_volume, moving_volume, **options).start()

    def process(self, fixed_volume, moving_volume, on_progress=None, timeout: float | None = None, **options) -> dict:
        """Blocking form: returns {"transform": vtkMRMLGridTransformNode, "warped": vtkMRMLScalarVolumeNode
        (moving resampled on the fixed grid), "jacobian": vtkMRMLScalarVolumeNode}."""
        return self.create_job(fixed_volume, moving_volume, **options).run(on_progress=on_progress, timeout=timeout)

    @staticmethod
    def apply_to_moving(transform_node, moving_node) -> None:
        """Show the moving volume through the transform (non-destructive: harden it to resample for good)."""
        moving_node.SetAndObserveTransformNodeID(transform_node.GetID() if transform_node is not None else None)
