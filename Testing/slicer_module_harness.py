"""Run a SlicerLeap module's own ScriptedLoadableModuleTest outside the Slicer desktop.

    python Testing/slicer_module_harness.py SuperResolution
    python Testing/slicer_module_harness.py --job-panel

Qt, CTK, Slicer's scripted-module base classes, parameterNodeWrapper and i18n do not exist in the pip
package slicer-core, so minimal stand-ins replace them; the MRML scene, slicer.util array helpers and the
engine are real. This exercises the module class, its self-test (which drives the module's one Logic, the Qt-free
Lib's, as a console script would) and the self-test's assertions. It does not exercise the module
widgets (that needs Qt and the real parameter node wrapper); `--job-panel` drives the job lifecycle they
share (SlicerLeapCommonLib.job_panel) with stand-in widgets and a scripted job. Run it in its own process:
the stand-ins would otherwise leak into other tests.
"""
import sys
import types
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = ROOT / "SlicerLeapCommon"  # the hidden module the others depend on; Slicer puts its folder on sys.path


def install_stand_ins() -> None:
    import slicer

    scripted = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self):
            pass

        def getParameterNode(self):
            return slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=None):
            print(message)

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic, ScriptedLoadableModuleTest):
        setattr(scripted, cls.__name__, cls)
    scripted.__all__ = [cls.__name__ for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget,
                                                 ScriptedLoadableModuleLogic, ScriptedLoadableModuleTest)]

    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    wrapper.Choice = wrapper.WithinRange = lambda *args, **kwargs: None

    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text

    qt = types.ModuleType("qt")

    class QTimer:  # what JobPanelMixin uses; the check below fires timeout() by hand
        def __init__(self):
            self.interval, self.active, self.slots = None, False, {}

        def setInterval(self, msec):
            self.interval = msec

        def connect(self, signal, slot):
            self.slots[signal] = slot

        def start(self):
            self.active = True

        def stop(self):
            self.active = False

    qt.QTimer = QTimer

    stand_ins = {"qt": qt, "ctk": types.ModuleType("ctk"), "slicer.ScriptedLoadableModule": scripted,
                 "slicer.parameterNodeWrapper": wrapper, "slicer.i18n": i18n}
    for name, module in stand_ins.items():
        sys.modules[name] = module
        if name.startswith("slicer."):
            setattr(slicer, name.split(".", 1)[1], module)


def run(module_name: str) -> None:
    install_stand_ins()
    sys.path[:0] = [str(ROOT / module_name), str(COMMON)]
    from slicerleap.scene import get_scene_context

    get_scene_context()  # the headless scene becomes slicer.mrmlScene, as the desktop's would be
    module = __import__(module_name)
    parent = types.SimpleNamespace()
    getattr(module, module_name)(parent)
    assert parent.categories == ["SlicerLeap"] and parent.title and parent.helpText, vars(parent)
    test = getattr(module, f"{module_name}Test")()
    test.setUp()
    try:
        getattr(test, f"test_{module_name}1")()
    finally:
        test.tearDown()


class _Widget:
    """A stand-in Qt widget: records the properties and calls JobPanelMixin makes."""

    def __init__(self):
        self.text, self.toolTip, self.enabled, self.value, self.lines, self.slots = "Apply", "", True, None, [], {}
        self.visible = True

    def connect(self, signal, slot):
        self.slots[signal] = slot

    def clear(self):
        self.lines = []

    def appendPlainText(self, text):
        self.lines.append(text)


