"""Static checks of the four Slicer scripted modules and the hidden SlicerLeapCommon module they depend on,
which only run inside the Slicer desktop: .ui <-> parameter node binding, the widgets the code uses (the
module's own and the shared job panel's), the widget's calls into the module's one Logic (the Qt-free Lib's),
module metadata, folder layout, and the files every CMakeLists.txt names.

Each check is a function of a folder that returns a list of problems, and is also run on a deliberately
broken copy to show that it catches what it claims to.
"""
import ast
import inspect
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["SKSSegmentation", "RegistrationDL", "SuperResolution", "FedTools"]
COMMON = "SlicerLeapCommon"  # hidden module: SlicerLeapCommonLib, shared by the four
JOB_PANEL = ROOT / COMMON / f"{COMMON}Lib" / "job_panel.py"  # the widgets' JobPanelMixin
FORBIDDEN_IN_LIB = ("qt", "ctk", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper", f"{COMMON}Lib.job_panel")
# The one exception to the Qt-free Libs: the job panel, the Qt side of the module widgets, may import qt and
# the widget base class it initialises.
QT_IN_LIB_ALLOWED = {(COMMON, "job_panel.py"): {"qt", "slicer.ScriptedLoadableModule"}}
# The widgets JobPanelMixin uses, which every module's .ui must have, with their classes.
JOB_PANEL_WIDGETS = {"applyButton": "QPushButton", "progressBar": "QProgressBar", "logText": "QPlainTextEdit"}
# Widgets JobPanelMixin uses when a module's .ui has them (only the modules whose jobs can stop early), with
# their classes; it looks them up only with getattr(self.ui, name, None), never as self.ui.<name>.
OPTIONAL_JOB_PANEL_WIDGETS = {"stopEarlyButton": "QPushButton", "modelComboBox": "QComboBox"}
MODULE_FILES = ("{name}.py", "Resources/Icons/{name}.png", "Resources/UI/{name}.ui", "Testing", "{name}Lib",
                "{name}Lib/__init__.py", "{name}Lib/logic.py", "CMakeLists.txt")
COMMON_FILES = ("{name}.py", "{name}Lib/__init__.py", "{name}Lib/job_panel.py", "CMakeLists.txt")
sys.path.insert(0, str(ROOT / COMMON))  # as Slicer does for each scripted module's folder: the Libs import SlicerLeapCommonLib
# Widget class -> the field type it can be bound to (Slicer's parameterNodeWrapper GUI connectors)
WIDGET_TYPES = {"QCheckBox": "bool", "QSpinBox": "int", "QSlider": "int", "QDoubleSpinBox": "float",
                "ctkSliderWidget": "float", "QLineEdit": "str", "QComboBox": "Choice", "qMRMLNodeComboBox": "node",
                "ctkPathLineEdit": "Path"}


# -- parsing helpers ---------------------------------------------------------------------------------
def ui_widgets(ui_file: Path) -> dict:
    """objectName -> {"class", "parameter" (SlicerParameterName or None), "nodeTypes"} for every widget."""
    widgets = {}
    for element in ET.parse(ui_file).getroot().iter("widget"):
        info = {"class": element.get("class"), "parameter": None, "nodeTypes": []}
        for prop in element.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                info["parameter"] = prop.findtext("string")
            if prop.get("name") == "nodeTypes":
                info["nodeTypes"] = [s.text for s in prop.iter("string")]
        widgets[element.get("name")] = info
    return widgets


def parameter_fields(module_file: Path) -> dict:
    """Field name -> annotation source of the @parameterNodeWrapper class in a module file."""
    for node in ast.walk(ast.parse(module_file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef) and any(ast.unparse(d) == "parameterNodeWrapper" for d in node.decorator_list):
            return {s.target.id: ast.unparse(s.annotation) for s in node.body
                    if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
    return {}


def _ui_getattr_calls(python_file: Path):
    """(name X, number of arguments) of every `getattr(self.ui, "X"[, default])` in a Python file."""
    for node in ast.walk(ast.parse(python_file.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and len(node.args) >= 2 and ast.unparse(node.args[0]) == "self.ui"
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            yield node.args[1].value, len(node.args)


def ui_attributes_used(python_file: Path) -> set:
    """Names X of every `self.ui.X` (and unguarded `getattr(self.ui, "X")`) in a Python file."""
    return {node.attr for node in ast.walk(ast.parse(python_file.read_text(encoding="utf-8")))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"
            and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"} | \
        {name for name, nargs in _ui_getattr_calls(python_file) if nargs == 2}


def ui_optional_lookups(python_file: Path) -> set:
    """Names X of every guarded `getattr(self.ui, "X", default)` in a Python file: widgets a .ui may lack."""
    return {name for name, nargs in _ui_getattr_calls(python_file) if nargs == 3}


def field_kind(annotation: str) -> str:
    if "Choice(" in annotation:
        return "Choice"
    base = re.sub(r"^Annotated\[([^,\]]+).*$", r"\1", annotation).strip()
    return "node" if base.startswith("vtkMRML") else base


# -- checks (each returns a list of problems) ------------------------------------------------------
def parameter_binding_problems(module_dir: Path) -> list:
    """Every SlicerParameterName in the .ui is a parameter-node field, bound to a widget that can show it."""
    name = module_dir.name
    ui_file, module_file = module_dir / "Resources" / "UI" / f"{name}.ui", module_dir / f"{name}.py"
    fields = parameter_fields(module_file)
    if not fields:
        return [f"{name}: no @parameterNodeWrapper class with annotated fields in {module_file.name}"]
    problems = []
    for widget_name, info in ui_widgets(ui_file).items():
        parameter = info["parameter"]
        if parameter is None:
            continue
        if parameter not in fields:
            problems.append(f"{name}: widget '{widget_name}' has SlicerParameterName '{parameter}', "
                            f"which is not a field of the parameter node ({', '.join(fields)})")
            continue
        expected, actual = WIDGET_TYPES.get(info["class"]), field_kind(fields[parameter])
        if expected != actual:
            problems.append(f"{name}: widget '{widget_name}' ({info['class']}) cannot show field '{parameter}' "
                            f"of type {fields[parameter]}")
        if actual == "node" and info["nodeTypes"] and field_kind(fields[parameter]) == "node":
            node_class = re.sub(r"^Annotated\[([^,\]]+).*$", r"\1", fields[parameter]).strip()
            if node_class not in info["nodeTypes"]:
                problems.append(f"{name}: widget '{widget_name}' lists {info['nodeTypes']} but field '{parameter}' is {node_class}")
    return problems


def ui_usage_problems(module_dir: Path, job_panel: Path = JOB_PANEL) -> list:
    """Widgets the module code and the shared job panel (JobPanelMixin, which the widget derives from) use
    exist in the .ui, the job panel's with the classes it expects; the job panel's optional widgets, where a
    .ui has them, too, and the job panel looks those up only guarded; MRML widgets get the scene."""
    name = module_dir.name
    ui_file = module_dir / "Resources" / "UI" / f"{name}.ui"
    widgets = ui_widgets(ui_file)
    problems = []
    for code in (module_dir / f"{name}.py", job_panel):
        used = ui_attributes_used(code)
        if code == job_panel:
            for attribute in sorted(used & set(OPTIONAL_JOB_PANEL_WIDGETS)):
                problems.append(f"{name}: {code.name} uses self.ui.{attribute} unguarded; it is optional, look it "
                                f"up with getattr(self.ui, \"{attribute}\", None)")
            used -= set(OPTIONAL_JOB_PANEL_WIDGETS)
        for attribute in sorted(used - set(widgets)):
            problems.append(f"{name}: {code.name} uses self.ui.{attribute}, which is not in {ui_file.name}")
    for widget_name, cls in {**JOB_PANEL_WIDGETS, **OPTIONAL_JOB_PANEL_WIDGETS}.items():
        if widget_name in widgets and widgets[widget_name]["class"] != cls:
            problems.append(f"{name}: '{widget_name}' in {ui_file.name} is a {widgets[widget_name]['class']}, "
                            f"the job panel needs a {cls}")
    root = ET.parse(ui_file).getroot()
    top = root.find("widget").get("name")
    connected = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("sender") == top and c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
                 and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    for widget_name, info in widgets.items():
        if info["class"].startswith("qMRML") and widget_name != top and widget_name not in connected:
            problems.append(f"{name}: '{widget_name}' is not connected to mrmlSceneChanged(vtkMRMLScene*)")
        if info["class"].startswith(("qMRML", "ctk")) and info["class"] not in declared:
            problems.append(f"{name}: custom widget class {info['class']} is not declared in <customwidgets>")
    return problems


def module_metadata_problems(module_dir: Path) -> list:
    """The ScriptedLoadableModule subclass sets title, categories ["SlicerLeap"], contributors, help, acknowledgement.
    SlicerLeapCommon is hidden (no widget, no logic); the others depend on it, and their widget puts
    JobPanelMixin before ScriptedLoadableModuleWidget, so that the mixin's __init__ and cleanup() are the ones that run.
    A module has one Logic, its Lib's: the module file defines no Logic class of its own, and its widget names the
    parameter node class and creates the Lib's Logic."""
    name = module_dir.name
    tree = ast.parse((module_dir / f"{name}.py").read_text(encoding="utf-8"))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    expected_classes = {name: "ScriptedLoadableModule", f"{name}Test": "ScriptedLoadableModuleTest"} if name == COMMON else {
        name: "ScriptedLoadableModule", f"{name}Widget": "ScriptedLoadableModuleWidget", f"{name}Test": "ScriptedLoadableModuleTest"}
    problems = [f"{name}: class {cls}({base}) is missing" for cls, base in expected_classes.items()
                if cls not in classes or base not in [ast.unparse(b) for b in classes[cls].bases]]
    if name != COMMON:
        if f"{name}Logic" in classes:
            problems.append(f"{name}: a second {name}Logic class in {name}.py; the module's one Logic is {name}Lib's")
        widget = classes.get(f"{name}Widget")
        members = {getattr(n, "name", None) for n in widget.body} | {
            t.id for n in widget.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)} if widget else set()
        creates = widget is not None and any(isinstance(n, ast.ImportFrom) and n.module == f"{name}Lib.logic"
                                             and f"{name}Logic" in [a.name for a in n.names] for n in ast.walk(widget))
        if not {"createLogic", "parameterNodeClass"} <= members or not creates:
            problems.append(f"{name}: {name}Widget must set parameterNodeClass and createLogic() must return {name}Lib's {name}Logic")
    if f"{name}Widget" in classes and name != COMMON:
        bases = [ast.unparse(b) for b in classes[f"{name}Widget"].bases]
        if bases != ["JobPanelMixin", "ScriptedLoadableModuleWidget", "VTKObservationMixin"]:
            problems.append(f"{name}: {name}Widget({', '.join(bases)}) should derive from "
                            "(JobPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin), in that order")
    if name not in classes:
        return problems
    assigned = {}
    for node in ast.walk(classes[name]):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute) and ast.unparse(node.targets[0]).startswith("self.parent."):
            assigned[node.targets[0].attr] = node.value
    for attribute in ("title", "contributors", "helpText", "acknowledgementText"):
        if attribute not in assigned:
            problems.append(f"{name}: self.parent.{attribute} is not set")
    if ast.unparse(assigned.get("categories", ast.List(elts=[]))) != "['SlicerLeap']":
        problems.append(f"{name}: self.parent.categories is not ['SlicerLeap']")
    hidden = ast.unparse(assigned.get("hidden", ast.Constant(False))) == "True"
    if hidden != (name == COMMON):
        problems.append(f"{name}: self.parent.hidden should be {name == COMMON}")
    dependencies = ast.unparse(assigned.get("dependencies", ast.List(elts=[])))
    if dependencies != ("[]" if name == COMMON else f"['{COMMON}']"):
        problems.append(f"{name}: self.parent.dependencies is {dependencies}, "
                        f"not {'[]' if name == COMMON else [COMMON]}")
    return problems


def lib_call_problems(module_dir: Path, lib_class, receiver: str = "self.logic") -> list:
    """Every `self.logic.<method>(...)` call (or calls on another `receiver`, e.g. `self.logic.text_prompt`) in the
    module file uses methods and keyword arguments the Qt-free Lib class has (the widget never runs in pytest, so
    drift would go unnoticed). Keywords passed as `**mapping` are not seen."""
    name = module_dir.name
    tree = ast.parse((module_dir / f"{name}.py").read_text(encoding="utf-8"))
    creators = [getattr(lib_class, m) for m in dir(lib_class) if m.startswith("create_")]
    problems = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and ast.unparse(node.func.value) == receiver):
            continue
        method = getattr(lib_class, node.func.attr, None)
        if method is None:
            problems.append(f"{name}: {lib_class.__name__} has no method {node.func.attr}()")
            continue
        accepted = set(inspect.signature(method).parameters)
        if any(p.kind == p.VAR_KEYWORD for p in inspect.signature(method).parameters.values()):
            accepted |= {p for creator in creators for p in inspect.signature(creator).parameters}
            from slicerleap.declarations import MethodFamily  # each family a Lib declares (METHODS, ...): its jobs take
            for declared in (getattr(lib_class, a) for a in dir(lib_class)):  # their parameters by keyword
                accepted |= {p.name for p in declared.parameters()} if isinstance(declared, MethodFamily) else set()
        keywords = {k.arg for k in node.keywords if k.arg}
        for keyword in sorted(keywords - accepted):
            problems.append(f"{name}: {receiver}.{node.func.attr}(...) passes '{keyword}', which "
                            f"{lib_class.__name__}.{node.func.attr} does not accept")
    return problems


def module_layout_problems(module_dir: Path) -> list:
    """Folders and files a module needs; its Python parses; its Lib imports no Qt/CTK/Slicer-app modules,
    nor the job panel (QT_IN_LIB_ALLOWED lists the one exception: the job panel itself)."""
    name = module_dir.name
    problems = [f"{name}: {relative.format(name=name)} is missing" for relative in
                (COMMON_FILES if name == COMMON else MODULE_FILES) if not (module_dir / relative.format(name=name)).exists()]
    for path in [module_dir / f"{name}.py", *sorted((module_dir / f"{name}Lib").glob("*.py"))]:
        if not path.exists():
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as exc:
            problems.append(f"{name}: {path.relative_to(module_dir)} does not parse: {exc}")
            continue
        if path.parent.name != f"{name}Lib":
            continue
        allowed = QT_IN_LIB_ALLOWED.get((name, path.name), set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):  # `from . import x` / `from .x import y` inside the Lib package
                package = ".".join(filter(None, [path.parent.name if node.level else "", node.module]))
                imported = [package] + [f"{package}.{a.name}" for a in node.names]
            else:
                continue
            for module in sorted(set(imported) - allowed):
                if module in FORBIDDEN_IN_LIB or module.split(".")[0] in ("qt", "ctk"):
                    problems.append(f"{name}: {path.relative_to(module_dir)} imports {module}, which the Qt-free Lib must not")
    return problems


def _cmake_commands(text: str):
    text = re.sub(r"#[^\n]*", "", text)
    for match in re.finditer(r"(\w+)\s*\(([^()]*)\)", text):
        yield match.group(1).lower(), match.group(2).split()


def cmake_missing_files(cmake_file: Path) -> list:
    """Files and folders a CMakeLists.txt names (module scripts/resources, SCRIPT, add_subdirectory,
    install/file(COPY) sources) that do not exist next to it. Paths with unresolved variables are skipped."""
    variables, named = {"CMAKE_CURRENT_SOURCE_DIR": str(cmake_file.parent)}, []
    for command, args in _cmake_commands(cmake_file.read_text(encoding="utf-8")):
        if command == "set" and args and args[0] == "MODULE_NAME":
            variables["MODULE_NAME"] = args[1]
        elif command == "set" and args and args[0] in ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES"):
            named += args[1:]
        elif command == "add_subdirectory":
            named.append(args[0])
        elif command in ("slicer_add_python_unittest", "install", "file"):
            keywords = {"SCRIPT"} if command == "slicer_add_python_unittest" else {"DIRECTORY", "FILES", "COPY"}
            taking = False
            for arg in args:
                if arg.isupper() and not arg.endswith((".py", ".txt")):
                    taking = arg in keywords
                elif taking:
                    named.append(arg)
    problems = []
    for entry in named:
        path = re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m.group(1), m.group(0)), entry)
        if "${" in path:
            continue
        if not (cmake_file.parent / path).exists():
            problems.append(f"{cmake_file.relative_to(cmake_file.parents[1]) if cmake_file.parent != ROOT else cmake_file.name}: "
                            f"'{entry}' does not exist")
    return problems


def cmake_unlisted_scripts(module_dir: Path) -> list:
    """Python files of a module (outside Testing/) that its CMakeLists.txt does not list in MODULE_PYTHON_SCRIPTS,
    so that an installed extension would lack them."""
    listed = set()
    for command, args in _cmake_commands((module_dir / "CMakeLists.txt").read_text(encoding="utf-8")):
        if command == "set" and args and args[0] == "MODULE_PYTHON_SCRIPTS":
            listed |= {arg.replace("${MODULE_NAME}", module_dir.name) for arg in args[1:]}
    present = {path.relative_to(module_dir).as_posix() for path in module_dir.rglob("*.py")
               if not {"__pycache__", "Testing"} & set(path.relative_to(module_dir).parts)}
    return sorted(present - listed)


def all_cmake_files(root: Path) -> list:
    return sorted(p for p in root.rglob("CMakeLists.txt") if not any(part.startswith((".", "build")) for part in p.relative_to(root).parts))


# -- tests on the real modules ---------------------------------------------------------------------
@pytest.mark.parametrize("module", MODULES)
def test_ui_parameter_names_are_parameter_node_fields(module):
    assert parameter_binding_problems(ROOT / module) == []


@pytest.mark.parametrize("module", MODULES)
def test_ui_has_the_widgets_the_code_uses(module):
    assert ui_usage_problems(ROOT / module) == []


def test_job_panel_widgets_are_the_ones_it_uses():
    """JOB_PANEL_WIDGETS, which every module's .ui is checked for, names exactly the widgets JobPanelMixin uses,
    and OPTIONAL_JOB_PANEL_WIDGETS exactly those it looks up guarded (a .ui may lack them)."""
    assert ui_attributes_used(JOB_PANEL) == set(JOB_PANEL_WIDGETS)
    assert ui_optional_lookups(JOB_PANEL) == set(OPTIONAL_JOB_PANEL_WIDGETS)


def test_stop_early_button_only_where_the_task_can_stop_early():
    """SR4ZCT training and registration can finish their optimisation early and keep the result so far
    (SceneJob.stop_early()); segmentation and the federated tools cannot, so their panels have no such button."""
    has_button = {m for m in MODULES if "stopEarlyButton" in ui_widgets(ROOT / m / "Resources" / "UI" / f"{m}.ui")}
    assert has_button == {"SuperResolution", "RegistrationDL"}


@pytest.mark.parametrize("module", MODULES + [COMMON])
def test_module_metadata_and_classes(module):
    assert module_metadata_problems(ROOT / module) == []


@pytest.mark.parametrize("module", MODULES + [COMMON])
def test_module_layout_and_qt_free_lib(module):
    assert module_layout_problems(ROOT / module) == []


@pytest.mark.parametrize("module", MODULES)
def test_slicer_logic_calls_match_the_lib(module):
    sys.path.insert(0, str(ROOT / module))
    try:
        lib = __import__(f"{module}Lib.logic", fromlist=["logic"])
    finally:
        sys.path.remove(str(ROOT / module))
    assert lib_call_problems(ROOT / module, getattr(lib, f"{module}Logic")) == []
    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    assert any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and ast.unparse(n.func.value) == "self.logic"
               for n in ast.walk(tree))  # the check above saw calls to check


