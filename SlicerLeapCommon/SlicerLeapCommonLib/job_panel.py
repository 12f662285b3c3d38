"""The Qt side the SlicerLeap module widgets share; the one file of SlicerLeapCommonLib that imports qt
(the rest of it, and every <Module>Lib, stays Qt-free).

A module has one Logic, the Qt-free `<Module>Lib.logic.<Module>Logic` (tested with pytest on slicer-core, scripted
from Slicer's console through `slicer.util.getModuleLogic("<Module>")`). Its widget derives from (JobPanelMixin,
ScriptedLoadableModuleWidget, VTKObservationMixin), in that order so that the mixin's __init__ and cleanup() are the
ones that run, names its `parameterNodeClass` (the @parameterNodeWrapper class: GUI state, which the Logic does not
hold), calls setupPanel() from setup(), and overrides the hooks:
createLogic() (import and return the Logic: called on first use, after the engine's packages are installed),
canApply() (state and tooltip of Apply), startJob() (`self.logic.start(...)` with the parameter node's
values) and onJobSucceeded(outputs); RegistrationDLWidget is the shortest example. The module's .ui must
have a QPushButton `applyButton`, a QProgressBar `progressBar` and a QPlainTextEdit `logText`; it may have a
QPushButton `stopEarlyButton` (modules whose jobs can finish their optimisation early and keep the result
so far, `SceneJob.stop_early()`) and a QComboBox `modelComboBox` (modules that pick a catalog model),
which the mixin only looks up with getattr(self.ui, ..., None).
"""
import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

import SlicerLeapCommonLib


