from pathlib import Path
from typing import Annotated

import numpy as np
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper

from slicer import vtkMRMLScalarVolumeNode

import SlicerLeapCommonLib  # makes the SlicerLeap engine importable; imports nothing heavy
from SlicerLeapCommonLib.job_panel import JobPanelMixin


#
# SuperResolution
#


class SuperResolution(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Super Resolution")
        self.parent.categories = ["SlicerLeap"]
        self.parent.dependencies = ["SlicerLeapCommon"]  # loaded first: SlicerLeapCommonLib
        self.parent.contributors = ["SlicerLeap developers"]
        self.parent.helpText = _("""
Restore a thick-slice CT or MRI volume at thinner slices. The result is a new volume with the same
field of view and orientation, placed next to the input. The job runs in a background process;
Cancel leaves the scene unchanged.
<br><br>
<b>SR4ZCT</b> (the default) restores detail across the slices: it trains a small neural network to undo
thick-slice blurring on this scan's own sharp in-plane (usually axial) images, then applies it to the
coronal and sagittal views. It trains on this scan only: nothing is learned from, or shared with, other
patients. A larger training budget (iterations, or a time limit) takes longer and usually restores more
detail. While SR4ZCT trains, <b>Stop early, keep result</b> ends the training at once and restores the volume
with the network trained so far; <b>Continue training</b> later picks up that network (kept with the
result, also in a saved scene) and trains it further. Cubic (B-spline), linear and sinc are the classical interpolation
baselines: fast, but they cannot recover detail lost between the slices.
<br><br>
<b>dmDIP</b> (dual-modal deep image prior) optimises a network on this scan alone, and, when you select a
<b>second contrast</b> of the same subject on the same voxel grid (e.g. T2w beside T1w), on both together, so
each contrast's edges guide the other; both restored volumes are created. Its result always reproduces
the measured slices exactly. Say how the thick slices were made: <i>slice-profile</i> for 2D multi-slice
scans (each slice averages its thickness), <i>kspace</i> for 3D MRI acquired at low through-plane resolution.
The iteration budget is per slab of 16 coronal slices.
<br><br>
<b>tv</b> (total-variation reconstruction) is classical and takes seconds: among all volumes that reproduce the
measured slices exactly, it finds the one with the least total variation (sharp edges, no ringing), starting
from cubic interpolation. Set the degradation as for dmDIP. On brain MRI slabs it beat dmDIP at a CPU budget.
<br><br>
<b>k-space reconstruction</b> (Restore from: kspace) reads raw Cartesian MRI k-space from a file (the fastMRI
HDF5 layout, or a .npy with a .json beside it) and reconstructs a new volume with SigPy's SENSE (ESPIRiT coil
sensitivities), compressed sensing (L1-wavelet) or zero-filled inverse FFT. The spacing comes from the file's
header or JSON (fastMRI files carry no position or orientation: the volume sits at the origin). Mask auto uses
the lines the file acquired; equispaced or random undersample fully sampled data again, to compare methods.
The deep reconstruction networks (E2E-VarNet, MFormer) are not in this version yet, nor is MRI-to-PET synthesis.
""")
        self.parent.acknowledgementText = _("""
The SR4ZCT method: Shi, Pelt, Batenburg: "SR4ZCT: Self-supervised Through-plane Resolution Enhancement
for CT Images with Arbitrary Resolution and Overlap", MLMI 2023 (doi:10.1007/978-3-031-45673-2_6).
The dmDIP method: Bi et al.: "Robust Unsupervised Super-Resolution of Infant MRI via Dual-Modal Deep Image
Prior", MLMI 2023.
Built on MONAI, PyTorch, SimpleITK and 3D Slicer.
The module layout follows Slicer's scripted-module template by Jean-Christophe Fillion-Robin (Kitware),
Andras Lasso (PerkLab) and Steve Pieper (Isomics).
""")


#
# SuperResolutionParameterNode
#


@parameterNodeWrapper
class SuperResolutionParameterNode:
    """
    inputVolume - The thick-slice volume to restore.
    secondVolume - dmDIP: an optional second contrast of the same subject on the input's voxel grid.
    method - sr4zct (self-supervised network trained on this scan), dmdip (dual-modal deep image prior),
        tv (total-variation reconstruction consistent with the measured slices), or an interpolator: bspline (cubic B-spline), linear, or sinc (windowed sinc).
    targetSpacing - Isotropic output voxel size (mm); 0 = the input's finest spacing.
    iterations - SR4ZCT training iterations, dmDIP iterations per slab, or TV iterations (the budget: more is
        slower and usually better).
    timeBudget - SR4ZCT/dmDIP: stop after this many seconds, keeping the result so far; 0 = no time limit.
    thickness - SR4ZCT/dmDIP/TV: slice thickness (mm) when it differs from the slice spacing
        (overlapping slices); 0 = same as the spacing.
    network - SR4ZCT network: unet (small 2D U-Net, fast on CPU) or msd (the paper's MS-D net).
    continueTraining - SR4ZCT: continue training the network that made outputVolume instead of starting afresh.
    degradation - dmDIP/TV: how the thick slices were made: slice-profile (2D multi-slice) or kspace (3D MRI).
    differenceFromCubic - Also create the result minus cubic interpolation (what the method added).
    outputVolume - The latest result.
    source - volume: restore inputVolume; kspace: reconstruct an MRI volume from the raw k-space in kspaceFile.
    kspaceFile - Raw Cartesian k-space: fastMRI-layout .h5, or .npy with a .json beside it.
    reconMethod - k-space: sense (ESPIRiT + SENSE), cs (L1-wavelet) or zero-filled (SigPy).
    acceleration - k-space with an equispaced or random mask: undersampling factor applied to fully sampled data.
    kspaceMask - k-space: auto (the lines the file acquired), equispaced or random (undersample again, fastMRI's masks).
    device - Where the job runs: auto picks CUDA, then Apple MPS, then CPU (interpolators use the CPU).
    keepFiles - Keep the job folder for troubleshooting.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    secondVolume: vtkMRMLScalarVolumeNode
    method: Annotated[str, Choice(["sr4zct", "dmdip", "tv", "bspline", "linear", "sinc"])] = "sr4zct"
    targetSpacing: Annotated[float, WithinRange(0.0, 20.0)] = 0.0
    iterations: Annotated[int, WithinRange(1, 20000)] = 400
    timeBudget: Annotated[float, WithinRange(0.0, 86400.0)] = 0.0
    thickness: Annotated[float, WithinRange(0.0, 50.0)] = 0.0
    network: Annotated[str, Choice(["unet", "msd"])] = "unet"
    degradation: Annotated[str, Choice(["slice-profile", "kspace"])] = "slice-profile"
    continueTraining: bool = False
    differenceFromCubic: bool = False
    source: Annotated[str, Choice(["volume", "kspace"])] = "volume"
    kspaceFile: Path
    reconMethod: Annotated[str, Choice(["sense", "cs", "zero-filled"])] = "sense"
    acceleration: Annotated[float, WithinRange(1.0, 32.0)] = 4.0
    kspaceMask: Annotated[str, Choice(["auto", "equispaced", "random"])] = "auto"
    outputVolume: vtkMRMLScalarVolumeNode
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"])] = "auto"
    keepFiles: bool = False


#
# SuperResolutionWidget
#


class SuperResolutionWidget(JobPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    parameterNodeClass = SuperResolutionParameterNode
    defaultVolumeParameters = ("inputVolume",)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel()

    def createLogic(self):
        from SuperResolutionLib.logic import SuperResolutionLogic

        return SuperResolutionLogic()

    def canApply(self) -> tuple:
        if self._parameterNode.source == "kspace":
            path = self._parameterNode.kspaceFile
            if not path or not Path(path).is_file():
                return False, _("Select a k-space file (.h5 in the fastMRI layout, or .npy with its .json)")
            return True, _("Reconstruct an MRI volume from the k-space file")
        if not self._parameterNode.inputVolume:
            return False, _("Select an input volume")
        if self._parameterNode.method == "sr4zct":
            if self._parameterNode.continueTraining:
                if not self.logic.has_sr4zct_network(self._parameterNode.outputVolume):
                    return False, _("No SR4ZCT result to continue from: run SR4ZCT once, or untick Continue training")
                return True, _("Continue training the network of the latest SR4ZCT result, and restore again")
            return True, _("Train SR4ZCT on the input volume and restore it at the target spacing")
        if self._parameterNode.method == "dmdip":
            if self._parameterNode.secondVolume:
                return True, _("Restore the input volume and the second contrast together with dmDIP")
            return True, _("Restore the input volume with a deep image prior (dmDIP, one contrast)")
        if self._parameterNode.method == "tv" and not self._parameterNode.secondVolume:
            return True, _("Restore the input volume by total-variation reconstruction (seconds)")
        if self._parameterNode.secondVolume:
            return False, _("A second contrast is used by dmDIP only: choose dmdip, or clear the second contrast")
        return True, _("Resample the input volume to the target spacing")

    def onParameterNodeModified(self) -> None:
        """The budget applies to the per-scan methods, the network to SR4ZCT, the second contrast and the
        degradation model to dmDIP ("difference from cubic" to every method)."""
        method = self._parameterNode.method if self._parameterNode else ""
        kspace = bool(self._parameterNode) and self._parameterNode.source == "kspace"
        self.ui.kspaceFileLineEdit.enabled = self.ui.kspaceCollapsibleButton.enabled = kspace
        self.ui.inputVolumeSelector.enabled = self.ui.parametersCollapsibleButton.enabled = not kspace
        self.ui.sr4zctCollapsibleButton.enabled = not kspace
        if kspace:
            self.ui.secondVolumeSelector.enabled = False
            return
        for widget in (self.ui.iterationsSpinBox, self.ui.thicknessSpinBox):
            widget.enabled = method in ("sr4zct", "dmdip", "tv")
        self.ui.timeBudgetSpinBox.enabled = method in ("sr4zct", "dmdip")
        self.ui.networkComboBox.enabled = self.ui.continueTrainingCheckBox.enabled = method == "sr4zct"
        self.ui.secondVolumeSelector.enabled = method == "dmdip"
        self.ui.degradationComboBox.enabled = method in ("dmdip", "tv")

    def startJob(self):
        p = self._parameterNode
        if p.source == "kspace":
            return self.logic.create_reconstruction_job(str(p.kspaceFile), method=p.reconMethod, acceleration=p.acceleration,
                                                        mask=p.kspaceMask, device=p.device, keep_files=p.keepFiles).start()
        return self.logic.start(p.inputVolume, method=p.method, spacing=p.targetSpacing or None,
                                second_volume=p.secondVolume if p.method == "dmdip" else None,
                                resume_from=p.outputVolume if p.method == "sr4zct" and p.continueTraining else None,
                                device=p.device, keep_files=p.keepFiles, **self.declaredParameters())

    def onJobSucceeded(self, outputs: dict) -> None:
        self._parameterNode.outputVolume = outputs["volume"]
        self.logic.show_result(outputs)


#
# SuperResolutionTest
#


class SuperResolutionTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SuperResolution1()

    def test_SuperResolution1(self):
        """Restore an 8 mm-slice synthetic volume (2 mm pixels) with SR4ZCT on a small training budget, asking
        for the difference from cubic: 2 mm isotropic voxels, 4x the slices, the input's orientation, field-of-view
        centre and integer voxel type; the difference lies on the same grid, and so does cubic B-spline's result.
        SR4ZCT refuses a volume without thick slices before starting a job."""
        self.delayDisplay("Starting the test")
        k, j, i = np.mgrid[:8, :32, :32]
        array = np.where((i - 16) ** 2 + (j - 16) ** 2 + (4 * k - 16) ** 2 < 12 ** 2, 500, 50)
        array = (array + 40 * np.sin(i / 2.0) * np.cos(j / 3.0)).astype(np.int16)  # some in-plane texture to learn from
        ijkToRAS = np.diag([-2.0, -2.0, 8.0, 1.0])
        ijkToRAS[:3, 3] = [60.0, 50.0, -20.0]
        inputVolume = slicer.util.addVolumeFromArray(array, ijkToRAS=ijkToRAS, name="thick slices")

        SlicerLeapCommonLib.ensure_dependencies(requester="Super Resolution")
        from SuperResolutionLib.logic import SuperResolutionLogic

        logic = SuperResolutionLogic()
        outputs = logic.process(inputVolume, method="sr4zct", iterations=20, difference_from_cubic=True, show_result=False)
        self.delayDisplay("Processing done")

        def matrix(volume):
            m = vtk.vtkMatrix4x4()
            volume.GetIJKToRASMatrix(m)
            return slicer.util.arrayFromVTKMatrix(m)

        def centre(volume):
            dims = np.array(volume.GetImageData().GetDimensions())
            return (matrix(volume) @ np.r_[(dims - 1) / 2.0, 1.0])[:3]

        outputVolume, differenceVolume = outputs["volume"], outputs["difference"]
        self.assertTrue(outputVolume.IsA("vtkMRMLScalarVolumeNode"))
        self.assertEqual(outputVolume.GetImageData().GetDimensions(), (32, 32, 32))
        np.testing.assert_allclose(outputVolume.GetSpacing(), (2.0, 2.0, 2.0), atol=1e-6)
        inputDirections, outputDirections = np.zeros((3, 3)), np.zeros((3, 3))
        inputVolume.GetIJKToRASDirections(inputDirections)
        outputVolume.GetIJKToRASDirections(outputDirections)
        np.testing.assert_allclose(outputDirections, inputDirections, atol=1e-6)
        np.testing.assert_allclose(centre(outputVolume), centre(inputVolume), atol=1e-6)
        self.assertEqual(slicer.util.arrayFromVolume(outputVolume).dtype, array.dtype)

        self.assertTrue(differenceVolume.IsA("vtkMRMLScalarVolumeNode"))
        self.assertEqual(differenceVolume.GetImageData().GetDimensions(), (32, 32, 32))
        np.testing.assert_allclose(matrix(differenceVolume), matrix(outputVolume), atol=1e-6)
        self.assertTrue(np.isfinite(slicer.util.arrayFromVolume(differenceVolume)).all())

        cubic = logic.process(inputVolume, method="bspline", spacing=2.0, show_result=False)["volume"]
        self.assertEqual(cubic.GetImageData().GetDimensions(), (32, 32, 32))
        np.testing.assert_allclose(matrix(cubic), matrix(outputVolume), atol=1e-6)

        from slicerleap.errors import BadInputError

        isotropicVolume = slicer.util.addVolumeFromArray(array, ijkToRAS=np.diag([-2.0, -2.0, 2.0, 1.0]), name="isotropic")
        with self.assertRaises(BadInputError):  # no thick slices to restore
            logic.process(isotropicVolume, method="sr4zct", show_result=False)
        self.delayDisplay("Test passed")