@pytest.mark.parametrize("lib_module, lib_class, receiver, at_least", [
    ("teacher_student_logic", "TeacherStudentLogic", "self.logic.teacher_student", 10),
    ("text_prompt_logic", "TextPromptLogic", "self.logic.text_prompt", 5),
    ("interactive_logic", "InteractiveLogic", "self.logic.interactive", 2),
])
def test_sks_second_lib_classes_calls_match(lib_module, lib_class, receiver, at_least):
    """The panel's teacher–student and text-prompt calls go to further Qt-free classes, attributes of the module's
    one Logic; check them the same way."""
    sys.path.insert(0, str(ROOT / "SKSSegmentation"))
    try:
        lib = __import__(f"SKSSegmentationLib.{lib_module}", fromlist=[lib_module])
    finally:
        sys.path.remove(str(ROOT / "SKSSegmentation"))
    assert lib_call_problems(ROOT / "SKSSegmentation", getattr(lib, lib_class), receiver) == []
    calls = [n for n in ast.walk(ast.parse((ROOT / "SKSSegmentation" / "SKSSegmentation.py").read_text(encoding="utf-8")))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and ast.unparse(n.func.value) == receiver]
    assert len(calls) >= at_least  # the check above saw the calls it is meant to check


def test_every_cmake_file_names_existing_files():
    files = all_cmake_files(ROOT)
    expected = {ROOT / "CMakeLists.txt", ROOT / COMMON / "CMakeLists.txt"} | \
        {ROOT / m / sub / "CMakeLists.txt" for m in MODULES for sub in ("", "Testing", "Testing/Python")}
    assert expected <= set(files), sorted(str(p) for p in expected - set(files))
    assert [problem for f in files for problem in cmake_missing_files(f)] == []
    top = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    subdirectories = [args[0] for command, args in _cmake_commands(top) if command == "add_subdirectory"]
    assert subdirectories == [COMMON, *MODULES], "SlicerLeapCommon first: the other modules depend on it"
    for module in MODULES + [COMMON]:  # every Python file of a module is installed with it
        assert cmake_unlisted_scripts(ROOT / module) == []


