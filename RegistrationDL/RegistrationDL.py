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

from slicer import vtkMRMLGridTransformNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

import SlicerLeapCommonLib  # makes the SlicerLeap engine importable; imports nothing heavy
from SlicerLeapCommonLib.job_panel import JobPanelMixin


#
# RegistrationDL
#


class RegistrationDL(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Registration DL")
        self.parent.categories = ["SlicerLeap"]
        self.parent.dependencies = ["SlicerLeapCommon"]  # loaded first: SlicerLeapCommonLib
        self.parent.contributors = ["SlicerLeap developers"]
        self.parent.helpText = _("""
Deformably register a moving volume to a fixed one. Optional affine pre-alignment, then either
<b>network</b>: a registration network from the model catalog (TM-DCA, deformable cross-attention, by
default; VoxelMorph as a baseline) predicts the displacement in one pass, then the field is refined on
this pair for the given refinement steps (optionally after neural instance optimisation steps, which
fine-tune the network itself); or <b>optimisation</b>: the
displacement field itself is optimised, coarse to fine. PyTorch, GPU when available.
Outputs: a grid transform (apply it to the moving volume, or to segmentations drawn on it), the
moving volume resampled on the fixed grid, the Jacobian determinant of the deformation (values at or
below 0 mark folding) and, if you choose a moving segmentation, that segmentation propagated onto the
fixed volume. The job runs in a background process; Cancel leaves the scene unchanged. While it runs,
<b>Stop early, keep result</b> ends the optimisation at once and loads the registration found so far.
<br><br>
The bundled networks were trained on deformed copies of one brain template (MNI152) and synthetic
shapes: see their model cards. Alone they take under a second; by default their field is then refined on
the pair (Refinement steps, a few seconds, with a penalty against folding), which on real inter-subject brain
pairs beat diffeomorphic demons in our benchmark (benchmarks/RESULTS.md). NIO (fine-tuning the network on the
pair, the paper's method) is optional. For other anatomy, train a network on your own images (slicerleap train registration).
""")
        self.parent.acknowledgementText = _("""
Built on MONAI, PyTorch, SimpleITK and 3D Slicer. The module layout follows Slicer's scripted-module
template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
""")


#
# RegistrationDLParameterNode
#


@parameterNodeWrapper
class RegistrationDLParameterNode:
    """
    fixedVolume - The reference volume; results are on its grid.
    movingVolume - The volume deformed onto the fixed one.
    movingSegmentation - Optional segmentation of the moving volume, propagated onto the fixed volume.
    method - network (catalog model + neural instance optimisation) or optimisation (of the field itself).
    modelId - Catalog id of the registration network; empty for the default one.
    nioIterations - Neural instance optimisation steps on this pair (0: the network's prediction only).
    refineIterations - Steps optimising the network's field on this pair as a diffeomorphic velocity field (0: none).
    affine - Affine pre-alignment before the deformable step.
    iterations - Optimisation steps per pyramid level (method optimisation).
    smoothness - Weight of the displacement field's regulariser.
    workingSpacing - Isotropic voxel size (mm) the field is optimised at.
    levels - Coarse-to-fine pyramid levels.
    outputTransform - The latest transform.
    applyToMoving - Put the moving volume under the new transform.
    device - Where the optimisation runs: auto picks CUDA, then Apple MPS, then CPU.
    keepFiles - Keep the job folder for troubleshooting.
    """

    fixedVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    movingSegmentation: vtkMRMLSegmentationNode
    method: Annotated[str, Choice(["network", "optimisation"])] = "network"
    modelId: str = ""
    nioIterations: Annotated[int, WithinRange(0, 1000)] = 0
    refineIterations: Annotated[int, WithinRange(0, 1000)] = 70
    affine: bool = True
    iterations: Annotated[int, WithinRange(1, 1000)] = 80
    smoothness: Annotated[float, WithinRange(0.0, 10.0)] = 1.0
    workingSpacing: Annotated[float, WithinRange(0.5, 10.0)] = 3.0
    levels: Annotated[int, WithinRange(1, 4)] = 2
    outputTransform: vtkMRMLGridTransformNode
    applyToMoving: bool = True
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"])] = "auto"
    keepFiles: bool = False


#
# RegistrationDLWidget
#


class RegistrationDLWidget(JobPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    parameterNodeClass = RegistrationDLParameterNode
    defaultModelText = _("Default registration network")

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel()

    def createLogic(self):
        from RegistrationDLLib.logic import RegistrationDLLogic

        return RegistrationDLLogic()

    def onParameterNodeModified(self) -> None:
        """The model, NIO and refinement steps apply to the network method; steps, smoothness, spacing and levels to
        the optimisation method."""
        network = self._parameterNode is not None and self._parameterNode.method == "network"
        for widget in (self.ui.modelComboBox, self.ui.nioIterationsSpinBox, self.ui.refineIterationsSpinBox):
            widget.enabled = network
        for widget in (self.ui.iterationsSpinBox, self.ui.smoothnessSpinBox, self.ui.workingSpacingSpinBox, self.ui.levelsSpinBox):
            widget.enabled = not network

    def canApply(self) -> tuple:
        p = self._parameterNode
        if p.fixedVolume and p.movingVolume and p.fixedVolume != p.movingVolume:
            return True, _("Register the moving volume to the fixed volume")
        return False, _("Select two different volumes: fixed and moving")

    def startJob(self):
        p = self._parameterNode
        return self.logic.start(p.fixedVolume, p.movingVolume, method=p.method, model=p.modelId or None,
                                moving_segmentation=p.movingSegmentation, device=p.device, keep_files=p.keepFiles,
                                **self.declaredParameters())

    def onJobSucceeded(self, outputs: dict) -> None:
        self._parameterNode.outputTransform = outputs["transform"]
        if self._parameterNode.applyToMoving:
            self.logic.apply_to_moving(outputs["transform"], self._parameterNode.movingVolume)
        self.logic.show_result(self._parameterNode.fixedVolume, outputs)


#
# RegistrationDLTest
#


class RegistrationDLTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_RegistrationDL1()

    def test_RegistrationDL1(self):
        """Register a shifted copy of a synthetic two-sphere volume (2 mm, LPS-like axes, mild noise): the transform
        references both volumes, the warped volume lies on the fixed grid and is closer to the fixed one than the moving one was."""
        self.delayDisplay("Starting the test")
        k, j, i = np.mgrid[:32, :32, :32]
        rng = np.random.default_rng(0)

        def spheres(si, sj, sk):
            a = np.full((32, 32, 32), 100.0)
            a[(i - 11 - si) ** 2 + (j - 12 - sj) ** 2 + (k - 16 - sk) ** 2 < 6.5 ** 2] = 600
            a[(i - 22 - si) ** 2 + (j - 20 - sj) ** 2 + (k - 15 - sk) ** 2 < 5 ** 2] = 350
            return (a + rng.normal(0, 15, a.shape)).astype(np.int16)

        ijkToRAS = np.diag([-2.0, -2.0, 2.0, 1.0])
        ijkToRAS[:3, 3] = [60.0, 50.0, -20.0]
        fixedArray, movingArray = spheres(0, 0, 0), spheres(2, 1, -1)
        fixedVolume = slicer.util.addVolumeFromArray(fixedArray, ijkToRAS=ijkToRAS, name="fixed")
        movingVolume = slicer.util.addVolumeFromArray(movingArray, ijkToRAS=ijkToRAS, name="moving")

        SlicerLeapCommonLib.ensure_dependencies(requester="Registration DL")
        from RegistrationDLLib.logic import RegistrationDLLogic

        logic = RegistrationDLLogic()
        outputs = logic.process(fixedVolume, movingVolume, method="optimisation", iterations=10, working_spacing_mm=4.0,
                                affine=False, levels=1, smoothness=0.5, apply_to_moving=True, show_result=False)
        self.delayDisplay("Processing done")

        transformNode, warpedVolume = outputs["transform"], outputs["warped"]
        self.assertTrue(transformNode.IsA("vtkMRMLGridTransformNode"))
        self.assertEqual(transformNode.GetNodeReference("fixedVolume"), fixedVolume)
        self.assertEqual(transformNode.GetNodeReference("movingVolume"), movingVolume)
        self.assertEqual(movingVolume.GetParentTransformNode(), transformNode)
        self.assertTrue(outputs["jacobian"].IsA("vtkMRMLScalarVolumeNode"))

        fixedMatrix, warpedMatrix = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
        fixedVolume.GetIJKToRASMatrix(fixedMatrix)
        warpedVolume.GetIJKToRASMatrix(warpedMatrix)
        np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(warpedMatrix), slicer.util.arrayFromVTKMatrix(fixedMatrix), atol=1e-6)
        errorBefore = np.abs(movingArray.astype(np.float32) - fixedArray).mean()
        errorAfter = np.abs(slicer.util.arrayFromVolume(warpedVolume).astype(np.float32) - fixedArray).mean()
        self.assertLess(errorAfter, 0.8 * errorBefore)

        from slicerleap.errors import BadInputError

        with self.assertRaises(BadInputError):  # fixed and moving must differ
            logic.process(fixedVolume, fixedVolume, show_result=False)
        self.delayDisplay("Test passed")
