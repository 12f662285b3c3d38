import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np

import qt

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
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
<b>Federation</b> (Flower; FedAvg or FedProx): train one model across hospitals without moving images.
<i>simulate</i> runs every site on this computer (each case belongs to the site number it was added with);
<i>coordinate</i> serves remote sites, which send you their public keys and receive your CA certificate and
address (shown in the log when the coordinator starts); <i>join</i> takes part as one site with the listed
cases: make the site's keys once, send the .pub file to the coordinator. Connections use TLS, only registered
sites may join, and only model weights (with batch-norm feature statistics) and scalar metrics leave a site;
<i>differential privacy</i> (Flower's; the networks then use instance norm)
can also bound what the updates reveal: <i>central</i> (clipped and noised at the coordinator) or <i>local</i>
(each site noises its own update before sending it). The plot shows every site's
validation Dice per round; the global model is registered in the catalog at the coordinator and at every site.
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
    role - local (train here), simulate (all sites on this computer), coordinate (serve remote sites), join (be a site).
    caseSite, caseSites - simulate: the site number of the next added case, and of every listed case.
    rounds, strategy, localIterations - The federation: rounds, fedavg/fedprox, optimiser steps per site and round.
    privacy - Differential privacy of the updates: off, central (clip + noise at the coordinator), local (at each site).
    siteKeys, host, port - coordinate: the sites' public key files (';'-separated) and where to listen.
    server, caCertificate, privateKey, siteIndex - join: the coordinator's address and CA certificate, this site's
        private key and number.
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
    role: Annotated[str, Choice(["local", "simulate", "coordinate", "join"])] = "local"
    caseSite: Annotated[int, WithinRange(0, 63)] = 0
    caseSites: list[int]
    rounds: Annotated[int, WithinRange(1, 1000)] = 3
    strategy: Annotated[str, Choice(["fedavg", "fedprox"])] = "fedavg"
    localIterations: Annotated[int, WithinRange(1, 10000)] = 20
    privacy: Annotated[str, Choice(["off", "central", "local"])] = "off"
    siteKeys: str = ""
    host: str = "127.0.0.1"
    port: Annotated[int, WithinRange(1024, 65535)] = 9092
    server: str = ""
    caCertificate: Path
    privateKey: Path
    siteIndex: Annotated[int, WithinRange(0, 63)] = 0
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"])] = "auto"
    keepFiles: bool = False


#
# FedToolsWidget
#


class FedToolsWidget(JobPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    parameterNodeClass = FedToolsParameterNode
    federatedDependencies = True  # the Logic needs Flower too

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel()
        self.ui.addCaseButton.connect("clicked(bool)", self.onAddCase)
        self.ui.removeCaseButton.connect("clicked(bool)", self.onRemoveCase)
        self.ui.makeKeysButton.connect("clicked(bool)", self.onMakeKeys)
        self._records, self._roundTable, self._roundChart = [], None, None
        self._plotView = slicer.qMRMLPlotView()  # the rounds' Dice, live, inside the panel
        self._plotView.setMRMLScene(slicer.mrmlScene)
        self.ui.roundsPlotFrame.layout().addWidget(self._plotView)

    def createLogic(self):
        from FedToolsLib.logic import FedToolsLogic

        return FedToolsLogic()

    def onParameterNodeModified(self) -> None:
        p = self._parameterNode
        self.ui.casesListWidget.clear()
        cases = zip(p.caseImages, p.caseSegmentations) if p else []
        role = p.role if p else "local"
        for n, (image, segmentation) in enumerate(cases):
            imageName = image.GetName() if image else _("(deleted volume)")
            segmentationName = segmentation.GetName() if segmentation else _("(deleted segmentation)")
            site = f"site {self._caseSite(n)}:  " if role == "simulate" else ""
            self.ui.casesListWidget.addItem(f"{site}{imageName}  /  {segmentationName}")
        self.ui.addCaseButton.enabled = bool(p and p.trainingImage and p.trainingSegmentation)
        federated = role != "local"
        for widget in (self.ui.roundsSpinBox, self.ui.strategyComboBox, self.ui.localIterationsSpinBox, self.ui.privacyComboBox):
            widget.enabled = federated and role != "join"  # the coordinator decides these
        self.ui.caseSiteSpinBox.enabled = role == "simulate"
        for widget in (self.ui.siteKeysLineEdit, self.ui.hostLineEdit, self.ui.portSpinBox):
            widget.enabled = role == "coordinate"
        for widget in (self.ui.serverLineEdit, self.ui.caPathLineEdit, self.ui.privateKeyPathLineEdit, self.ui.siteIndexSpinBox,
                       self.ui.makeKeysButton):
            widget.enabled = role == "join"
        for widget in (self.ui.epochsSpinBox, self.ui.iterationsPerEpochSpinBox, self.ui.spacingSpinBox, self.ui.patchSizeSpinBox):
            widget.enabled = role == "local"  # the federation trains the 2.5D U-Net with its own run settings

    def _caseSite(self, n: int) -> int:
        sites = self._parameterNode.caseSites
        return sites[n] if n < len(sites) else 0

    def canApply(self) -> tuple:
        p = self._parameterNode
        if p.role == "coordinate":
            if not [k for k in p.siteKeys.split(";") if k.strip()]:
                return False, _("Give the public key files of the sites that may join")
            return True, _("Start the coordinator; sites join with its address and CA certificate (shown in the log)")
        if len(p.caseImages) == 0:
            return False, _("Add at least one training case (volume and segmentation)")
        if p.role == "simulate":
            if len({self._caseSite(n) for n in range(len(p.caseImages))}) < 2:
                return False, _("Give the cases at least two different site numbers")
            return True, _("Federated training with every site on this computer")
        if p.role == "join":
            if not p.server.strip() or not p.caCertificate.is_file() or not p.privateKey.is_file():
                return False, _("Give the coordinator's address, its CA certificate and this site's private key")
            return True, _("Join the federation as a site with the listed cases (only model weights leave)")
        return True, _("Train a segmentation model on the listed cases")

    def cancelToolTip(self) -> str:
        if self._parameterNode and self._parameterNode.role == "join":
            return _("Leave the federation")
        return _("Stop training; no model is registered")

    def onAddCase(self) -> None:
        p = self._parameterNode
        if p.trainingImage in list(p.caseImages):
            slicer.util.errorDisplay(_("'{name}' is already a training case.").format(name=p.trainingImage.GetName()))
            return
        with slicer.util.NodeModify(p):
            while len(p.caseSites) < len(p.caseImages):  # cases listed before sites existed belong to site 0
                p.caseSites.append(0)
            p.caseImages.append(p.trainingImage)
            p.caseSegmentations.append(p.trainingSegmentation)
            p.caseSites.append(p.caseSite)

    def onRemoveCase(self) -> None:
        row = self.ui.casesListWidget.currentRow
        if row < 0:
            return
        with slicer.util.NodeModify(self._parameterNode):
            del self._parameterNode.caseImages[row]
            del self._parameterNode.caseSegmentations[row]
            if row < len(self._parameterNode.caseSites):
                del self._parameterNode.caseSites[row]

    def onMakeKeys(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(None, _("Folder for this site's keys"))
        if not folder:
            return
        try:
            private, public = self.logic.create_site_keys(folder, f"site{self._parameterNode.siteIndex}")
        except Exception as exc:
            slicer.util.errorDisplay(str(exc))
            return
        self._parameterNode.privateKey = Path(private)
        self.ui.logText.appendPlainText(_("Keys made. Send {public} to the coordinator; {private} stays here.").format(
            public=public, private=private))

    def startJob(self):
        p = self._parameterNode
        self._records = []
        modelId = f"{p.modelName.strip()}@{p.modelVersion.strip()}"
        federation = {"rounds": p.rounds, "strategy": p.strategy, "local_iterations": p.localIterations, "model_id": modelId,
                      "settings": {"dp": p.privacy}, "keep_files": p.keepFiles}
        cases = list(zip(p.caseImages, p.caseSegmentations))
        if p.role == "simulate":
            return self.logic.start_federated_training(self.logic.sites_from_numbers(cases, list(p.caseSites)), device=p.device,
                                                       **federation)
        if p.role == "coordinate":
            keys = [k.strip() for k in p.siteKeys.split(";") if k.strip()]
            return self.logic.start_coordinator(keys, host=p.host.strip(), port=p.port, **federation)
        if p.role == "join":
            return self.logic.join_federation(cases, p.server.strip(), str(p.caCertificate), str(p.privateKey), site_index=p.siteIndex,
                                              device=p.device, keep_files=p.keepFiles)
        return self.logic.start_local_training(
            list(p.caseImages), list(p.caseSegmentations), model_id=modelId, epochs=p.epochs, iterations_per_epoch=p.iterationsPerEpoch,
            spacing_mm=p.spacing, patch=p.patchSize, channels=[int(c) for c in p.channels.split(",")], device=p.device,
            keep_files=p.keepFiles)

    def onJobRecord(self, record: dict) -> None:
        """Rounds as they arrive: the coordinator's round log, or this site's own replies, into the plot."""
        if "address" in record:
            self.ui.logText.appendPlainText(_("Sites join with address {address} and the CA certificate {ca}").format(
                address=record["address"], ca=record.get("ca_cert")))
        if "round_log" not in record and "site_log" not in record:
            return
        self._records.append(record)
        history = self.logic.round_history(self._records, self._parameterNode.siteIndex)
        self._roundTable, self._roundChart = self.logic.update_round_chart(history, self._roundTable, self._roundChart)
        self._showChart()

    def _showChart(self) -> None:
        viewNode = getattr(self, "_plotViewNode", None)
        if viewNode is None:
            viewNode = self._plotViewNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotViewNode", "FedTools rounds view")
            self._plotView.setMRMLPlotViewNode(viewNode)
        viewNode.SetPlotChartNodeID(self._roundChart.GetID())

    def onJobSucceeded(self, outputs: dict) -> None:
        card = outputs["model"]
        dice = (card.get("evaluation") or {}).get("final_val_dice")
        detail = _(" (final validation Dice {dice:.3f})").format(dice=dice) if dice is not None else ""
        self.ui.logText.appendPlainText(
            _("Registered model {id}{detail}. Select it in the SKS Segmentation module.").format(id=card["id"], detail=detail))


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

        SlicerLeapCommonLib.ensure_dependencies(requester="Fed Tools", federated=True)
        from FedToolsLib.logic import FedToolsLogic

        logic = FedToolsLogic()
        card = logic.process([volume], [segmentationNode], model_id="selftest-unet@1.0.0", epochs=1, iterations_per_epoch=2,
                             spacing_mm=2.0, patch=16, channels=(4, 8, 16))["model"]
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
