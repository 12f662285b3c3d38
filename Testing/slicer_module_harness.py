"""Run a SlicerLeap module's own ScriptedLoadableModuleTest outside the Slicer desktop.

    python Testing/slicer_module_harness.py SuperResolution

Qt, CTK, Slicer's scripted-module base classes, parameterNodeWrapper and i18n do not exist in the pip
package slicer-core, so minimal stand-ins replace them; the MRML scene, slicer.util array helpers and the
engine are real. This exercises the module class, its Slicer-side Logic wrapper (argument names passed to
the Qt-free Lib, blocking `process`) and the self-test's assertions. It does not exercise the widget
(that needs Qt) nor the real parameter node wrapper. Run it in its own process: the stand-ins would
otherwise leak into other tests.
"""
import sys
import types
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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

    stand_ins = {"qt": types.ModuleType("qt"), "ctk": types.ModuleType("ctk"), "slicer.ScriptedLoadableModule": scripted,
                 "slicer.parameterNodeWrapper": wrapper, "slicer.i18n": i18n}
    for name, module in stand_ins.items():
        sys.modules[name] = module
        if name.startswith("slicer."):
            setattr(slicer, name.split(".", 1)[1], module)


def run(module_name: str) -> None:
    install_stand_ins()
    sys.path.insert(0, str(ROOT / module_name))
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


if __name__ == "__main__":
    run(sys.argv[1])
