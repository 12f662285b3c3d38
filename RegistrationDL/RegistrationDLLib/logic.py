"""Deformable registration of a moving volume to a fixed one in a background worker: optional affine
pre-alignment, then either a registration network from the catalog (TM-DCA by default) refined on
the pair by neural instance optimisation (method "network"), or direct per-pair optimisation of the
displacement field (method "optimisation"). Results come back as a grid transform (fixed -> moving
resampling field, references to both volumes), the warped moving volume on the fixed grid, the
Jacobian determinant of the transform and, given a moving segmentation, that segmentation propagated
onto the fixed volume."""
from __future__ import annotations

import SlicerLeapCommonLib
from slicerleap.errors import BadInputError, ModelError
from slicerleap.models import get_catalog
from slicerleap.registration.methods import REGISTRATION
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.segmentations import label_specs
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume


class RegistrationDLLogic:
    """The RegistrationDL module's Logic: registration jobs on a scene. `ctx` defaults to the process-wide scene
    context. From Slicer's Python console:

        logic = slicer.util.getModuleLogic("RegistrationDL")
        outputs = logic.process(getNode("fixed"), getNode("moving"))  # the declared defaults
        outputs = logic.process(getNode("fixed"), getNode("moving"), method="optimisation", levels=3)
    """

    METHODS = REGISTRATION  # the methods and their parameters (create_job's keywords)

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    @staticmethod
    def available_models() -> list[dict]:
        """Catalog cards of the installed registration models (the default one last)."""
        return [c for c in get_catalog().cards() if c["task"] == "registration"]

    def default_method(self) -> str:
        return "network" if self.available_models() else "optimisation"

    def create_job(self, fixed_volume, moving_volume, method: str | None = None, model: str | None = None,
                   moving_segmentation=None, device: str = "auto", keep_files: bool = False, **parameters) -> SceneJob:
        """A job (not started yet).

        method "network" (default when a registration model is installed): the catalog `model` (default:
        the catalog's default registration model) predicts the field on its own working grid, then
        `nio_iterations` steps of neural instance optimisation fine-tune it on this pair, then
        `refine_iterations` steps optimise its field on the pair as a stationary velocity field (diffeomorphic:
        integrated again on the fixed volume's grid, so the transform does not fold there) (0 and 0: network only).
        Every output (transform, warped volume, Jacobian, labels) is on the fixed volume's grid.
        method "optimisation": the field itself is optimised, `iterations` steps per pyramid level
        (`levels`), at `working_spacing_mm` (isotropic, mm), `smoothness` weighting its regulariser.
        `parameters`: any of slicerleap/registration/methods.py's (their defaults and ranges are declared there);
        those of the other method are ignored. `moving_segmentation`: a segmentation of the moving volume to
        propagate onto the fixed volume."""
        method = method or self.default_method()
        self.METHODS.check_known(parameters)
        resolved = self.METHODS.resolve(method, parameters)  # unknown method, wrong type or out of range: refused here
        if method == "network":
            if not self.available_models():
                raise ModelError("No registration model is installed.",
                                 "Use method 'optimisation', or import a model with `slicerleap models import`.")
            if model is not None and model not in {c["id"] for c in self.available_models()}:
                raise BadInputError(f"'{model}' is not an installed registration model.",
                                    "Pick one of: " + ", ".join(c["id"] for c in self.available_models()) + ".")
        require_scalar_volume(fixed_volume, "fixed volume")
        require_scalar_volume(moving_volume, "moving volume")
        if fixed_volume.GetID() == moving_volume.GetID():
            raise BadInputError(f"The fixed and moving volumes are the same volume ('{fixed_volume.GetName()}').",
                                "Select two different volumes: the moving one is deformed onto the fixed one.")
        params = {"method": method, **resolved}
        inputs = {"fixed": fixed_volume, "moving": moving_volume}
        if moving_segmentation is not None:
            if not moving_segmentation.IsA("vtkMRMLSegmentationNode") or not label_specs(moving_segmentation):
                raise BadInputError(f"'{moving_segmentation.GetName()}' is not a segmentation with segments.",
                                    "Select a segmentation of the moving volume (Segment Editor), or none.")
            inputs["moving_labels"] = (moving_segmentation, moving_volume)
            params["labels"] = label_specs(moving_segmentation)
            params["labels_name"] = f"{moving_segmentation.GetName()} on {fixed_volume.GetName()}"
        return SceneJob(self.ctx, "register", inputs, params, model=model if method == "network" else None,
                        device=device, keep_files=keep_files)

    def start(self, fixed_volume, moving_volume, **options) -> SceneJob:
        """Start registering in a worker process and return at once; poll() the job, then finish().
        `options` are create_job's keyword arguments."""
        return self.create_job(fixed_volume, moving_volume, **options).start()

    def process(self, fixed_volume, moving_volume, on_progress=None, timeout: float | None = None,
                apply_to_moving: bool = False, show_result: bool = True, **options) -> dict:
        """Register and wait. Returns {"transform": vtkMRMLGridTransformNode, "warped": vtkMRMLScalarVolumeNode
        (moving resampled on the fixed grid), "jacobian": vtkMRMLScalarVolumeNode[, "labels":
        vtkMRMLSegmentationNode (the moving segmentation on the fixed volume)]}. `apply_to_moving`: put the moving
        volume under the transform; `show_result`: the warped volume over the fixed one in the slice views (in the
        Slicer desktop). Progress goes to the application log unless `on_progress` takes it."""
        job = self.create_job(fixed_volume, moving_volume, **options)
        outputs = job.run(on_progress=on_progress or SlicerLeapCommonLib.logProgress, timeout=timeout)
        if apply_to_moving:
            self.apply_to_moving(outputs["transform"], moving_volume)
        if show_result:
            self.show_result(fixed_volume, outputs)
        return outputs

    @staticmethod
    def apply_to_moving(transform_node, moving_node) -> None:
        """Show the moving volume through the transform (non-destructive: harden it to resample for good)."""
        moving_node.SetAndObserveTransformNodeID(transform_node.GetID() if transform_node is not None else None)

    @staticmethod
    def show_result(fixed_volume, outputs: dict) -> None:
        """The warped volume half over the fixed one in the slice views (nothing to show outside the desktop)."""
        if SlicerLeapCommonLib.in_slicer_desktop():
            import slicer

            slicer.util.setSliceViewerLayers(background=fixed_volume, foreground=outputs["warped"], foregroundOpacity=0.5,
                                             fit=True)