def test_extension_icon_and_requirements():
    from PIL import Image

    for icon in [ROOT / "Resources" / "Icons" / "SlicerLeap.png", *(ROOT / m / "Resources" / "Icons" / f"{m}.png" for m in MODULES)]:
        assert Image.open(icon).size == (128, 128), icon
    requirements = (ROOT / "Resources" / "requirements.txt").read_text(encoding="utf-8")
    names = {re.split(r"[<>=!~ ;\[]", line.strip())[0].lower() for line in requirements.splitlines() if line.strip() and not line.startswith("#")}
    assert {"monai", "safetensors", "jsonschema", "psutil", "scikit-image", "nibabel"} <= names
    assert not names & {"torch", "simpleitk"}, "torch comes from the PyTorch extension; SimpleITK ships with Slicer"


def test_slicer_requirements_are_the_tested_pins():
    """What Slicer installs on first use is exactly what CI tested: every line pinned with ==, as in constraints.txt."""
    def pins(path):
        lines = [line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
        return {line.split("==")[0].lower().replace("_", "-"): line for line in lines if line}

    tested = pins(ROOT / "constraints.txt")
    for name in ("requirements.txt", "requirements-federated.txt"):
        for package, line in pins(ROOT / "Resources" / name).items():
            assert "==" in line, f"{name}: '{line}' is not pinned"
            assert tested.get(package) == line, f"{name}: '{line}' differs from constraints.txt's '{tested.get(package)}'"


@pytest.mark.parametrize("installed", [False, True])
def test_lib_makes_the_engine_importable(tmp_path, installed):
    """A module's Lib imports SlicerLeapCommonLib, which puts the engine on sys.path: from a source checkout
    the repository root; in an installed extension the folder holding the modules (where CMake installs them
    all, and slicerleap/). Slicer puts each module's folder on sys.path; here they are given the same way.
    Run in a bare interpreter (-S -E) with no site-packages, so the editable install of slicerleap cannot
    hide a wrong path."""
    if installed:
        modules_dir = tmp_path / "qt-scripted-modules"
        for lib in ("SKSSegmentation/SKSSegmentationLib", f"{COMMON}/{COMMON}Lib", "slicerleap"):
            shutil.copytree(ROOT / lib, modules_dir / Path(lib).name, ignore=shutil.ignore_patterns("__pycache__"))
        module_folders, expected = [modules_dir], modules_dir
    else:
        module_folders, expected = [ROOT / "SKSSegmentation", ROOT / COMMON], ROOT
    code = ("import sys, importlib.util; sys.path[:0] = sys.argv[1:]; import SKSSegmentationLib; "
            "print(importlib.util.find_spec('slicerleap').origin)")
    out = subprocess.run([sys.executable, "-S", "-E", "-c", code, *map(str, module_folders)], capture_output=True, text=True, encoding="utf-8", errors="replace", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == expected / "slicerleap" / "__init__.py"


# -- the checks catch what they claim to -----------------------------------------------------------
@pytest.fixture
def broken_copy(tmp_path):
    """A copy of the SKSSegmentation module folder to break on purpose."""
    copy = tmp_path / "SKSSegmentation"
    shutil.copytree(ROOT / "SKSSegmentation", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_checks_catch_a_wrong_parameter_name(broken_copy):
    ui = broken_copy / "Resources" / "UI" / "SKSSegmentation.ui"
    ui.write_text(ui.read_text(encoding="utf-8").replace("<string>inputVolume</string>", "<string>inputVolumeTypo</string>"), encoding="utf-8")
    problems = parameter_binding_problems(broken_copy)
    assert any("SKSSegmentation" in p and "inputVolumeTypo" in p for p in problems), problems


def test_checks_catch_a_widget_that_cannot_show_its_field(broken_copy):
    ui = broken_copy / "Resources" / "UI" / "SKSSegmentation.ui"
    ui.write_text(ui.read_text(encoding="utf-8").replace("<string>probability</string>", "<string>device</string>"), encoding="utf-8")
    problems = parameter_binding_problems(broken_copy)
    assert any("probabilityCheckBox" in p and "device" in p for p in problems), problems


def test_checks_catch_a_missing_widget_and_scene_connection(broken_copy):
    module = broken_copy / "SKSSegmentation.py"
    module.write_text(module.read_text(encoding="utf-8").replace("self.ui.markNoLesionButton.connect(", "self.ui.markNoLesionButtonTypo.connect("), encoding="utf-8")
    ui = broken_copy / "Resources" / "UI" / "SKSSegmentation.ui"
    ui.write_text(ui.read_text(encoding="utf-8").replace("<receiver>inputVolumeSelector</receiver>", "<receiver>nothing</receiver>"), encoding="utf-8")
    problems = ui_usage_problems(broken_copy)
    assert any("self.ui.markNoLesionButtonTypo" in p for p in problems), problems
    assert any("inputVolumeSelector" in p and "mrmlSceneChanged" in p for p in problems), problems


def test_checks_catch_a_ui_without_the_job_panel_widgets(broken_copy, tmp_path):
    ui = broken_copy / "Resources" / "UI" / "SKSSegmentation.ui"
    text = ui.read_text(encoding="utf-8").replace('name="progressBar"', 'name="progress"')
    ui.write_text(text.replace('class="QPlainTextEdit" name="logText"', 'class="QTextEdit" name="logText"'), encoding="utf-8")
    problems = ui_usage_problems(broken_copy)
    assert any("job_panel.py uses self.ui.progressBar" in p for p in problems), problems
    assert any("'logText'" in p and "QPlainTextEdit" in p for p in problems), problems
    panel = tmp_path / "job_panel.py"  # a mixin that starts using a widget the .ui files do not have
    panel.write_text(JOB_PANEL.read_text(encoding="utf-8") + "\n\ndef extra(self):\n    self.ui.statusLabel.text = ''\n", encoding="utf-8")
    assert any("self.ui.statusLabel" in p for p in ui_usage_problems(ROOT / "SKSSegmentation", job_panel=panel))


def test_checks_catch_a_wrong_or_unguarded_optional_widget(tmp_path):
    copy = tmp_path / "RegistrationDL"
    shutil.copytree(ROOT / "RegistrationDL", copy, ignore=shutil.ignore_patterns("__pycache__"))
    ui = copy / "Resources" / "UI" / "RegistrationDL.ui"
    ui.write_text(ui.read_text(encoding="utf-8").replace('class="QPushButton" name="stopEarlyButton"', 'class="QToolButton" name="stopEarlyButton"'), encoding="utf-8")
    problems = ui_usage_problems(copy)
    assert any("'stopEarlyButton'" in p and "QPushButton" in p for p in problems), problems
    panel = tmp_path / "job_panel.py"  # a mixin that uses the optional button as if every .ui had it
    for unguarded in ("self.ui.stopEarlyButton", "getattr(self.ui, 'stopEarlyButton')"):
        panel.write_text(JOB_PANEL.read_text(encoding="utf-8") + f"\n\ndef extra(self):\n    {unguarded}.enabled = False\n", encoding="utf-8")
        assert ui_attributes_used(panel) == set(JOB_PANEL_WIDGETS) | {"stopEarlyButton"}, unguarded
        for module in ("RegistrationDL", "SKSSegmentation"):  # with the button, and without
            problems = ui_usage_problems(ROOT / module, job_panel=panel)
            assert any("stopEarlyButton unguarded" in p for p in problems), (unguarded, problems)


def test_checks_catch_qt_in_the_lib_and_a_syntax_error(broken_copy):
    logic = broken_copy / "SKSSegmentationLib" / "logic.py"
    logic.write_text("import qt\nfrom ctk import ctkCollapsibleButton\n" + logic.read_text(encoding="utf-8"), encoding="utf-8")
    (broken_copy / "SKSSegmentationLib" / "extra.py").write_text("def broken(:\n", encoding="utf-8")
    problems = module_layout_problems(broken_copy)
    assert any("imports qt" in p for p in problems) and any("imports ctk" in p for p in problems), problems
    assert any("extra.py does not parse" in p for p in problems), problems


def test_checks_catch_qt_outside_the_job_panel(tmp_path):
    common = tmp_path / COMMON
    shutil.copytree(ROOT / COMMON, common, ignore=shutil.ignore_patterns("__pycache__"))
    panel, init = common / f"{COMMON}Lib" / "job_panel.py", common / f"{COMMON}Lib" / "__init__.py"
    panel.write_text("import ctk\n" + panel.read_text(encoding="utf-8"), encoding="utf-8")  # the exception is qt only
    init.write_text("import qt\nfrom .job_panel import JobPanelMixin\n" + init.read_text(encoding="utf-8"), encoding="utf-8")  # and job_panel.py only
    problems = module_layout_problems(common)
    assert any("job_panel.py imports ctk" in p for p in problems), problems
    assert any("__init__.py imports qt" in p for p in problems), problems
    assert any(f"__init__.py imports {COMMON}Lib.job_panel" in p for p in problems), problems
    assert not any("job_panel.py imports qt" in p for p in problems), problems


def test_checks_catch_wrong_metadata_and_lib_calls(broken_copy):
    module = broken_copy / "SKSSegmentation.py"
    text = module.read_text(encoding="utf-8").replace('self.parent.categories = ["SlicerLeap"]', 'self.parent.categories = ["Examples"]')
    text = text.replace('self.parent.dependencies = ["SlicerLeapCommon"]', "self.parent.dependencies = []")
    text = text.replace("(JobPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin)",
                        "(ScriptedLoadableModuleWidget, JobPanelMixin, VTKObservationMixin)")
    text = text.replace("self.logic.teacher_student.queue_counts()", "self.logic.teacher_student.queueCounts()")
    module.write_text(text.replace("keep_files=p.keepFiles, force=p.force,", "keepFiles=p.keepFiles, force=p.force,"), encoding="utf-8")
    problems = module_metadata_problems(broken_copy)
    assert any("categories" in p for p in problems) and any("dependencies" in p for p in problems), problems
    assert any("in that order" in p for p in problems), problems
    sys.path.insert(0, str(ROOT / "SKSSegmentation"))
    try:
        from SKSSegmentationLib.logic import SKSSegmentationLogic
        from SKSSegmentationLib.teacher_student_logic import TeacherStudentLogic
    finally:
        sys.path.remove(str(ROOT / "SKSSegmentation"))
    problems = lib_call_problems(broken_copy, SKSSegmentationLogic)
    assert any("'keepFiles'" in p for p in problems), problems
    problems = lib_call_problems(broken_copy, TeacherStudentLogic, "self.logic.teacher_student")
    assert any("no method queueCounts()" in p for p in problems), problems


def test_checks_catch_a_missing_cmake_file(broken_copy):
    (broken_copy / "SKSSegmentationLib" / "logic.py").unlink()
    shutil.rmtree(broken_copy / "Testing")
    problems = cmake_missing_files(broken_copy / "CMakeLists.txt")
    assert any("${MODULE_NAME}Lib/logic.py" in p for p in problems), problems
    assert any("'Testing'" in p for p in problems), problems
    assert any("SKSSegmentationLib/logic.py is missing" in p for p in module_layout_problems(broken_copy))
    (broken_copy / "SKSSegmentationLib" / "helpers.py").write_text("", encoding="utf-8")
    assert cmake_unlisted_scripts(broken_copy) == ["SKSSegmentationLib/helpers.py"]


def test_checks_catch_a_second_logic_class(tmp_path):
    copy = tmp_path / "RegistrationDL"
    shutil.copytree(ROOT / "RegistrationDL", copy, ignore=shutil.ignore_patterns("__pycache__"))
    module = copy / "RegistrationDL.py"
    text = module.read_text(encoding="utf-8").replace("    parameterNodeClass = RegistrationDLParameterNode\n", "")
    module.write_text(text + "\n\nclass RegistrationDLLogic(ScriptedLoadableModuleLogic):\n    pass\n", encoding="utf-8")
    problems = module_metadata_problems(copy)
    assert any("a second RegistrationDLLogic" in p for p in problems) and any("parameterNodeClass" in p for p in problems), problems
