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

from slicer import (vtkMRMLMarkupsCurveNode, vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode,
                    vtkMRMLSegmentationNode, vtkMRMLTableNode)

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
Models: the bundled SKS lesion model (default; T1 MRI, trained on synthetic lesions in the MNI template), the
bundled brain-tissue demo U-Net (skull-stripped T1 MRI), and any model you trained here, in
the FedTools module or imported with <code>slicerleap models import</code>.
<br><br>
<b>Train with few labels (SKS)</b>: a few lesion segmentations plus slice-level labels ("lesion in slices k1..k2").
<br><b>Boxes and pseudo-labels (teacher–student)</b>: segment organ and lesion in a few cases, draw boxes (ROIs)
on the others; train a teacher that reads the boxes, pseudo-label the boxed cases, review them most
uncertain first in Segment Editor (accept, skip, reject), then train or fine-tune a student that needs no
boxes. Segments keep their provenance (manual, pseudo, corrected; model; time) in the scene and in saved
.seg.nrrd files.
<br><b>Text prompt (MPTPN)</b>: write what to segment as the axial view shows it ("one small round lesion in the
upper left"), or have the prompt written from clicks or a box; it segments the current slice, the template's
slab or every slice into a new segmentation node. A table (volume, prompt, s1, s2) runs one prompt per case.
Train a text-prompted model on the checked cases with segmentations: prompts are written from the masks.
<br><b>Clicks, boxes (interactive)</b>: Start, then place + clicks on what belongs to the segment and - clicks on what
does not (or a box, from an ROI); each changes the segment only within the reach of the click (30 mm along each axis
by default), Undo takes it back, Cancel restores the segment, Done keeps it. In the review queue, "Correct with
clicks" opens the case's pseudo-label this way. The default model grows the clicked region by intensity (no training,
any scan); a click network from the catalog can be chosen (the bundled one: MR brains only). Measured on held-out
brains, clicks do not yet improve a good tissue pseudo-label and work poorly on lesions (set the reach to about 10 mm
for small structures; even then Dice stays near 0.4): use Segment Editor's brush for fine corrections
(benchmarks/RESULTS.md).
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
    force - Run even when the scan is outside the model's declared domain (modality, skull stripping, voxel size).
    brainMask - A T1 with its skull given to a brain model is skull-stripped first (MNI template registration).
    device - Where the model runs: auto picks CUDA, then Apple MPS, then CPU.
    keepFiles - Keep the job folder (inputs, outputs, worker log) for troubleshooting.
    outputSegmentation - The latest result.
    train - Apply trains a new model on the checked training cases instead of segmenting.
    lesionSegment - Name of the lesion segment in training segmentations (empty: every segment).
    modelType - sks (dual Swin V2 encoder, uses slice labels) or unet (baseline, pixel labels only).
    newModelId - Catalog id of the model to train (name@x.y.z).
    trainingIterations - Stage-2 iterations (stage 1 runs three quarters of this); also the teacher's and student's.
    organSegment, boxLesionSegment - Organ and lesion segment names of the cases with masks (teacher–student).
    teacherModelId - The teacher annotator to train or to pseudo-label with.
    studentModelId - The student to train, or to fine-tune into its next version.
    textPrompt - What a text-prompted (MPTPN) model should segment, as the axial view shows it.
    promptPoints, promptRoi, promptSize - Clicks or a box the prompt can be written from; the clicked objects' size.
    promptScope - Which axial slices the prompt is about: the Red view's, the template's slab, or all.
    textModelId - Text-prompted model ('' = newest); newTextModelId - the one to train.
    promptTable - Batch: rows of volume (node name), prompt, optional s1/s2 (slab, mm).
    clickSegmentation, clickSegment - The segmentation and segment that clicks build or correct (none: a new one).
    clickReachMm - How far one click can change the segment (mm along each axis).
    clickModel - The interactive model: empty for the default, grow-from-clicks, or a catalog id.
    clickCurve - A Markups curve used as one stroke (+ or -) in the click session.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    modelId: str = ""
    probability: bool = False
    force: bool = False
    brainMask: bool = True
    device: Annotated[str, Choice(["auto", "cpu", "cuda", "mps"])] = "auto"
    keepFiles: bool = False
    outputSegmentation: vtkMRMLSegmentationNode
    train: bool = False
    lesionSegment: str = ""
    modelType: Annotated[str, Choice(["sks", "unet"])] = "sks"
    newModelId: str = "my-sks@1.0.0"
    trainingIterations: Annotated[int, WithinRange(1, 100000)] = 400
    organSegment: str = "Organ"
    boxLesionSegment: str = "Lesion"
    teacherModelId: str = "my-teacher@1.0.0"
    studentModelId: str = "my-student@1.0.0"
    textPrompt: str = ""
    promptPoints: vtkMRMLMarkupsFiducialNode
    promptRoi: vtkMRMLMarkupsROINode
    promptSize: Annotated[str, Choice(["small", "medium", "large"])] = "small"
    promptScope: Annotated[str, Choice(["current slice", "template slab", "all slices"])] = "current slice"
    textModelId: str = ""
    promptTable: vtkMRMLTableNode
    newTextModelId: str = "my-mptpn@1.0.0"
    clickSegmentation: vtkMRMLSegmentationNode
    clickSegment: str = ""
    clickReachMm: Annotated[float, WithinRange(5.0, 200.0)] = 30.0
    clickModel: str = ""
    clickCurve: vtkMRMLMarkupsCurveNode


