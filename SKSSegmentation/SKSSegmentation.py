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

from slicer import (vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode,
                    vtkMRMLTableNode)

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
    trainingIterations - Stage-2 iterations (stage 1 runs three quarters of this); also the teacher's and student's.
    organSegment, boxLesionSegment - Organ and lesion segment names of the cases with masks (teacher–student).
    teacherModelId - The teacher annotator to train or to pseudo-label with.
    studentModelId - The student to train, or to fine-tune into its next version.
    textPrompt - What a text-prompted (MPTPN) model should segment, as the axial view shows it.
    promptPoints, promptRoi, promptSize - Clicks or a box the prompt can be written from; the clicked objects' size.
    promptScope - Which axial slices the prompt is about: the Red view's, the template's slab, or all.
    textModelId - Text-prompted model ('' = newest); newTextModelId - the one to train.
    promptTable - Batch: rows of volume (node name), prompt, optional s1/s2 (slab, mm).
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
        self._action, self._reviewRow = None, None  # a teacher–student job button's job; the case under review
        self.ui.addOrganBoxButton.connect("clicked(bool)", lambda: self.onAddBox("organ"))
        self.ui.addLesionBoxButton.connect("clicked(bool)", lambda: self.onAddBox("lesion"))
        self.ui.boxesFromSegmentationButton.connect("clicked(bool)", self.onBoxesFromSegmentation)
        for button, action in ((self.ui.trainTeacherButton, "train-teacher"), (self.ui.pseudoLabelButton, "pseudolabel"),
                               (self.ui.fineTuneButton, "train-student")):
            button.connect("clicked(bool)", lambda checked=False, a=action: self.onTeacherStudentJob(a))
        self.ui.nextCaseButton.connect("clicked(bool)", self.onNextCase)
        for button, decision in ((self.ui.acceptButton, "accept"), (self.ui.skipButton, "skip"), (self.ui.rejectButton, "reject")):
            button.connect("clicked(bool)", lambda checked=False, d=decision: self.onReviewDecision(d))
        self._templateSlab, self._batchRows = None, []  # the last template's slab (S, mm); batch rows still to run
        self.ui.promptFromPointsButton.connect("clicked(bool)", self.onPromptFromPoints)
        self.ui.promptFromRoiButton.connect("clicked(bool)", self.onPromptFromRoi)
        self.ui.segmentWithPromptButton.connect("clicked(bool)", lambda: self.onTextJob("segment-text"))
        self.ui.runPromptBatchButton.connect("clicked(bool)", lambda: self.onTextJob("batch"))
        self.ui.trainTextModelButton.connect("clicked(bool)", lambda: self.onTextJob("train-mptpn"))

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

    # -- teacher–student: boxes, jobs, review queue ---------------------------------------------
    def onAddBox(self, role: str) -> None:
        volume = self._parameterNode.inputVolume
        if volume is None:
            slicer.util.errorDisplay(_("Select the input volume to draw a box on."))
            return
        self.logic.addBox(volume, role)

    def onBoxesFromSegmentation(self) -> None:
        p = self._parameterNode
        cases = self.logic.jobs.cases_from_volumes([p.inputVolume]) if p.inputVolume else []
        if not cases or cases[0].segmentation is None:
            slicer.util.errorDisplay(_("The input volume has no segmentation to draw boxes around."))
            return
        with slicer.util.tryWithErrorDisplay(_("Could not draw the boxes."), waitCursor=True):
            self.logic.boxesFromSegmentation(p.inputVolume, cases[0].segmentation, p.organSegment, p.boxLesionSegment)

    def onTeacherStudentJob(self, action: str) -> None:
        if self._job is not None:  # Apply would cancel it
            slicer.util.errorDisplay(_("A job is running: wait for it, or cancel it first."))
            return
        self._action = action
        self.onApplyButton()

    def _startTeacherStudentJob(self, action: str):
        p = self._parameterNode
        cases = self.logic.jobs.cases_from_volumes(list(self.ui.trainingVolumesSelector.checkedNodes()))
        strong = [self.logic.strongCase(c.volume, c.segmentation, p.organSegment, p.boxLesionSegment) for c in cases if c.segmentation]
        options = {"iterations": p.trainingIterations, "device": p.device, "keepFiles": p.keepFiles}
        if action == "train-teacher":
            return self.logic.startTeacherTraining(strong, p.teacherModelId, **options)
        if action == "pseudolabel":
            return self.logic.startPseudoLabelling([c.volume for c in cases if c.segmentation is None], p.teacherModelId,
                                                   device=p.device, keepFiles=p.keepFiles)
        return self.logic.startStudentTraining(strong, p.teacherModelId, p.studentModelId, **options)

    def updateQueueLabel(self) -> None:
        counts = self.logic.queueCounts()
        self.ui.queueLabel.text = _("no pseudo-labels yet") if counts is None else _(
            "{pending} waiting, {skipped} skipped, {accepted} accepted, {rejected} rejected").format(**counts)

    def onNextCase(self) -> None:
        case = self.logic.nextCase()
        self._reviewRow = None if case is None else case["row"]
        if case is None:
            slicer.util.infoDisplay(_("Every pseudo-label has been reviewed."))
        else:
            self.logic.openForEditing(case)
        self.updateQueueLabel()

    def onReviewDecision(self, decision: str) -> None:
        if self._reviewRow is None:
            slicer.util.errorDisplay(_("Load a case with Next case first."))
            return
        with slicer.util.tryWithErrorDisplay(_("Could not record the decision.")):
            self.logic.decide(self._reviewRow, decision)
        self.onNextCase()

    # -- text prompts (MPTPN) -------------------------------------------------------------------
    def onPromptFromPoints(self) -> None:
        p = self._parameterNode
        self._writePrompt(p.promptPoints, _("a point list with a point on each object"),
                          lambda: self.logic.textPrompt.prompt_from_points(p.inputVolume, p.promptPoints, p.promptSize, model_id=p.textModelId or None))

    def onPromptFromRoi(self) -> None:
        p = self._parameterNode
        self._writePrompt(p.promptRoi, _("an ROI around the object"),
                          lambda: self.logic.textPrompt.prompt_from_roi(p.inputVolume, p.promptRoi, model_id=p.textModelId or None))

    def _writePrompt(self, template, what: str, write) -> None:
        """The prompt box and the template slab from `write()` -> (prompt, slab)."""
        p = self._parameterNode
        if p.inputVolume is None or template is None:
            slicer.util.errorDisplay(_("Select the input volume and {what}.").format(what=what))
            return
        with slicer.util.tryWithErrorDisplay(_("Could not write a prompt.")):
            p.textPrompt, self._templateSlab = write()
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

    def onTextJob(self, action: str) -> None:
        if self._job is not None:
            slicer.util.errorDisplay(_("A job is running: wait for it, or cancel it first."))
            return
        if action == "batch":
            self._batchRows = []
            with slicer.util.tryWithErrorDisplay(_("Could not read the batch table.")):
                self._batchRows = self.logic.promptRows(self._parameterNode.promptTable)
            if not self._batchRows:
                return
        elif action == "continue-batch":
            action = "batch"
        else:
            self._batchRows = []
        self._action = action
        self.onApplyButton()

    def _startTextJob(self, action: str):
        p = self._parameterNode
        options = {"device": p.device, "keepFiles": p.keepFiles}
        if action == "train-mptpn":
            return self.logic.startTextTraining(self.trainingCases(), p.newTextModelId, iterations=p.trainingIterations, **options)
        if action == "batch":
            volume, prompt, slab = self._batchRows.pop(0)
            return self.logic.startTextSegmentation(volume, prompt, p.textModelId or None, slab, **options)
        return self.logic.startTextSegmentation(p.inputVolume, p.textPrompt, p.textModelId or None, self.promptSlab(), **options)

    def startJob(self):
        p = self._parameterNode
        action, self._action = self._action, None
        if action in ("segment-text", "batch", "train-mptpn"):
            return self._startTextJob(action)
        if action:
            return self._startTeacherStudentJob(action)
        if p.train:
            return self.logic.startTraining(self.trainingCases(), p.newModelId, modelType=p.modelType,
                                            iterations=p.trainingIterations, device=p.device, keepFiles=p.keepFiles)
        return self.logic.start(p.inputVolume, modelId=p.modelId or None, device=p.device,
                                probability=p.probability, keepFiles=p.keepFiles)

    def onJobSucceeded(self, outputs: dict) -> None:
        if any(name.startswith("pseudo_") for name in outputs):  # pseudo-labels: into the review queue
            self.logic.queuePseudoLabels(self.lastJob)
            self.updateQueueLabel()
            return
        if "model" in outputs and outputs["model"].get("input", {}).get("box_channels"):  # a teacher
            self._parameterNode.teacherModelId = outputs["model"]["id"]
            self.ui.logText.appendPlainText(_("Registered teacher {id}").format(id=outputs["model"]["id"]))
            return
        if "model" in outputs:  # training: the new model becomes the selected one
            self.ui.logText.appendPlainText(_("Registered model {id}").format(id=outputs["model"]["id"]))
            self._parameterNode.modelId = outputs["model"]["id"]
            if outputs["model"]["architecture"]["name"] == "slicerleap.BoxUNet":  # a student version
                self._parameterNode.studentModelId = outputs["model"]["id"]
            self._parameterNode.train = False
            self.refreshModels()
            return
        self._parameterNode.outputSegmentation = outputs["segmentation"]
        self.logic.showResult(self.lastJob.inputs.get("image", self._parameterNode.inputVolume), outputs)
        self.refreshModels()
        if self._batchRows:  # the next row of a prompt table (the finished job has been handed back)
            self.onTextJob("continue-batch")


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

    # -- teacher–student (SKSSegmentationLib.teacher_student_logic) --------------------------------
    @property
    def teacherStudent(self):
        if getattr(self, "_teacherStudent", None) is None:
            from SKSSegmentationLib.teacher_student_logic import TeacherStudentLogic

            self._teacherStudent = TeacherStudentLogic(self.jobs.ctx)
        return self._teacherStudent

    @staticmethod
    def strongCase(volume, segmentation, organSegment="Organ", lesionSegment="Lesion"):
        from SKSSegmentationLib.teacher_student_logic import StrongCase

        return StrongCase(volume, segmentation, (organSegment,), (lesionSegment,))

    def addBox(self, volume, role="lesion"):
        """An ROI box (organ or lesion) centred in `volume`, a quarter of its extent; drag its handles to fit."""
        from slicerleap.scene.boxes import add_box
        from slicerleap.scene.volumes import node_to_volume
        from slicerleap.segmentation.boxes import Box

        v = node_to_volume(volume)
        extent = np.array(v.array.shape[::-1]) * v.spacing
        centre = v.ijk_to_ras[:3, :3] @ ((np.array(v.array.shape[::-1]) - 1) / 2) + v.ijk_to_ras[:3, 3]
        return add_box(self.jobs.ctx, volume, Box(centre, extent / (2 if role == "organ" else 4), role))

    def boxesFromSegmentation(self, volume, segmentation, organSegment="Organ", lesionSegment="Lesion"):
        from slicerleap.scene.boxes import boxes_from_segmentation
        from slicerleap.scene.segmentations import segment_names

        names = segment_names(segmentation)
        return boxes_from_segmentation(self.jobs.ctx, volume, segmentation, [organSegment] if organSegment in names else [],
                                       [lesionSegment] if lesionSegment in names else [])

    def startTeacherTraining(self, strongCases, modelId="my-teacher@1.0.0", iterations=400, device="auto", keepFiles=False):
        return self.teacherStudent.create_teacher_job(strongCases, modelId, iterations=iterations, device=device, keep_files=keepFiles).start()

    def startPseudoLabelling(self, volumes, teacherId, device="auto", keepFiles=False):
        return self.teacherStudent.create_pseudolabel_job(volumes, teacherId, device=device, keep_files=keepFiles).start()

    def queuePseudoLabels(self, job):
        return self.teacherStudent.queue_pseudo_labels(job)

    def startStudentTraining(self, strongCases, teacherId, studentId, iterations=400, device="auto", keepFiles=False):
        """Fine-tune `studentId` into its next version when it exists, else train it; the queue's accepted
        cases are labels, its waiting ones the teacher's soft labels."""
        from slicerleap.models import get_catalog
        from SKSSegmentationLib.review_queue import ReviewQueue

        queue = ReviewQueue.find(self.jobs.ctx)
        exists = studentId in {c["id"] for c in get_catalog().cards()}
        options = {"iterations": iterations, "device": device, "keep_files": keepFiles}
        if exists:
            return self.teacherStudent.fine_tune_on_corrections(strongCases, queue, teacherId, studentId, **options).start()
        return self.teacherStudent.create_student_job(strongCases, queue, teacherId, studentId, **options).start()

    def queueCounts(self):
        from SKSSegmentationLib.review_queue import ReviewQueue

        queue = ReviewQueue.find(self.jobs.ctx)
        return None if queue is None else queue.counts()

    def nextCase(self):
        from SKSSegmentationLib.review_queue import ReviewQueue

        queue = ReviewQueue.find(self.jobs.ctx)
        return None if queue is None else queue.next_case()

    def decide(self, row, decision):
        """decision: "accept", "skip" or "reject" for the queue's row."""
        from SKSSegmentationLib.review_queue import ReviewQueue

        return getattr(ReviewQueue.find(self.jobs.ctx), decision)(row)

    # -- text prompts (SKSSegmentationLib.text_prompt_logic) ---------------------------------------
    @property
    def textPrompt(self):
        if getattr(self, "_textPrompt", None) is None:
            from SKSSegmentationLib.text_prompt_logic import TextPromptLogic

            self._textPrompt = TextPromptLogic(self.jobs.ctx)
        return self._textPrompt

    def startTextSegmentation(self, volume, prompt, modelId=None, slabMm=None, device="auto", keepFiles=False):
        """Segment what `prompt` describes on the axial slices of slabMm ([s1, s2] mm; None: all) in a background process."""
        return self.textPrompt.create_job(volume, prompt, modelId, slabMm, device=device, keep_files=keepFiles).start()

    def startTextTraining(self, cases, modelId="my-mptpn@1.0.0", iterations=600, device="auto", keepFiles=False):
        """Train MPTPN on the TrainingCase items with segmentations (prompts from their masks); registered on success."""
        return self.textPrompt.create_training_job(cases, modelId, iterations=iterations, pretrain_iterations=max(1, iterations // 2),
                                                   device=device, keep_files=keepFiles).start()

    def promptRows(self, table):
        """(volume node, prompt, slab or None) per row of a table with columns volume, prompt[, s1, s2]."""
        return self.textPrompt.rows_from_table(table)

    def segmentWithPrompt(self, volume, prompt, modelId=None, slabMm=None, device="auto", keepFiles=False) -> dict:
        """Blocking form from the Python console: {"segmentation": vtkMRMLSegmentationNode}."""
        return self.textPrompt.segment(volume, prompt, modelId, slabMm, device=device, keep_files=keepFiles,
                                       on_progress=SlicerLeapCommonLib.logProgress)

    @staticmethod
    def openForEditing(case: dict) -> None:
        """Show the case with its pseudo-label and open it in Segment Editor."""
        slicer.util.setSliceViewerLayers(background=case["volume"], fit=True)
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(case["segmentation"])
        editor.setSourceVolumeNode(case["volume"])

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