class _ScriptedJob:
    """A job that reports one record per poll and stops after two polls, or after the next one once asked
    to stop early (then it succeeds all the same, like SR4ZCT and registration); cancel() records whether
    it waited, stop_early() how often it was called."""

    def __init__(self, outcome):
        self.outcome, self.cancelled, self.polls, self.stopped_early = outcome, [], 0, 0

    def poll(self):
        self.polls += 1
        if self.stopped_early:
            return [{"progress": 1.0, "message": "stopped early by the user"}]
        return [{"progress": self.polls / 2, "message": f"step {self.polls}"}]

    @property
    def running(self):
        return self.polls < 2 and not self.cancelled and not (self.stopped_early and self.polls)

    def cancel(self, wait=True):
        self.cancelled.append(wait)

    def stop_early(self):
        self.stopped_early += 1

    def finish(self):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def check_job_panel() -> None:
    """JobPanelMixin on stand-in widgets: Apply starts the job and becomes Cancel; the timer shows progress
    and log and hands the outputs to onJobSucceeded; Cancel does not wait for the worker, closing the scene
    does; a cancelled job is logged, not shown as an error; other errors are shown. A panel whose .ui has
    the optional Stop early button shows it only while a job runs; it calls stop_early() once, disables
    itself, and the job's outputs still reach onJobSucceeded; a panel without it works as before."""
    import vtk

    install_stand_ins()
    sys.path.insert(0, str(COMMON))
    import slicer
    import slicer.util
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
    from slicer.util import VTKObservationMixin
    from slicerleap.jobs import JobWasCancelled
    from slicerleap.scene import get_scene_context

    from SlicerLeapCommonLib.job_panel import JobPanelMixin

    get_scene_context()
    shown = []
    slicer.util.errorDisplay = lambda text, **kwargs: shown.append(text)
    ui_widget = types.SimpleNamespace(setMRMLScene=lambda scene: None)
    slicer.util.loadUI = lambda path: ui_widget
    ui = types.SimpleNamespace(applyButton=_Widget(), progressBar=_Widget(), logText=_Widget())
    slicer.util.childWidgetVariables = lambda widget: ui

    class ParameterNode:  # what the panel needs of a parameterNodeWrapper instance
        def __init__(self):
            self.node, self.ready = vtk.vtkObject(), False

        def AddObserver(self, *args):
            return self.node.AddObserver(*args)

        def RemoveObserver(self, tag):
            self.node.RemoveObserver(tag)

        def connectGui(self, gui):
            return "tag"

        def disconnectGui(self, tag):
            pass

    parameterNode = ParameterNode()
    jobs, succeeded = [], []

    class Panel(JobPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):  # as the module widgets
        moduleName = "Example"
        parameterNodeClass = staticmethod(lambda node: parameterNode)  # wraps the module's scripted module node
        layout = types.SimpleNamespace(addWidget=lambda widget: None)

        def resourcePath(self, name):
            return name

        def canApply(self):
            return (True, "go") if self._parameterNode.ready else (False, "not ready")

        def startJob(self):
            if not jobs:
                raise ValueError("No input volume")
            return jobs[-1]

        def onJobSucceeded(self, outputs):
            succeeded.append(outputs)

    panel = Panel(types.SimpleNamespace(isEntered=True))
    panel.setupPanel()
    button, timer = ui.applyButton, panel._jobTimer
    assert (button.enabled, button.toolTip, timer.interval) == (False, "not ready", 200), vars(button)
    parameterNode.ready = True
    parameterNode.node.Modified()  # the panel observes the parameter node
    assert (button.enabled, button.toolTip) == (True, "go")

    button.slots["clicked(bool)"]()  # startJob raises: shown, nothing starts
    assert shown == ["No input volume"] and panel._job is None and not timer.active

    jobs.append(_ScriptedJob({"volume": "output"}))
    button.slots["clicked(bool)"]()
    assert button.text == "Cancel" and timer.active and ui.progressBar.value == 0
    timer.slots["timeout()"]()
    assert ui.progressBar.value == 50 and ui.logText.lines == ["step 1"] and button.text == "Cancel"
    timer.slots["timeout()"]()
    assert succeeded == [{"volume": "output"}] and ui.progressBar.value == 100
    assert button.text == "Apply" and button.enabled and not timer.active and panel._job is None

    jobs.append(_ScriptedJob(JobWasCancelled("Cancelled; the scene is unchanged", None, "cancelled")))
    button.slots["clicked(bool)"]()
    button.slots["clicked(bool)"]()  # Cancel
    assert jobs[-1].cancelled == [False] and not button.enabled, "the Cancel button must not wait for the worker"
    timer.slots["timeout()"]()
    assert ui.logText.lines[-1] == "Cancelled; the scene is unchanged" and shown == ["No input volume"]
    assert button.text == "Apply" and button.enabled and len(succeeded) == 1

    jobs.append(_ScriptedJob(RuntimeError("worker failed")))
    button.slots["clicked(bool)"]()
    slicer.mrmlScene.Clear(0)  # closing the scene waits for the worker
    assert jobs[-1].cancelled == [True] and panel._parameterNode is parameterNode  # re-initialised after close
    timer.slots["timeout()"]()
    assert shown == ["No input volume", "worker failed"] and len(succeeded) == 1

    jobs.append(_ScriptedJob({}))
    button.slots["clicked(bool)"]()
    panel.cleanup()
    assert jobs[-1].cancelled == [True] and not timer.active and panel.Observations == []

    # a module whose .ui has the optional stopEarlyButton (SuperResolution, RegistrationDL)
    ui = types.SimpleNamespace(applyButton=_Widget(), progressBar=_Widget(), logText=_Widget(), stopEarlyButton=_Widget())
    slicer.util.childWidgetVariables = lambda widget: ui
    panel = Panel(types.SimpleNamespace(isEntered=True))
    panel.setupPanel()
    button, stop, timer = ui.applyButton, ui.stopEarlyButton, panel._jobTimer
    assert button.enabled and not stop.visible and not stop.enabled, "no job: the Stop early button is hidden"
    stop.slots["clicked(bool)"]()  # (a stray click with no job does nothing)
    assert ui.logText.lines == []
    jobs.append(_ScriptedJob({"volume": "kept"}))
    button.slots["clicked(bool)"]()
    assert button.text == "Cancel" and stop.visible and stop.enabled
    stop.slots["clicked(bool)"]()
    assert jobs[-1].stopped_early == 1 and not stop.enabled and jobs[-1].cancelled == []
    assert ui.logText.lines == ["Stopping early: the result so far will be kept"] and button.text == "Cancel"
    errors_before = len(shown)
    timer.slots["timeout()"]()  # the job finishes at once, and succeeds
    assert succeeded[-1] == {"volume": "kept"} and len(shown) == errors_before, "stopped early: outputs kept, no error"
    assert ui.logText.lines[-1] == "stopped early by the user" and jobs[-1].stopped_early == 1
    assert button.text == "Apply" and button.enabled and not stop.visible and not stop.enabled and panel._job is None

    jobs.append(_ScriptedJob(JobWasCancelled("Cancelled; the scene is unchanged", None, "cancelled")))
    button.slots["clicked(bool)"]()
    assert stop.visible and stop.enabled  # enabled again for the next job
    button.slots["clicked(bool)"]()  # Cancel: nothing left to keep
    assert not stop.enabled and jobs[-1].stopped_early == 0
    timer.slots["timeout()"]()
    assert not stop.visible and len(shown) == errors_before and succeeded[-1] == {"volume": "kept"}
    panel.cleanup()
    print("Job panel check passed")


if __name__ == "__main__":
    if sys.argv[1] == "--job-panel":
        check_job_panel()
    else:
        run(sys.argv[1])
