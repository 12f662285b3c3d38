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

from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

import SlicerLeapCommonLib  # makes the SlicerLeap engine importable; imports nothing heavy
from SlicerLeapCommonLib.job_panel import JobPanelMixin


#
# SKSSegmentation
#


class SKSSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SKS Segmentation")
        self.parent.categories = ["SlicerLeap"]
        self.parent.dependencies = ["SlicerLeapCommon"]  # loaded first: SlicerLeapCommonLib
        self.parent.contributors = ["SlicerLeap developers"]
        self.parent.helpText = _("""
Segment a volume with a deep-learning model from the SlicerLeap model catalog. The result is a
segmentation next to the input volume, with the model's segment names, colours and terminology,
ready to correct in Segment Editor. The job runs in a background process: the application stays
responsive, Cancel stops it and leaves the scene unchanged.
<br><br>
Models: the bundled brain-tissue demo U-Net (skull-stripped T1 MRI), and any model you trained in the
FedTools module or imported with <code>slicerleap models import</code>. Prompt-guided label-efficient
training (skip-and-skip image-level labels, boxes, text and clicks) is not in this version yet.
""")
        self.parent.acknowledgementText = _("""
Built on MONAI, PyTorch, SimpleITK and 3D Slicer. The module layout follows Slicer's scripted-module
template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
""")


#
# SKSSegmentationParameterNode
#


