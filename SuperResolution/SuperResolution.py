from typing import Annotated

import numpy as np
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
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
Resample a thick-slice CT or MRI volume to thinner slices. The result is a new volume with the same
field of view and orientation, placed next to the input. The job runs in a background process;
Cancel leaves the scene unchanged.
<br><br>
This version offers the classical interpolators (cubic B-spline, linear, windowed sinc), the baselines
that learned restoration is measured against. Learned super-resolution (SR4ZCT, dual-modal deep image
prior), undersampled MRI reconstruction and MRI-to-PET synthesis are not in this version yet.
""")
        self.parent.acknowledgementText = _("""
Built on SimpleITK and 3D Slicer. The module layout follows Slicer's scripted-module template by
Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
""")


#
# SuperResolutionParameterNode
#


@parameterNodeWrapper
class SuperResolutionParameterNode:
    """
    inputVolume - The thick-slice volume to restore.
    method - Interpolator: bspline (cubic B-spline), linear, or sinc (windowed sinc).
    targetSpacing - Isotropic output voxel size (mm); 0 = the input's finest spacing.
    outputVolume - The latest result.
    device - Where the job runs (the classical methods use the CPU).
    keepFiles - Keep the job folder for troubleshooting.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    method: Annotated[str, Choice(["bspline", "linear", "sinc"])] = "bspline"
    targetSpacing: Annotated[float, WithinRange(0.0, 20.0)] = 0.0
    outputVolume: vtkMRMLScalarVolumeNode
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"])] = "auto"
    keepFiles: bool = False


#
# SuperResolutionWidget
#


class SuperResolutionWidget(JobPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    defaultVolumeParameters = ("inputVolume",)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel(SuperResolutionLogic())

    def canApply(self) -> tuple:
        if self._parameterNode.inputVolume:
            return True, _("Resample the input volume to the target spacing")
        return False, _("Select an input volume")

    def startJob(self):
        p = self._parameterNode
        return self.logic.start(p.inputVolume, method=p.method, spacingMm=p.targetSpacing or None,
                                device=p.device, keepFiles=p.keepFiles)

    def onJobSucceeded(self, outputs: dict) -> None:
        self._parameterNode.outputVolume = outputs["volume"]
        self.logic.showResult(outputs)


#
# SuperResolutionLogic
#


class SuperResolutionLogic(ScriptedLoadableModuleLogic):
    """Thin wrapper over SuperResolutionLib.logic (Qt-free, tested with pytest on slicer-core).
    Use `process` from the Python console:

        logic = slicer.util.getModuleLogic("SuperResolution")
        outputs = logic.process(getNode("CTChest"), method="sinc", spacingMm=1.0)
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._jobs = None

    def getParameterNode(self):
        return SuperResolutionParameterNode(super().getParameterNode())

    @property
    def jobs(self):
        """The Qt-free logic, created on first use after the engine's Python packages are installed."""
        if self._jobs is None:
            SlicerLeapCommonLib.ensure_dependencies(requester="Super Resolution")
            from SuperResolutionLib.logic import SuperResolutionLogic as SuperResolutionJobs

            self._jobs = SuperResolutionJobs()
        return self._jobs

    def start(self, inputVolume, method="bspline", spacingMm=None, device="auto", keepFiles=False):
        """Start resampling in a background process; returns the job (poll(), cancel(), finish()).
        spacingMm: None = isotropic at the input's finest spacing; a number = isotropic; [i, j, k] per axis."""
        return self.jobs.start(inputVolume, method=method, spacing=spacingMm, device=device, keep_files=keepFiles)

    def process(self, inputVolume, method="bspline", spacingMm=None, device="auto", keepFiles=False, showResult=True) -> dict:
        """Resample and wait. Returns {"volume": vtkMRMLScalarVolumeNode}."""
        outputs = self.jobs.process(inputVolume, method=method, spacing=spacingMm, device=device, keep_files=keepFiles,
                                    on_progress=SlicerLeapCommonLib.logProgress)
        if showResult:
            self.showResult(outputs)
        return outputs

    @staticmethod
    def showResult(outputs: dict) -> None:
        slicer.util.setSliceViewerLayers(background=outputs["volume"], fit=True)


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
        """Restore an 8 mm-slice synthetic volume to 2 mm: same orientation and field-of-view centre,
        2 mm isotropic voxels, 4x the slices, the input's integer voxel type."""
        self.delayDisplay("Starting the test")
        k, j, i = np.mgrid[:8, :32, :32]
        array = np.where((i - 16) ** 2 + (j - 16) ** 2 + (4 * k - 16) ** 2 < 12 ** 2, 500, 50).astype(np.int16)
        ijkToRAS = np.diag([-2.0, -2.0, 8.0, 1.0])
        ijkToRAS[:3, 3] = [60.0, 50.0, -20.0]
        inputVolume = slicer.util.addVolumeFromArray(array, ijkToRAS=ijkToRAS, name="thick slices")

        logic = SuperResolutionLogic()
        outputs = logic.process(inputVolume, method="bspline", spacingMm=2.0, showResult=False)
        self.delayDisplay("Processing done")

        outputVolume = outputs["volume"]
        self.assertTrue(outputVolume.IsA("vtkMRMLScalarVolumeNode"))
        self.assertEqual(outputVolume.GetImageData().GetDimensions(), (32, 32, 32))
        np.testing.assert_allclose(outputVolume.GetSpacing(), (2.0, 2.0, 2.0), atol=1e-6)
        inputDirections, outputDirections = np.zeros((3, 3)), np.zeros((3, 3))
        inputVolume.GetIJKToRASDirections(inputDirections)
        outputVolume.GetIJKToRASDirections(outputDirections)
        np.testing.assert_allclose(outputDirections, inputDirections, atol=1e-6)

        def centre(volume):
            matrix = vtk.vtkMatrix4x4()
            volume.GetIJKToRASMatrix(matrix)
            dims = np.array(volume.GetImageData().GetDimensions())
            return (slicer.util.arrayFromVTKMatrix(matrix) @ np.r_[(dims - 1) / 2.0, 1.0])[:3]

        np.testing.assert_allclose(centre(outputVolume), centre(inputVolume), atol=1e-6)
        self.assertEqual(slicer.util.arrayFromVolume(outputVolume).dtype, array.dtype)
        self.delayDisplay("Test passed")
