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

import numpy as np

import SlicerLeapCommonLib
from slicerleap.enhancement.methods import PER_SCAN_METHODS, SUPERRES
from slicerleap.reconstruction.methods import RECONSTRUCTION
from slicerleap.enhancement.slice_profile import check_thick_slices
from slicerleap.errors import BadInputError
from slicerleap.scene import SceneJob, get_scene_context
from slicerleap.scene.volumes import require_scalar_volume_node as require_scalar_volume
from slicerleap.scene.volumes import world_ijk_to_ras


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
    """The SuperResolution module's Logic: super-resolution jobs on a scene. `ctx` defaults to the process-wide scene
    context. From Slicer's Python console:

        logic = slicer.util.getModuleLogic("SuperResolution")
        outputs = logic.process(getNode("CTChest"), method="sr4zct", iterations=400, difference_from_cubic=True)
        outputs = logic.process(getNode("CTChest"), method="sinc", spacing=1.0)
        outputs = logic.process(getNode("T1"), method="dmdip", second_volume=getNode("T2"))
    """

    METHODS = SUPERRES  # the methods and their parameters (create_job's keywords)
    RECONSTRUCTION_METHODS = RECONSTRUCTION  # create_reconstruction_job's

    def __init__(self, ctx=None):
        self.ctx = ctx or get_scene_context()

    def create_job(self, input_volume, method: str = "sr4zct", spacing=None, second_volume=None, resume_from=None,
                   device: str = "auto", keep_files: bool = False, **parameters) -> SceneJob:
        """A job (not started yet); see spacing_param for `spacing` (mm). `parameters`: any of
        slicerleap/enhancement/methods.py's (defaults and ranges declared there; those of other methods are ignored),
        e.g. `iterations` (the per-scan methods' budget), `time_budget_s`, `thickness_mm`, SR4ZCT's `network`,
        dmDIP's and TV's `degradation`, `difference_from_cubic`. SR4ZCT only: `resume_from` (a volume an earlier
        SR4ZCT job restored from this input: training continues from its network for `iterations` more). dmDIP only:
        `second_volume` (another contrast of the same subject on the same voxel grid, restored too: output "volume2")."""
        require_scalar_volume(input_volume, "input volume")
        method = self.METHODS.method(method).name  # unknown: refused; an alias becomes its method
        self.METHODS.check_known(parameters)
        checked = self.METHODS.resolve(method, parameters)  # wrong type or out of range: refused here
        if second_volume is not None and method != "dmdip":
            raise BadInputError("A second contrast is used by dmDIP only.", "Choose the dmdip method, or clear the second contrast.")
        params = {"method": method, "spacing": spacing_param(spacing), **checked}
        inputs = {"image": input_volume}
        if method == "dmdip" and second_volume is not None:
            check_second_contrast(input_volume, second_volume)
            inputs["image2"] = second_volume
            params["output_name2"] = second_volume.GetName()
        if method in PER_SCAN_METHODS:
            check_thick_slices(input_volume.GetSpacing(), checked["thickness_mm"] or None, input_volume.GetName())
        if resume_from is not None:
            if method != "sr4zct":
                raise BadInputError("Only SR4ZCT can continue an earlier optimisation.", "Choose the sr4zct method, or start from scratch.")
            params["resume_from"] = sr4zct_checkpoint(resume_from)
        return SceneJob(self.ctx, "superres", inputs, params, device=device, keep_files=keep_files)

    def start(self, input_volume, **options) -> SceneJob:
        """Start restoring in a worker process and return at once; poll() the job, then finish().
        `options` are create_job's keyword arguments."""
        return self.create_job(input_volume, **options).start()

    def process(self, input_volume, on_progress=None, timeout: float | None = None, show_result: bool = True,
                **options) -> dict:
        """Restore and wait. Returns {"volume": vtkMRMLScalarVolumeNode} at the target spacing, covering the
        input's extent, with the input's orientation, plus "difference" (the result minus cubic
        interpolation, on the same grid) when `difference_from_cubic`, and "volume2" (the restored second
        contrast) for dmDIP with a `second_volume`. `options` are create_job's. `show_result`: the result in the
        slice views (in the Slicer desktop). Progress goes to the application log unless `on_progress` takes it."""
        job = self.create_job(input_volume, **options)
        outputs = job.run(on_progress=on_progress or SlicerLeapCommonLib.logProgress, timeout=timeout)
        if show_result:
            self.show_result(outputs)
        return outputs

    def create_reconstruction_job(self, kspace_file, method: str = "sense", spacing=None, device: str = "auto",
                                  keep_files: bool = False, **parameters) -> SceneJob:
        """A job (not started) that reconstructs an MRI volume from raw k-space: a fastMRI-layout .h5 (slices x coils x
        height x width) or a .npy with its .json (slicerleap/reconstruction/kspace.py). `method`: zero-filled, sense
        or cs; `parameters`: slicerleap/reconstruction/methods.py's (acceleration, mask, center_fraction, seed,
        lamda, iterations). `spacing` (x, y, z mm): used when the file gives none."""
        from slicerleap.batch import named_after, reconstruction_params
        from slicerleap.reconstruction.kspace import read_kspace

        params = named_after(kspace_file, reconstruction_params(method, spacing, parameters))
        read_kspace(kspace_file)  # a file that is not k-space is refused here, before a job starts
        return SceneJob(self.ctx, "reconstruct", {"kspace": str(kspace_file)}, params, device=device, keep_files=keep_files)

    def reconstruct(self, kspace_file, on_progress=None, timeout: float | None = None, show_result: bool = True, **options) -> dict:
        """Reconstruct and wait: {"volume": vtkMRMLScalarVolumeNode} (the magnitude, slices along K, geometry from the
        file's header or JSON, else `spacing`, else 1 mm). `options` are create_reconstruction_job's:

            outputs = logic.reconstruct("/data/file_brain_AXT2_200_2000019.h5", method="cs", acceleration=4, mask="equispaced")
        """
        job = self.create_reconstruction_job(kspace_file, **options)
        outputs = job.run(on_progress=on_progress or SlicerLeapCommonLib.logProgress, timeout=timeout)
        if show_result:
            self.show_result(outputs)
        return outputs

    @staticmethod
    def has_sr4zct_network(volume_node) -> bool:
        """Whether an SR4ZCT job kept its network with this volume (so training can continue from it)."""
        from slicerleap.enhancement.checkpoints import CHECKPOINT_ATTRIBUTE

        return volume_node is not None and bool(volume_node.GetAttribute(CHECKPOINT_ATTRIBUTE))

    @staticmethod
    def show_result(outputs: dict) -> None:
        """The restored volume in the slice views; the difference from cubic, if any, over it in a blue-red
        colour map centred on 0 (fade it with the slice views' foreground opacity). Nothing outside the desktop."""
        if not SlicerLeapCommonLib.in_slicer_desktop():
            return
        import slicer

        difference = outputs.get("difference")
        if difference is None:
            slicer.util.setSliceViewerLayers(background=outputs["volume"], fit=True)
            return
        displayNode = difference.GetDisplayNode()
        if displayNode is not None:
            sample = slicer.util.arrayFromVolume(difference)[::2, ::4, ::4]  # a subsample is enough for the colour range
            limit = float(np.percentile(np.abs(sample), 99.5)) or 1.0
            displayNode.SetAndObserveColorNodeID("vtkMRMLColorTableNodeFileDivergingBlueRed.txt")
            displayNode.AutoWindowLevelOff()
            displayNode.SetWindowLevelMinMax(-limit, limit)
        slicer.util.setSliceViewerLayers(background=outputs["volume"], foreground=difference, foregroundOpacity=0.5, fit=True)