@parameterNodeWrapper
class SKSSegmentationParameterNode:
    """
    inputVolume - The volume to segment.
    modelId - Catalog id of the model ('name@x.y.z'); empty for the default segmentation model.
    probability - Also output the foreground probability (0..1) on the input grid.
    device - Where the model runs: auto picks CUDA, then Apple MPS, then CPU.
    keepFiles - Keep the job folder (inputs, outputs, worker log) for troubleshooting.
    outputSegmentation - The latest result.
    train - Apply trains a new model on the checked training cases instead of segmenting.
    lesionSegment - Name of the lesion segment in training segmentations (empty: every segment).
    modelType - sks (dual Swin V2 encoder, uses slice labels) or unet (baseline, pixel labels only).
    newModelId - Catalog id of the model to train (name@x.y.z).
    trainingIterations - Stage-2 iterations (stage 1 runs three quarters of this).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    modelId: str = ""
    probability: bool = False
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"])] = "auto"
    keepFiles: bool = False
    outputSegmentation: vtkMRMLSegmentationNode
    train: bool = False
    lesionSegment: str = ""
    modelType: Annotated[str, Choice(["sks", "unet"])] = "sks"
    newModelId: str = "my-sks@1.0.0"
    trainingIterations: Annotated[int, WithinRange(1, 100000)] = 400


#
# SKSSegmentationWidget
#


class SKSSegmentationWidget(JobPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    defaultVolumeParameters = ("inputVolume",)
    defaultModelText = _("Default segmentation model")

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel(SKSSegmentationLogic())
        self.ui.trainingVolumesSelector.connect("checkedNodesChanged()", self._checkCanApply)
        self.ui.markLesionSlicesButton.connect("clicked(bool)", self.onMarkLesionSlices)
        self.ui.markNoLesionButton.connect("clicked(bool)", self.onMarkNoLesion)
        self.ui.editSliceTableButton.connect("clicked(bool)", self.onEditSliceTable)

    def canApply(self) -> tuple:
        p = self._parameterNode
        if p.train:
            counts = self.labelCounts()
            if counts is None:
                return False, _("Check the training cases (volumes)")
            if not counts["pixel"]:
                return False, _("At least one training case needs a lesion segmentation")
            return True, _("Train {model} on {pixel} case(s) with pixel labels and {slice} with slice labels").format(
                model=p.newModelId, pixel=counts["pixel"], slice=counts["slice"])
        if p.inputVolume:
            return True, _("Segment the input volume with the selected model")
        return False, _("Select an input volume")

    def trainingCases(self) -> list:
        p = self._parameterNode
        return self.logic.jobs.cases_from_volumes(list(self.ui.trainingVolumesSelector.checkedNodes()), p.lesionSegment)

    def labelCounts(self):
        """Counts per label kind of the checked cases, shown in the panel; None when no case is checked."""
        if not self.ui.trainingVolumesSelector.checkedNodes():
            self.ui.labelCountsLabel.text = _("no training cases checked")
            return None
        counts = self.logic.jobs.count_label_kinds(self.trainingCases())
        self.ui.labelCountsLabel.text = _("{pixel} with pixel labels, {slice} with slice labels only, {none} unlabelled (left out)").format(
            pixel=counts["pixel"], slice=counts["slice"], none=counts["unlabelled"])
        return counts

    def _inputSliceTable(self):
        from slicerleap.scene.slice_labels import slice_label_table

        volume = self._parameterNode.inputVolume
        if volume is None:
            slicer.util.errorDisplay(_("Select the input volume whose slices you want to label."))
            return None
        return slice_label_table(self.logic.jobs.ctx, volume)

    def onMarkLesionSlices(self) -> None:
        from slicerleap.scene.slice_labels import read_slice_labels, set_slice_labels
        from slicerleap.segmentation.slice_data import ranges_to_flags

        table = self._inputSliceTable()
        if table is None:
            return
        try:
            flags = read_slice_labels(table)
            marked = ranges_to_flags([[self.ui.firstLesionSliceSpinBox.value, self.ui.lastLesionSliceSpinBox.value]], len(flags))
            set_slice_labels(table, np.where(marked > 0, 1, np.maximum(flags, 0)))
        except Exception as exc:
            slicer.util.errorDisplay(str(exc))
        self._checkCanApply()

    def onMarkNoLesion(self) -> None:
        from slicerleap.scene.slice_labels import set_slice_labels

        table = self._inputSliceTable()
        if table is not None:
            set_slice_labels(table, np.zeros(table.GetTable().GetNumberOfRows(), dtype=int))
            self._checkCanApply()

    def onEditSliceTable(self) -> None:
        """Show the table in the layout's table view, where its cells can be edited."""
        table = self._inputSliceTable()
        if table is not None:
            slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()

    def startJob(self):
        p = self._parameterNode
        if p.train:
            return self.logic.startTraining(self.trainingCases(), p.newModelId, modelType=p.modelType,
                                            iterations=p.trainingIterations, device=p.device, keepFiles=p.keepFiles)
        return self.logic.start(p.inputVolume, modelId=p.modelId or None, device=p.device,
                                probability=p.probability, keepFiles=p.keepFiles)

    def onJobSucceeded(self, outputs: dict) -> None:
        if "model" in outputs:  # training: the new model becomes the selected one
            self.ui.logText.appendPlainText(_("Registered model {id}").format(id=outputs["model"]["id"]))
            self._parameterNode.modelId = outputs["model"]["id"]
            self._parameterNode.train = False
            self.refreshModels()
            return
        self._parameterNode.outputSegmentation = outputs["segmentation"]
        self.logic.showResult(self._parameterNode.inputVolume, outputs)
        self.refreshModels()


#
# SKSSegmentationLogic
#


