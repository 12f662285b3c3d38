"""Scene layer: the only part of the engine that imports `slicer` (MRML classes).

Works on the pip package slicer-core (headless) and inside the Slicer desktop application.
"""
from .context import SceneContext, get_scene_context, new_scene_context
from .volumes import node_to_volume, volume_to_node, save_node, load_node
from .segmentations import labels_to_segmentation_node, segmentation_node_to_labels
from .transforms import displacement_to_grid_transform_node, grid_transform_node_to_displacement
from .mrb import save_mrb, load_mrb
from .job_runner import SceneJob

__all__ = [
    "SceneContext", "get_scene_context", "new_scene_context",
    "node_to_volume", "volume_to_node", "save_node", "load_node",
    "labels_to_segmentation_node", "segmentation_node_to_labels",
    "displacement_to_grid_transform_node", "grid_transform_node_to_displacement",
    "save_mrb", "load_mrb", "SceneJob",
]