class JobPanelMixin:
    """Parameter node <-> GUI, and one background job at a time behind the Apply button: Apply starts
    the job the module logic returns, a timer shows its progress and log, and the button reads Cancel
    while it runs. Cancel stops the worker without blocking the GUI (the timer sees it stop); closing
    the scene or the module waits for it, so that no output lands in a cleared scene."""

    jobPollIntervalMs = 200
    defaultVolumeParameters = ()  # parameter-node fields set to the scene's first scalar volume when empty
    parameterNodeClass = None  # the module's @parameterNodeWrapper class
    federatedDependencies = False  # the Logic needs Flower too

    _logic = None
    ui = None
    _parameterNode = None
    _parameterNodeGuiTag = None
    _job = None  # the running SceneJob, if any
    _jobTimer = None
    _stopEarlyButton = None  # the .ui's optional stopEarlyButton

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation

    # -- hooks for the module widget ---------------------------------------------------------------
    def createLogic(self):
        """Import and return the module's Qt-free Logic (its import needs the engine's packages)."""
        raise NotImplementedError

    def canApply(self) -> tuple:
        """(whether Apply can start a job now, the Apply button's tooltip saying what it does or what
        is missing). Called while a parameter node is set and no job runs."""
        raise NotImplementedError

    def startJob(self):
        """Start the module's job from the parameter node and return it (`self.logic.start(...)`).
        What it raises (bad inputs, missing packages) is shown to the user."""
        raise NotImplementedError

    def onJobSucceeded(self, outputs: dict) -> None:
        """Called with what `job.finish()` returned."""

    def onJobRecord(self, record: dict) -> None:
        """Every progress record of the running job (e.g. a federated round for a plot); default: nothing."""

    def onParameterNodeModified(self) -> None:
        """Called when the parameter node is set or modified, also while a job runs (and with no
        parameter node when a job ends after the scene was closed)."""

    def cancelToolTip(self) -> str:
        return _("Stop the job; the scene is left as it was")

    # -- the Logic -----------------------------------------------------------------------------------
    @property
    def logic(self):
        """The module's Logic, created on first use (Apply, or `slicer.util.getModuleLogic` from the console) once the
        engine's Python packages are installed: ensure_dependencies asks the user first in the desktop."""
        if self._logic is None:
            SlicerLeapCommonLib.ensure_dependencies(requester=self.moduleName, federated=self.federatedDependencies)
            self._logic = self.createLogic()
        return self._logic

    def logicIfInstalled(self):
        """The Logic if the engine's packages are installed already, else None (and nothing is asked)."""
        if self._logic is None and not SlicerLeapCommonLib.engine_installed(self.federatedDependencies):
            return None
        return self.logic

    def declaredParameters(self) -> dict:
        """The parameter node's values of the Logic's declared parameters (`METHODS`, slicerleap/declarations.py) that
        the panel shows, by their job names: what startJob passes on."""
        return {d.name: getattr(self._parameterNode, d.panel_name) for d in self.logic.METHODS.parameters() if d.panel}

    def moduleParameterNode(self):
        """The module's singleton vtkMRMLScriptedModuleNode, kept as ScriptedLoadableModuleLogic keeps it."""
        keeper = ScriptedLoadableModuleLogic()
        keeper.moduleName = self.moduleName
        return keeper.getParameterNode()

    # -- model choice (modules whose .ui has a QComboBox `modelComboBox` and a parameter `modelId`) ------
    defaultModelText = "Default model"

    def refreshModels(self) -> None:
        """Fill the .ui's optional QComboBox `modelComboBox` with the Logic's `available_models()` (catalog
        cards); the first entry, the module's default model, has an empty id. setupPanel() and enter()
        call it; a module calls it again after adding a model."""
        import logging

        combo = getattr(self.ui, "modelComboBox", None)
        if combo is None:
            return
        selected = self._parameterNode.modelId if self._parameterNode else ""
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        combo.addItem(self.defaultModelText, "")
        try:
            logic = self.logicIfInstalled()
            if logic is None:  # the engine's packages are installed on the first Apply; the list fills in after that
                logging.info("SlicerLeap packages are not installed yet; showing the default model only")
            for card in logic.available_models() if logic is not None else []:
                combo.addItem(card.get("title", card["id"]), card["id"])
        except Exception as exc:  # e.g. an invalid card in the user's catalog: say which, keep the module usable
            self.ui.logText.appendPlainText(str(exc))
        combo.setCurrentIndex(max(combo.findData(selected), 0))
        combo.blockSignals(wasBlocked)

    def onModelSelected(self, index: int) -> None:
        combo = getattr(self.ui, "modelComboBox", None)
        if self._parameterNode and combo is not None:
            self._parameterNode.modelId = combo.itemData(index) or ""

    # -- module widget life cycle ------------------------------------------------------------------
    def setupPanel(self) -> None:
        """Load Resources/UI/<Module>.ui as self.ui, connect Apply, the job timer and the scene-close
        events, and show the module's parameter node. Call from setup()."""
        uiWidget = slicer.util.loadUI(self.resourcePath(f"UI/{self.moduleName}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self._stopEarlyButton = getattr(self.ui, "stopEarlyButton", None)  # optional: not every task can stop early
        if self._stopEarlyButton is not None:
            self._stopEarlyButton.connect("clicked(bool)", self.onStopEarlyButton)
        self._showStopEarly(False)
        modelComboBox = getattr(self.ui, "modelComboBox", None)  # optional: modules that pick a catalog model
        if modelComboBox is not None:
            modelComboBox.connect("currentIndexChanged(int)", self.onModelSelected)
        self._jobTimer = qt.QTimer()
        self._jobTimer.setInterval(self.jobPollIntervalMs)
        self._jobTimer.connect("timeout()", self.onJobTimer)

        self.initializeParameterNode()
        self.refreshModels()

    def cleanup(self) -> None:
        self.cancelJob()
        if self._jobTimer is not None:
            self._jobTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.refreshModels()  # models trained or imported meanwhile

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.cancelJob()  # its outputs would land in a cleared scene, or it reads nodes being removed
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # -- parameter node ----------------------------------------------------------------------------
    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.parameterNodeClass(self.moduleParameterNode()))
        for name in self.defaultVolumeParameters:
            if not getattr(self._parameterNode, name):
                firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
                if firstVolumeNode:
                    setattr(self._parameterNode, name, firstVolumeNode)

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # In the .ui file, a Qt dynamic property called "SlicerParameterName" is set on each
            # ui element that needs connection.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        self.onParameterNodeModified()
        if self._job is not None:
            return  # the button is "Cancel" while a job runs
        enabled, toolTip = self.canApply() if self._parameterNode else (False, "")
        self.ui.applyButton.toolTip = toolTip
        self.ui.applyButton.enabled = enabled

    # -- the job -----------------------------------------------------------------------------------
    def onApplyButton(self) -> None:
        if self._job is not None:
            self.cancelJob(wait=False)
            return
        try:
            job = self.startJob()
        except Exception as exc:  # messages from the engine say what is wrong and how to fix it
            slicer.util.errorDisplay(str(exc))
            return
        self._job = job
        self.ui.logText.clear()
        self.ui.progressBar.value = 0
        self.ui.applyButton.text = _("Cancel")
        self.ui.applyButton.toolTip = self.cancelToolTip()
        self._showStopEarly(True)
        self._jobTimer.start()

    def onStopEarlyButton(self) -> None:
        """Finish the optimisation now; the job still succeeds and its outputs are loaded as usual."""
        if self._job is None:
            return
        self._job.stop_early()
        self._stopEarlyButton.enabled = False
        self.ui.logText.appendPlainText(_("Stopping early: the result so far will be kept"))

    def _showStopEarly(self, running: bool) -> None:
        """The Stop early button, if the .ui has one, is shown and enabled only while a job runs."""
        if self._stopEarlyButton is not None:
            self._stopEarlyButton.visible = running
            self._stopEarlyButton.enabled = running

    def cancelJob(self, wait: bool = True) -> None:
        """wait=False (the Cancel button) keeps the GUI responsive: the timer sees the worker stop."""
        if self._job is not None:
            self.ui.applyButton.enabled = False  # until the worker has stopped
            if self._stopEarlyButton is not None:
                self._stopEarlyButton.enabled = False  # nothing left to keep
            self._job.cancel(wait=wait)

    def onJobTimer(self) -> None:
        for record in self._job.poll():
            if record.get("progress") is not None:
                self.ui.progressBar.value = int(round(100 * record["progress"]))
            if record.get("message"):
                self.ui.logText.appendPlainText(record["message"])
            self.onJobRecord(record)
        if self._job.running:
            return
        self._jobTimer.stop()
        job, self._job = self._job, None
        self.lastJob = job  # onJobSucceeded may need its inputs (e.g. the cases a pseudo-label job read)
        self.ui.applyButton.text = _("Apply")
        self._showStopEarly(False)
        self._checkCanApply()
        from slicerleap.jobs import JobWasCancelled

        try:
            outputs = job.finish()
        except Exception as exc:
            self.ui.logText.appendPlainText(str(exc))
            if not isinstance(exc, JobWasCancelled):
                slicer.util.errorDisplay(str(exc))
            return
        self.onJobSucceeded(outputs)