class SKSSegmentationLogic(ScriptedLoadableModuleLogic):
    """Thin wrapper over SKSSegmentationLib.logic (Qt-free, tested with pytest on slicer-core).
    Use `process` from the Python console:

        logic = slicer.util.getModuleLogic("SKSSegmentation")
        outputs = logic.process(getNode("MRHead"))
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._jobs = None

    def getParameterNode(self):
        return SKSSegmentationParameterNode(super().getParameterNode())

    @property
    def jobs(self):
        """The Qt-free logic, created on first use after the engine's Python packages are installed."""
        if self._jobs is None:
            SlicerLeapCommonLib.ensure_dependencies(requester="SKS Segmentation")
            from SKSSegmentationLib.logic import SKSSegmentationLogic as SegmentationJobs

            self._jobs = SegmentationJobs()
        return self._jobs

    @staticmethod
    def availableModels() -> list:
        """Segmentation model cards. Raises ImportError until the engine's packages are installed."""
        from SKSSegmentationLib.logic import SKSSegmentationLogic as SegmentationJobs

        return SegmentationJobs.available_models()

    def start(self, inputVolume, modelId=None, device="auto", probability=False, keepFiles=False):
        """Start segmenting in a background process; returns the job (poll(), cancel(), finish())."""
        return self.jobs.start(inputVolume, model_id=modelId, device=device, probability=probability, keep_files=keepFiles)

    def startTraining(self, cases, modelId="my-sks@1.0.0", modelType="sks", iterations=400, device="auto", keepFiles=False):
        """Start training SKS (or the U-Net baseline) on TrainingCase items in a background process; the
        model is registered in the catalog when the job succeeds."""
        return self.jobs.create_training_job(cases, modelId, model_type=modelType, iterations=iterations,
                                             coarse_iterations=max(1, 3 * iterations // 4), device=device,
                                             keep_files=keepFiles).start()

    def process(self, inputVolume, modelId=None, device="auto", probability=False, keepFiles=False, showResult=True) -> dict:
        """Segment and wait. Returns {"segmentation": vtkMRMLSegmentationNode} plus "probability"
        (vtkMRMLScalarVolumeNode) when asked for."""
        outputs = self.jobs.process(inputVolume, model_id=modelId, device=device, probability=probability,
                                    keep_files=keepFiles, on_progress=SlicerLeapCommonLib.logProgress)
        if showResult:
            self.showResult(inputVolume, outputs)
        return outputs

    @staticmethod
    def showResult(inputVolume, outputs: dict) -> None:
        slicer.util.setSliceViewerLayers(background=inputVolume, fit=True)
        outputs["segmentation"].CreateClosedSurfaceRepresentation()


#
# SKSSegmentationTest
#


class SKSSegmentationTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SKSSegmentation1()

    def test_SKSSegmentation1(self):
        """Segment a synthetic two-sphere volume (2 mm, LPS-like axes) with the default model: the result
        is a segmentation with the model card's segment names, and the probability map lies on the input grid."""
        self.delayDisplay("Starting the test")
        k, j, i = np.mgrid[:48, :48, :48]
        array = np.where((i - 24) ** 2 + (j - 24) ** 2 + (k - 24) ** 2 < 18 ** 2, 300, 20).astype(np.int16)
        array[(i - 24) ** 2 + (j - 24) ** 2 + (k - 24) ** 2 < 9 ** 2] = 600
        ijkToRAS = np.diag([-2.0, -2.0, 2.0, 1.0])
        ijkToRAS[:3, 3] = [48.0, 48.0, -48.0]
        inputVolume = slicer.util.addVolumeFromArray(array, ijkToRAS=ijkToRAS, name="phantom")

        logic = SKSSegmentationLogic()
        card = logic.jobs.resolve_model(None)
        outputs = logic.process(inputVolume, probability=True, showResult=False)
        self.delayDisplay("Processing done")

        segmentationNode = outputs["segmentation"]
        self.assertTrue(segmentationNode.IsA("vtkMRMLSegmentationNode"))
        self.assertEqual(segmentationNode.GetAttribute("SlicerLeap.model"), card["id"])
        segmentation = segmentationNode.GetSegmentation()
        names = {segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())}
        self.assertTrue(names.issubset({label["name"] for label in card["labels"]}), names)

        probabilityNode = outputs["probability"]
        self.assertTrue(probabilityNode.IsA("vtkMRMLScalarVolumeNode"))
        inputMatrix, outputMatrix = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
        inputVolume.GetIJKToRASMatrix(inputMatrix)
        probabilityNode.GetIJKToRASMatrix(outputMatrix)
        np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(outputMatrix), slicer.util.arrayFromVTKMatrix(inputMatrix), atol=1e-6)
        probability = slicer.util.arrayFromVolume(probabilityNode)
        self.assertEqual(probability.shape, array.shape)
        self.assertTrue(probability.min() >= 0.0 and probability.max() <= 1.0 + 1e-6)

        from slicerleap.errors import BadInputError

        labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        with self.assertRaises(BadInputError):  # a labelmap is not an image to segment
            logic.process(labelmap, showResult=False)
        self.delayDisplay("Test passed")
