"""Medical Reality Bundle (.mrb) save/load: a scene plus all its data files in one zip."""
from __future__ import annotations

from pathlib import Path

from .context import SceneContext, new_scene_context


def save_mrb(ctx: SceneContext, path: str | Path) -> Path:
    """Write every storable node and the scene description into `path` (.mrb)."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    ctx.scene.SetRootDirectory(str(path.parent))
    for n in range(ctx.scene.GetNumberOfNodes()):  # nodes made by scripts (e.g. ROI boxes) may lack one
        node = ctx.scene.GetNthNode(n)
        if node.IsA("vtkMRMLStorableNode") and node.GetStorageNode() is None:
            node.AddDefaultStorageNode()
    if not ctx.scene.WriteToMRB(str(path)):
        raise RuntimeError(f"Slicer could not write the scene bundle {path}")
    return path


def load_mrb(path: str | Path, ctx: SceneContext | None = None) -> SceneContext:
    """Read a .mrb into `ctx` (default: a fresh headless scene) and return the context."""
    ctx = ctx or new_scene_context()
    if not ctx.scene.ReadFromMRB(str(Path(path).resolve())):
        raise RuntimeError(f"Slicer could not read the scene bundle {path}")
    return ctx
