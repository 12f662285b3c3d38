"""Slice-level labels ("this slice shows lesion") as a table node the user can edit in the Tables module.

One row per stored slice of the volume (K index, as Slicer's slice offset slider counts in the volume's
own IJK): columns "slice" and "lesion" (1 yes, 0 no, -1 not looked at). The table is referenced from
the volume node, so it is saved and reloaded with the scene (.mrb)."""
from __future__ import annotations

import numpy as np
import vtk

from ..errors import BadInputError
from ..segmentation.slice_data import ranges_to_flags
from .context import SceneContext

REFERENCE_ROLE = "SlicerLeap.sliceLabels"


def slice_label_table(ctx: SceneContext, volume_node, create: bool = True):
    """The volume's slice-label table; a new one (every slice "not looked at") when it has none and `create`."""
    table = volume_node.GetNodeReference(REFERENCE_ROLE)
    if table is not None or not create:
        return table
    k = volume_node.GetImageData().GetDimensions()[2]
    table = ctx.scene.AddNewNodeByClass("vtkMRMLTableNode", f"{volume_node.GetName()} slice labels")
    for name, values in (("slice", range(k)), ("lesion", [-1] * k)):
        column = vtk.vtkIntArray()
        column.SetName(name)
        for v in values:
            column.InsertNextValue(v)
        table.AddColumn(column)
    table.SetAttribute("SlicerLeap.role", "slice-labels")
    volume_node.SetNodeReferenceID(REFERENCE_ROLE, table.GetID())
    return table


def set_slice_labels(table, flags) -> None:
    """Write per-slice flags (1, 0 or -1) into the table."""
    t = table.GetTable()
    column = t.GetColumnByName("lesion")
    flags = np.asarray(flags, dtype=int).ravel()
    if flags.size != t.GetNumberOfRows():
        raise BadInputError(f"{flags.size} slice flags for a volume with {t.GetNumberOfRows()} slices.", "Give one flag per slice.")
    for row, value in enumerate(flags):
        column.SetValue(row, int(value))
    t.Modified()
    table.Modified()


def set_lesion_ranges(table, ranges) -> None:
    """"Lesion present in slices k1..k2" (inclusive, 0-based; several ranges allowed); every other slice: no lesion."""
    set_slice_labels(table, ranges_to_flags(ranges, table.GetTable().GetNumberOfRows()))


def read_slice_labels(table) -> np.ndarray:
    """(K,) int8 flags; cells typed as text in the Tables module are read as numbers; blanks count as unknown."""
    t = table.GetTable()
    column = t.GetColumnByName("lesion")
    if column is None:
        raise BadInputError(f"The table '{table.GetName()}' has no 'lesion' column.",
                            "Create slice labels from the SKSSegmentation panel, or add a 'lesion' column (1/0/-1 per slice).")
    values = []
    for row in range(t.GetNumberOfRows()):
        text = column.GetVariantValue(row).ToString().strip()
        try:
            values.append(int(float(text)) if text else -1)
        except ValueError:
            raise BadInputError(f"Row {row} of '{table.GetName()}' has lesion = '{text}'.", "Use 1 (lesion), 0 (none) or -1 (unknown).") from None
    return np.clip(np.asarray(values, dtype=np.int8), -1, 1)