#
#
# SKSSegmentationWidget
#


class SKSSegmentationWidget(JobPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    parameterNodeClass = SKSSegmentationParameterNode
    defaultVolumeParameters = ("inputVolume",)
    defaultModelText = _("Default segmentation model")

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel()
        self.ui.trainingVolumesSelector.connect("checkedNodesChanged()", self._checkCanApply)
        self.ui.markLesionSlicesButton.connect("clicked(bool)", lambda: self.onSliceLabels("lesion"))
        self.ui.markNoLesionButton.connect("clicked(bool)", lambda: self.onSliceLabels("none"))
        self.ui.editSliceTableButton.connect("clicked(bool)", lambda: self.onSliceLabels("edit"))
        self._action, self._reviewRow = None, None  # a teacher–student job button's job; the case under review
        self.ui.addOrganBoxButton.connect("clicked(bool)", lambda: self.onAddBox("organ"))
        self.ui.addLesionBoxButton.connect("clicked(bool)", lambda: self.onAddBox("lesion"))
        self.ui.boxesFromSegmentationButton.connect("clicked(bool)", self.onBoxesFromSegmentation)
        self.ui.nextCaseButton.connect("clicked(bool)", self.onNextCase)
        for button, decision in ((self.ui.acceptButton, "accept"), (self.ui.skipButton, "skip"), (self.ui.rejectButton, "reject")):
            button.connect("clicked(bool)", lambda checked=False, d=decision: self.onReviewDecision(d))
        self._templateSlab, self._batchRows = None, []  # the last template's slab (S, mm); batch rows still to run
        self.ui.promptFromPointsButton.connect("clicked(bool)", lambda: self.onWritePrompt("points"))
        self.ui.promptFromRoiButton.connect("clicked(bool)", lambda: self.onWritePrompt("roi"))
        for button, action in ((self.ui.trainTeacherButton, "train-teacher"), (self.ui.pseudoLabelButton, "pseudolabel"),
                               (self.ui.fineTuneButton, "train-student"), (self.ui.segmentWithPromptButton, "segment-text"),
                               (self.ui.runPromptBatchButton, "batch"), (self.ui.trainTextModelButton, "train-mptpn")):
            button.connect("clicked(bool)", lambda checked=False, a=action: self.onJobButton(a))
        self._correction, self._correctionRow = None, None  # the click session; the queue row it corrects
        self._placePersistence = None  # the place-mode persistence before the session switched it on
        self.ui.startClicksButton.connect("clicked(bool)", lambda: self.onStartClicks(fromQueue=False))
        self.ui.correctWithClicksButton.connect("clicked(bool)", lambda: self.onStartClicks(fromQueue=True))
        self.ui.positiveClickButton.connect("clicked(bool)", lambda: self.onPlaceClicks(True))
        self.ui.negativeClickButton.connect("clicked(bool)", lambda: self.onPlaceClicks(False))
        for button, action in ((self.ui.boxClickButton, "box"), (self.ui.undoClickButton, "undo"),
                               (self.ui.positiveStrokeButton, "+stroke"), (self.ui.negativeStrokeButton, "-stroke"),
                               (self.ui.finishClicksButton, "finish"), (self.ui.cancelClicksButton, "cancel")):
            button.connect("clicked(bool)", lambda checked=False, a=action: self.onClickAction(a))

    def createLogic(self):
        from SKSSegmentationLib.logic import SKSSegmentationLogic

        return SKSSegmentationLogic()

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
        return self.logic.cases_from_volumes(list(self.ui.trainingVolumesSelector.checkedNodes()), self._parameterNode.lesionSegment)

    def labelCounts(self):
        """Counts per label kind of the checked cases, shown in the panel; None when no case is checked."""
        if not self.ui.trainingVolumesSelector.checkedNodes():
            self.ui.labelCountsLabel.text = _("no training cases checked")
            return None
        counts = self.logic.count_label_kinds(self.trainingCases())
        self.ui.labelCountsLabel.text = _("{pixel} with pixel labels, {slice} with slice labels only, {none} unlabelled (left out)").format(
            pixel=counts["pixel"], slice=counts["slice"], none=counts["unlabelled"])
        return counts

    def onSliceLabels(self, what: str) -> None:
        """Label the input volume's slices: lesion in the slices of the spin boxes, no lesion, or edit the table
        in the layout's table view."""
        volume = self._parameterNode.inputVolume
        with slicer.util.tryWithErrorDisplay(_("Could not label the slices.")):
            if what == "lesion":
                self.logic.mark_lesion_slices(volume, self.ui.firstLesionSliceSpinBox.value, self.ui.lastLesionSliceSpinBox.value)
            elif what == "none":
                self.logic.mark_no_lesion(volume)
            else:
                table = self.logic.slice_table(volume)
                slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
                slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
                slicer.app.applicationLogic().PropagateTableSelection()
        self._checkCanApply()

    # -- teacher–student: boxes, jobs, review queue ---------------------------------------------
    def onAddBox(self, role: str) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not add the box.")):
            self.logic.teacher_student.add_box(self._parameterNode.inputVolume, role)

    def onBoxesFromSegmentation(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not draw the boxes."), waitCursor=True):
            self.logic.teacher_student.boxes_from_segmentation(p.inputVolume, None, p.organSegment, p.boxLesionSegment)

    def onJobButton(self, action: str) -> None:
        """A teacher–student or text-prompt button: its job behind the Apply button's Cancel."""
        if self._job is not None:  # Apply would cancel it
            slicer.util.errorDisplay(_("A job is running: wait for it, or cancel it first."))
            return
        if action == "batch":
            self._batchRows = []
            with slicer.util.tryWithErrorDisplay(_("Could not read the batch table.")):
                self._batchRows = self.logic.text_prompt.rows_from_table(self._parameterNode.promptTable)
            if not self._batchRows:
                return
        elif action == "continue-batch":
            action = "batch"
        else:
            self._batchRows = []
        self._action = action
        self.onApplyButton()

    def updateQueueLabel(self) -> None:
        counts = self.logic.teacher_student.queue_counts()
        self.ui.queueLabel.text = _("no pseudo-labels yet") if counts is None else _(
            "{pending} waiting, {skipped} skipped, {accepted} accepted, {rejected} rejected").format(**counts)

    def onNextCase(self) -> None:
        case = self.logic.teacher_student.next_case()
        self._reviewRow = None if case is None else case["row"]
        if case is None:
            slicer.util.infoDisplay(_("Every pseudo-label has been reviewed."))
        else:  # the case with its pseudo-label, open in Segment Editor
            slicer.util.setSliceViewerLayers(background=case["volume"], fit=True)
            slicer.util.selectModule("SegmentEditor")
            editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
            editor.setSegmentationNode(case["segmentation"])
            editor.setSourceVolumeNode(case["volume"])
        self.updateQueueLabel()

    def onReviewDecision(self, decision: str) -> None:
        if self._reviewRow is None:
            slicer.util.errorDisplay(_("Load a case with Next case first."))
            return
        with slicer.util.tryWithErrorDisplay(_("Could not record the decision.")):
            self.logic.teacher_student.decide(self._reviewRow, decision)
        self.onNextCase()

    # -- clicks, boxes (interactive) -------------------------------------------------------------
    def onStartClicks(self, fromQueue: bool) -> None:
        """A click session on the input volume's chosen segment, or on the review queue case being reviewed."""
        if self._correction is not None:
            slicer.util.errorDisplay(_("A click session is open: press Done or Cancel first."))
            return
        queueRow = self._reviewRow if fromQueue else None
        if fromQueue and queueRow is None:
            slicer.util.errorDisplay(_("Load a case with Next case first."))
            return
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start the click session."), waitCursor=True):
            if queueRow is None:
                self._correction = self.logic.interactive.start(p.inputVolume, p.clickSegmentation, p.clickSegment or None,
                                                                model=p.clickModel or None, reach_mm=p.clickReachMm)
            else:
                self._correction = self.logic.interactive.start_on_queue_case(self.logic.teacher_student.review_queue(), queueRow,
                                                                              model=p.clickModel or None, reach_mm=p.clickReachMm)
            self._correctionRow = queueRow
            p.clickSegmentation = self._correction.segmentation_node
            for node in self._correction.points.values():
                self.addObserver(node, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onClickPlaced)
            self.ui.clicksCollapsibleButton.collapsed = False
            self.onPlaceClicks(True)
        self.updateClickStatus()

    def onPlaceClicks(self, positive: bool) -> None:
        """Persistent place mode on the + or - point list: every click in a view is one interaction."""
        if self._correction is None:
            slicer.util.errorDisplay(_("Start a click session first."))
            return
        selection = slicer.app.applicationLogic().GetSelectionNode()
        selection.SetReferenceActivePlaceNodeClassName("vtkMRMLMarkupsFiducialNode")
        selection.SetActivePlaceNodeID(self._correction.points[positive].GetID())
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        if self._placePersistence is None:  # the user's setting, put back when the session ends
            self._placePersistence = interaction.GetPlaceModePersistence()
        interaction.SetPlaceModePersistence(1)
        interaction.SetCurrentInteractionMode(interaction.Place)

    def onClickPlaced(self, caller=None, event=None) -> None:
        if self._correction is None:
            return
        with slicer.util.tryWithErrorDisplay(_("The click could not be used.")):
            self._correction.apply_new_points()
        self.updateClickStatus()

    def onClickAction(self, action: str) -> None:
        if self._correction is None:
            slicer.util.errorDisplay(_("Start a click session first."))
            return
        with slicer.util.tryWithErrorDisplay(_("Could not {action}.").format(action=action), waitCursor=True):
            if action == "box":
                self._correction.add_box(self._parameterNode.promptRoi)
            elif action.endswith("stroke"):
                self._correction.add_curve(self._parameterNode.clickCurve, positive=action.startswith("+"))
            elif action == "undo":
                self._correction.undo()
            else:
                self.endClickSession(action)
        self.updateClickStatus()

    def endClickSession(self, how: str) -> None:
        """Done ("finish") keeps the segment (a queue case is accepted as corrected); "cancel" restores it."""
        correction, row = self._correction, self._correctionRow
        self._correction, self._correctionRow = None, None
        for node in correction.points.values():
            self.removeObserver(node, slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self.onClickPlaced)
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        interaction.SwitchToViewTransformMode()
        if self._placePersistence is not None:
            interaction.SetPlaceModePersistence(self._placePersistence)
            self._placePersistence = None
        if how == "cancel":
            correction.cancel()
        elif row is None:
            correction.finish()
        else:
            correction.finish(self.logic.teacher_student.review_queue(), row)
            self.onNextCase()

    def updateClickStatus(self) -> None:
        c = self._correction
        self.ui.clickStatusLabel.text = _("no session") if c is None else _("{model}: {n} interaction(s); last took {s}{warn}").format(
            model=c.session.ready.get("model"), n=c.clicks, s="-" if c.last_seconds is None else f"{c.last_seconds:.2f} s",
            warn="".join("\n" + w for w in c.session.ready.get("warnings", [])))

    def cleanup(self) -> None:
        if self._correction is not None:  # the worker process and the copy of the scan go with the panel
            self.endClickSession("cancel")
        super().cleanup()

    def onSceneStartClose(self, caller, event) -> None:
        if self._correction is not None:
            self.endClickSession("cancel")
        super().onSceneStartClose(caller, event)

    # -- text prompts (MPTPN) -------------------------------------------------------------------
    def onWritePrompt(self, source: str) -> None:
        """The prompt box and the template slab, written from the clicks ("points") or the box ("roi")."""
        p, points = self._parameterNode, source == "points"
        if p.inputVolume is None or (p.promptPoints if points else p.promptRoi) is None:
            slicer.util.errorDisplay(_("Select the input volume and {what}.").format(
                what=_("a point list with a point on each object") if points else _("an ROI around the object")))
            return
        with slicer.util.tryWithErrorDisplay(_("Could not write a prompt.")):
            if points:
                written = self.logic.text_prompt.prompt_from_points(p.inputVolume, p.promptPoints, p.promptSize, model_id=p.textModelId or None)
            else:
                written = self.logic.text_prompt.prompt_from_roi(p.inputVolume, p.promptRoi, model_id=p.textModelId or None)
            p.textPrompt, self._templateSlab = written
            p.promptScope = "template slab"

    def promptSlab(self):
        """[s1, s2] (patient S, mm) the prompt is about, from the scope; None for every slice."""
        scope = self._parameterNode.promptScope
        if scope == "all slices":
            return None
        if scope == "template slab":
            if self._templateSlab is None:
                raise ValueError(_("Write the prompt from clicks or a box first, or pick another scope."))
            return self._templateSlab
        offset = slicer.app.layoutManager().sliceWidget("Red").sliceLogic().GetSliceOffset()
        return [offset, offset]

    def startJob(self):
        """Segment or train SKS (Apply), or the job of the teacher–student or text-prompt button pressed."""
        p, action, self._action = self._parameterNode, self._action, None
        options = {"device": p.device, "keep_files": p.keepFiles}
        if action in ("train-teacher", "pseudolabel", "train-student"):
            strong, boxed = self.logic.teacher_student.split_cases(self.trainingCases(), p.organSegment, p.boxLesionSegment)
            if action == "train-teacher":
                return self.logic.teacher_student.create_teacher_job(strong, p.teacherModelId, iterations=p.trainingIterations, **options).start()
            if action == "pseudolabel":
                return self.logic.teacher_student.create_pseudolabel_job(boxed, p.teacherModelId, **options).start()
            return self.logic.teacher_student.create_next_student_job(strong, p.teacherModelId, p.studentModelId,
                                                                      iterations=p.trainingIterations, **options).start()
        if action == "train-mptpn":
            return self.logic.text_prompt.create_training_job(self.trainingCases(), p.newTextModelId,
                                                              iterations=p.trainingIterations, **options).start()
        if action in ("segment-text", "batch"):
            volume, prompt, slab = self._batchRows.pop(0) if action == "batch" else (p.inputVolume, p.textPrompt, self.promptSlab())
            return self.logic.text_prompt.create_job(volume, prompt, p.textModelId or None, slab, **options).start()
        if p.train:
            return self.logic.start_training(self.trainingCases(), p.newModelId, model_type=p.modelType,
                                             iterations=p.trainingIterations, device=p.device, keep_files=p.keepFiles)
        return self.logic.start(p.inputVolume, model_id=p.modelId or None, device=p.device, probability=p.probability,
                                keep_files=p.keepFiles, force=p.force, brain_mask="auto" if p.brainMask else "off")

    def onJobSucceeded(self, outputs: dict) -> None:
        if any(name.startswith("pseudo_") for name in outputs):  # pseudo-labels: into the review queue
            self.logic.teacher_student.queue_pseudo_labels(self.lastJob)
            self.updateQueueLabel()
            return
        if "model" in outputs:  # training: the new model becomes the selected one (of its kind)
            card, p = outputs["model"], self._parameterNode
            self.ui.logText.appendPlainText(_("Registered model {id}").format(id=card["id"]))
            role = self.logic.model_role(card)
            if role == "teacher":
                p.teacherModelId = card["id"]
            elif role == "text":
                p.textModelId = card["id"]
            else:  # a segmentation model, or a student version
                p.modelId, p.train = card["id"], False
                p.studentModelId = card["id"] if role == "student" else p.studentModelId
                self.refreshModels()
            return
        self._parameterNode.outputSegmentation = outputs["segmentation"]
        self.logic.show_result(self.lastJob.inputs.get("image", self._parameterNode.inputVolume), outputs)
        self.refreshModels()
        if self._batchRows:  # the next row of a prompt table (the finished job has been handed back)
            self.onJobButton("continue-batch")


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

        SlicerLeapCommonLib.ensure_dependencies(requester="SKS Segmentation")
        from SKSSegmentationLib.logic import SKSSegmentationLogic

        logic = SKSSegmentationLogic()
        card = logic.resolve_model(None)
        outputs = logic.process(inputVolume, probability=True, show_result=False)
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
            logic.process(labelmap, show_result=False)
        self.delayDisplay("Test passed")
