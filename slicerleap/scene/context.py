"""One function that gives a working Slicer application context, headless or inside the desktop app.

Headless (pip slicer-core), the module logics must be wired to a vtkSlicerApplicationLogic by hand,
as the desktop's qSlicerCoreApplication does; inside Slicer we reuse what the application made.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

import slicer


@dataclass
class SceneContext:
    scene: "slicer.vtkMRMLScene"
    app_logic: "slicer.vtkSlicerApplicationLogic"
    volumes_logic: object
    segmentations_logic: object
    transforms_logic: object
    color_logic: object
    in_desktop: bool = False
    _keepalive: list = field(default_factory=list, repr=False)

    def node_count(self) -> int:
        return self.scene.GetNumberOfNodes()


_current: SceneContext | None = None


def running_in_slicer_desktop() -> bool:
    return getattr(slicer, "app", None) is not None and hasattr(slicer, "modules")


def get_scene_context() -> SceneContext:
    """The process-wide context: Slicer's own inside the desktop, else one headless scene made once."""
    global _current
    if _current is None:
        _current = _desktop_context() if running_in_slicer_desktop() else new_scene_context()
    return _current


def _desktop_context() -> SceneContext:
    m = slicer.modules
    return SceneContext(
        scene=slicer.mrmlScene,
        app_logic=slicer.app.applicationLogic(),
        volumes_logic=m.volumes.logic(),
        segmentations_logic=m.segmentations.logic(),
        transforms_logic=m.transforms.logic(),
        color_logic=m.colors.logic(),
        in_desktop=True,
    )


def new_scene_context(make_current: bool = False) -> SceneContext:
    """A fresh headless scene with application, volumes, segmentations, transforms and colour logics,
    and the remote-IO/data-IO managers that `.mrb` reading needs."""
    from vtkmodules.vtkCommonCore import vtkCollection

    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    app_logic.SetSliceLogics(vtkCollection())
    app_logic.SetViewLogics(vtkCollection())

    color_logic = slicer.vtkMRMLColorLogic()
    color_logic.SetMRMLApplicationLogic(app_logic)
    color_logic.SetMRMLScene(scene)
    color_logic.AddDefaultColorNodes()
    app_logic.SetModuleLogic("Colors", color_logic)

    def wire(logic, module_name):
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app_logic)
        app_logic.SetModuleLogic(module_name, logic)
        return logic

    volumes_logic = wire(slicer.vtkSlicerVolumesLogic(), "Volumes")
    segmentations_logic = wire(slicer.vtkSlicerSegmentationsModuleLogic(), "Segmentations")
    transforms_logic = wire(slicer.vtkSlicerTransformLogic(), "Transforms")
    subject_hierarchy_logic = wire(slicer.vtkSlicerSubjectHierarchyModuleLogic(), "SubjectHierarchy")

    # Markups (ROI boxes) are saved as .mrk.json; the desktop's Markups module registers these storage nodes.
    for storage_class in ("vtkMRMLMarkupsJsonStorageNode", "vtkMRMLMarkupsROIJsonStorageNode", "vtkMRMLMarkupsPlaneJsonStorageNode"):
        scene.RegisterNodeClass(getattr(slicer, storage_class)())

    # Data IO managers: storage nodes and .mrb bundles read files through them.
    cache_dir = tempfile.TemporaryDirectory(prefix="slicerleap-cache-")
    remote_io = slicer.vtkMRMLRemoteIOLogic()
    remote_io.SetMRMLScene(scene)
    remote_io.SetMRMLApplicationLogic(app_logic)
    remote_io.GetCacheManager().SetRemoteCacheDirectory(cache_dir.name)
    data_io_logic = slicer.vtkDataIOManagerLogic()
    data_io_logic.SetMRMLScene(scene)
    data_io_logic.SetMRMLApplicationLogic(app_logic)
    data_io_logic.SetAndObserveDataIOManager(remote_io.GetDataIOManager())
    remote_io.AddDataIOToScene()

    ctx = SceneContext(
        scene=scene,
        app_logic=app_logic,
        volumes_logic=volumes_logic,
        segmentations_logic=segmentations_logic,
        transforms_logic=transforms_logic,
        color_logic=color_logic,
        _keepalive=[subject_hierarchy_logic, remote_io, data_io_logic, cache_dir],
    )
    if make_current:
        global _current
        _current = ctx
    if getattr(slicer, "mrmlScene", None) is None or make_current:
        slicer.mrmlScene = scene  # lets slicer.util helpers find the scene, as in the desktop
    return ctx


def python_for_jobs() -> str:
    """Interpreter for worker processes: Slicer's PythonSlicer inside the desktop, else this Python."""
    import os
    import shutil
    import sys

    if running_in_slicer_desktop():
        candidate = os.path.join(slicer.app.slicerHome, "bin", "PythonSlicer" + (".exe" if os.name == "nt" else ""))
        return candidate if os.path.exists(candidate) else (shutil.which("PythonSlicer") or sys.executable)
    return sys.executable
