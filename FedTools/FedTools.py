import os
import shutil
import tempfile
from typing import Annotated

import numpy as np

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
# FedTools
#


class FedTools(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Fed Tools")
        self.parent.categories = ["SlicerLeap"]
        self.parent.dependencies = ["SlicerLeapCommon"]  # loaded first: SlicerLeapCommonLib
        self.parent.contributors = ["SlicerLeap developers"]
        self.parent.helpText = _("""
Train a segmentation model on this site's cases: pairs of a volume and a segmentation drawn on it
(segments named the same way in every case). Training runs in a background process; the trained model
is registered in your model catalog and can be used at once in the SKS Segmentation module.
<br><br>
Federated training (Flower, FedAvg or FedProx) runs from the Python console in this version:
<code>logic.startFederatedTraining(sites)</code> runs every site on this computer as its own Flower
SuperNode process; <code>logic.startCoordinator(siteKeys)</code> coordinates remote hospitals, which join with
<code>slicerleap fed site</code>. Only model weights leave a site (TLS, registered site keys).
""")
        self.parent.acknowledgementText = _("""
Built on MONAI, PyTorch, SimpleITK and 3D Slicer. The module layout follows Slicer's scripted-module
template by Jean-Christophe Fillion-Robin (Kitware), Andras Lasso (PerkLab) and Steve Pieper (Isomics).
""")


#
# FedToolsParameterNode
#


@parameterNodeWrapper
class FedToolsParameterNode:
    """
    trainingImage, trainingSegmentation - The case to add to the training list.
    caseImages, caseSegmentations - The training cases (same length, pairwise).
    modelName, modelVersion - The new model's catalog id is modelName@modelVersion.
    channels - U-Net feature channels per level.
    epochs, iterationsPerEpoch - Length of training.
    spacing - Isotropic voxel size (mm) the model works at.
    patchSize - Edge of the cubic training patch (voxels at that spacing).
    device - Where training runs: auto picks CUDA, then Apple MPS, then CPU.
    keepFiles - Keep the job folder for troubleshooting.
    """

    trainingImage: vtkMRMLScalarVolumeNode
    trainingSegmentation: vtkMRMLSegmentationNode
    caseImages: list[vtkMRMLScalarVolumeNode]
    caseSegmentations: list[vtkMRMLSegmentationNode]
    modelName: str = "my-unet"
    modelVersion: str = "1.0.0"
    channels: Annotated[str, Choice(["4,8,16", "8,16,32,64", "16,32,64,128"])] = "8,16,32,64"
    epochs: Annotated[int, WithinRange(1, 1000)] = 10
    iterationsPerEpoch: Annotated[int, WithinRange(1, 1000)] = 10
    spacing: Annotated[float, WithinRange(0.5, 10.0)] = 2.0
    patchSize: Annotated[int, WithinRange(16, 256)] = 64
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"])] = "auto"
    keepFiles: bool = False


#
# FedToolsWidget
#


class FedToolsWidget(JobPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel(FedToolsLogic())
        self.ui.addCaseButton.connect("clicked(bool)", self.onAddCase)
        self.ui.removeCaseButton.connect("clicked(bool)", self.onRemoveCase)

    def onParameterNodeModified(self) -> None:
        p = self._parameterNode
        self.ui.casesListWidget.clear()
        cases = zip(p.caseImages, p.caseSegmentations) if p else []
        for image, segmentation in cases:
            imageName = image.GetName() if image else _("(deleted volume)")
            segmentationName = segmentation.GetName() if segmentation else _("(deleted segmentation)")
            self.ui.casesListWidget.addItem(f"{imageName}  /  {segmentationName}")
        self.ui.addCaseButton.enabled = bool(p and p.trainingImage and p.trainingSegmentation)

    def canApply(self) -> tuple:
        if len(self._parameterNode.caseImages) > 0:
            return True, _("Train a segmentation model on the listed cases")
        return False, _("Add at least one training case (volume and segmentation)")

    def cancelToolTip(self) -> str:
        return _("Stop training; no model is registered")

    def onAddCase(self) -> None:
        p = self._parameterNode
        if p.trainingImage in list(p.caseImages):
            slicer.util.errorDisplay(_("'{name}' is already a training case.").format(name=p.trainingImage.GetName()))
            return
        with slicer.util.NodeModify(p):
            p.caseImages.append(p.trainingImage)
            p.caseSegmentations.append(p.trainingSegmentation)

    def onRemoveCase(self) -> None:
        row = self.ui.casesListWidget.currentRow
        if row < 0:
            return
        with slicer.util.NodeModify(self._parameterNode):
            del self._parameterNode.caseImages[row]
            del self._parameterNode.caseSegmentations[row]

    def startJob(self):
        p = self._parameterNode
        return self.logic.startLocalTraining(
            list(p.caseImages), list(p.caseSegmentations), modelId=f"{p.modelName.strip()}@{p.modelVersion.strip()}",
            epochs=p.epochs, iterationsPerEpoch=p.iterationsPerEpoch, spacingMm=p.spacing, patchSize=p.patchSize,
            channels=[int(c) for c in p.channels.split(",")], device=p.device, keepFiles=p.keepFiles)

    def onJobSucceeded(self, outputs: dict) -> None:
        card = outputs["model"]
        self.ui.logText.appendPlainText(
            _("Registered model {id} (final validation Dice {dice:.3f}). Select it in the SKS Segmentation module.").format(
                id=card["id"], dice=card["evaluation"]["final_val_dice"]))


#
# FedToolsLogic
#


class FedToolsLogic(ScriptedLoadableModuleLogic):
    """Thin wrapper over FedToolsLib.logic (Qt-free, tested with pytest on slicer-core).
    Use `process` from the Python console:

        logic = slicer.util.getModuleLogic("FedTools")
        card = logic.process([getNode("case1")], [getNode("case1 segmentation")], modelId="liver-unet@1.0.0")
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._jobs = None

    def getParameterNode(self):
        return FedToolsParameterNode(super().getParameterNode())

    @property
    def jobs(self):
        """The Qt-free logic, created on first use after the engine's Python packages (and Flower) are installed."""
        if self._jobs is None:
            SlicerLeapCommonLib.ensure_dependencies(requester="Fed Tools", federated=True)
            from FedToolsLib.logic import FedToolsLogic as TrainingJobs

            self._jobs = TrainingJobs()
        return self._jobs

    @staticmethod
    def _options(modelId, epochs, iterationsPerEpoch, spacingMm, patchSize, channels, device, keepFiles) -> dict:
        return {"model_id": modelId, "epochs": epochs, "iterations_per_epoch": iterationsPerEpoch,
                "spacing_mm": spacingMm, "patch": patchSize, "channels": channels, "device": device, "keep_files": keepFiles}

    def startLocalTraining(self, images, segmentations, modelId="my-unet@1.0.0", epochs=10, iterationsPerEpoch=10,
                           spacingMm=2.0, patchSize=64, channels=(8, 16, 32, 64), device="auto", keepFiles=False):
        """Start training in a background process; returns the job (poll(), cancel(), finish()).
        spacingMm and patchSize: one value (isotropic) or three (i, j, k)."""
        options = self._options(modelId, epochs, iterationsPerEpoch, spacingMm, patchSize, channels, device, keepFiles)
        return self.jobs.start_local_training(images, segmentations, **options)

    def startFederatedTraining(self, sites, segment=None, rounds=3, strategy="fedavg", localIterations=20,
                               modelId="fed-unet@1.0.0", settings=None, device="auto", keepFiles=False):
        """Federated training with every site on this computer, each its own Flower SuperNode process: `sites` is
        a list with, per site, a list of (volume node, segmentation node) pairs or a data folder (images/ + labels/).
        Returns the job; its progress records carry each round's per-site results (FedToolsLib.logic.round_history)."""
        return self.jobs.create_federated_job(sites, segment=segment, rounds=rounds, strategy=strategy,
                                              local_iterations=localIterations, model_id=modelId, settings=settings,
                                              device=device, keep_files=keepFiles).start()

    def startCoordinator(self, siteKeys, host="127.0.0.1", port=9092, rounds=3, strategy="fedavg", localIterations=20,
                         modelId="fed-unet@1.0.0", settings=None, keepFiles=False):
        """Coordinate remote sites (their public key files); they join with `slicerleap fed site`."""
        return self.jobs.create_coordinator_job(siteKeys, host=host, port=port, rounds=rounds, strategy=strategy,
                                                local_iterations=localIterations, model_id=modelId, settings=settings,
                                                keep_files=keepFiles).start()

    def process(self, images, segmentations, modelId="my-unet@1.0.0", epochs=10, iterationsPerEpoch=10,
                spacingMm=2.0, patchSize=64, channels=(8, 16, 32, 64), device="auto", keepFiles=False) -> dict:
        """Train and wait. Returns the registered model's card (id, labels, evaluation, "_path" of the weights)."""
        options = self._options(modelId, epochs, iterationsPerEpoch, spacingMm, patchSize, channels, device, keepFiles)
        outputs = self.jobs.process(images, segmentations, on_progress=SlicerLeapCommonLib.logProgress,
                                    **options)
        return outputs["model"]


#
# FedToolsTest
#


class FedToolsTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()
        # Register test models in a throw-away catalog, not the user's.
        self._savedHome = os.environ.get("SLICERLEAP_HOME")
        self._testHome = tempfile.mkdtemp(prefix="SlicerLeapTestHome-")
        os.environ["SLICERLEAP_HOME"] = self._testHome

    def tearDown(self):
        if self._savedHome is None:
            os.environ.pop("SLICERLEAP_HOME", None)
        else:
            os.environ["SLICERLEAP_HOME"] = self._savedHome
        shutil.rmtree(self._testHome, ignore_errors=True)

    def runTest(self):
        self.setUp()
        try:
            self.test_FedTools1()
        finally:
            self.tearDown()

    def test_FedTools1(self):
        """Train a tiny U-Net for a few steps on a synthetic two-sphere case: the model is registered in the
        catalog with the segmentation's segment names and colours as its labels."""
        self.delayDisplay("Starting the test")
        k, j, i = np.mgrid[:32, :32, :32]
        labels = np.zeros((32, 32, 32), np.uint8)
        labels[(i - 11) ** 2 + (j - 12) ** 2 + (k - 16) ** 2 < 6.5 ** 2] = 1
        labels[(i - 22) ** 2 + (j - 20) ** 2 + (k - 15) ** 2 < 5 ** 2] = 2
        array = np.choose(labels, [100, 600, 350]).astype(np.int16)
        ijkToRAS = np.diag([-2.0, -2.0, 2.0, 1.0])
        ijkToRAS[:3, 3] = [60.0, 50.0, -20.0]
        volume = slicer.util.addVolumeFromArray(array, ijkToRAS=ijkToRAS, name="case")
        labelmap = slicer.util.addVolumeFromArray(labels, ijkToRAS=ijkToRAS, name="case labels",
                                                  nodeClassName="vtkMRMLLabelMapVolumeNode")
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "case segmentation")
        slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentationNode)
        segmentation = segmentationNode.GetSegmentation()
        segmentation.GetNthSegment(0).SetName("Bright sphere")
        segmentation.GetNthSegment(1).SetName("Dim sphere")

        logic = FedToolsLogic()
        card = logic.process([volume], [segmentationNode], modelId="selftest-unet@1.0.0", epochs=1, iterationsPerEpoch=2,
                             spacingMm=2.0, patchSize=16, channels=(4, 8, 16))
        self.delayDisplay("Training done")

        self.assertEqual(card["id"], "selftest-unet@1.0.0")
        self.assertEqual([label["name"] for label in card["labels"]], ["Bright sphere", "Dim sphere"])
        self.assertEqual([label["value"] for label in card["labels"]], [1, 2])
        self.assertTrue(os.path.isfile(card["_path"]))
        from slicerleap.models import ModelCatalog

        self.assertIn("selftest-unet@1.0.0", [c["id"] for c in ModelCatalog().cards()])

        from slicerleap.errors import BadInputError

        with self.assertRaises(BadInputError):  # one segmentation per volume
            logic.process([volume], [segmentationNode, segmentationNode])
        self.delayDisplay("Test passed")
