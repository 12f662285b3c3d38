"""The annotators' pseudo-label review queue as scene state: a table node (one row per weakly labelled
case: its name, the teacher's uncertainty, the review status, the segment provenance, the model) whose
node references point at each case's volume and pseudo-label segmentation, in row order. Saved and
reloaded with the scene (.mrb) like any table; the Tables module shows it as it is.

Status: "pending" (not reviewed), "skipped" (look later), "accepted" (the annotator confirmed it, edited
or not), "rejected" (unusable: left out of training). Reviewing goes most uncertain first; skipped cases
come back after every pending one."""
from __future__ import annotations

import vtk

from slicerleap.errors import BadInputError
from slicerleap.scene.provenance import set_provenance, was_edited

ROLE = "review-queue"
VOLUME_ROLE = "SlicerLeap.queueVolume"
LABEL_ROLE = "SlicerLeap.queuePseudoLabel"
STATUSES = ("pending", "skipped", "accepted", "rejected")
_COLUMNS = (("case", vtk.vtkStringArray), ("uncertainty", vtk.vtkDoubleArray), ("status", vtk.vtkStringArray),
            ("provenance", vtk.vtkStringArray), ("model", vtk.vtkStringArray))


class ReviewQueue:
    """A view on the queue's table node; every change is written to the node at once."""

    def __init__(self, table):
        self.table = table

    @classmethod
    def create(cls, ctx, name: str = "Pseudo-label review queue") -> "ReviewQueue":
        table = ctx.scene.AddNewNodeByClass("vtkMRMLTableNode", ctx.scene.GenerateUniqueName(name))
        for column, kind in _COLUMNS:
            array = kind()
            array.SetName(column)
            table.AddColumn(array)
        table.SetAttribute("SlicerLeap.role", ROLE)
        return cls(table)

    @classmethod
    def find(cls, ctx) -> "ReviewQueue | None":
        """The newest queue in the scene, if any."""
        tables = ctx.scene.GetNodesByClass("vtkMRMLTableNode")
        found = [tables.GetItemAsObject(n) for n in range(tables.GetNumberOfItems())]
        found = [t for t in found if t.GetAttribute("SlicerLeap.role") == ROLE]
        return cls(found[-1]) if found else None

    # -- rows -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.table.GetTable().GetNumberOfRows()

    def _cell(self, row: int, column: str) -> str:
        return self.table.GetCellText(row, self.table.GetColumnIndex(column))

    def _set(self, row: int, column: str, value) -> None:
        self.table.SetCellText(row, self.table.GetColumnIndex(column), str(value))

    def add(self, volume_node, segmentation_node, uncertainty: float, model_id: str) -> int:
        """Append a pending case (its pseudo-label's segments are tagged "pseudo")."""
        row = self.table.AddEmptyRow()
        for column, value in (("case", volume_node.GetName()), ("uncertainty", f"{uncertainty:.5f}"), ("status", "pending"),
                              ("provenance", "pseudo"), ("model", model_id)):
            self._set(row, column, value)
        self.table.AddNodeReferenceID(VOLUME_ROLE, volume_node.GetID())
        self.table.AddNodeReferenceID(LABEL_ROLE, segmentation_node.GetID())
        set_provenance(segmentation_node, "pseudo", model_id, reference_node=volume_node)
        return row

    def row(self, row: int) -> dict:
        """case, uncertainty, status, provenance, model, and the row's volume and segmentation nodes."""
        if not 0 <= row < len(self):
            raise BadInputError(f"The review queue has no row {row}.", f"Pick a row between 0 and {len(self) - 1}.")
        return {"row": row, "case": self._cell(row, "case"), "uncertainty": float(self._cell(row, "uncertainty")),
                "status": self._cell(row, "status"), "provenance": self._cell(row, "provenance"), "model": self._cell(row, "model"),
                "volume": self.table.GetNthNodeReference(VOLUME_ROLE, row),
                "segmentation": self.table.GetNthNodeReference(LABEL_ROLE, row)}

    def rows(self) -> list[dict]:
        return [self.row(n) for n in range(len(self))]

    def counts(self) -> dict[str, int]:
        statuses = [r["status"] for r in self.rows()]
        return {s: statuses.count(s) for s in STATUSES}

    def next_case(self) -> dict | None:
        """The most uncertain pending case, else the most uncertain skipped one; None when all are decided."""
        for status in ("pending", "skipped"):
            waiting = [r for r in self.rows() if r["status"] == status]
            if waiting:
                return max(waiting, key=lambda r: r["uncertainty"])
        return None

    # -- decisions -------------------------------------------------------------------------------
    def accept(self, row: int, how: str | None = None) -> dict:
        """The annotator confirms the (possibly edited) pseudo-label: provenance becomes "corrected" when
        its voxels changed since the model made it, else stays "pseudo". `how` says how it was corrected
        (e.g. "interactive, 4 clicks"): the queue shows "corrected (interactive, 4 clicks)"."""
        r = self.row(row)
        kind = "corrected" if was_edited(r["segmentation"], r["volume"]) else "pseudo"
        if kind == "corrected":
            set_provenance(r["segmentation"], "corrected", r["model"], detail=how)
        self._set(row, "provenance", f"{kind} ({how})" if kind == "corrected" and how else kind)
        self._set(row, "status", "accepted")
        return self.row(row)

    def skip(self, row: int) -> dict:
        self._set(row, "status", "skipped")
        return self.row(row)

    def reject(self, row: int) -> dict:
        self._set(row, "status", "rejected")
        return self.row(row)

    def training_split(self) -> tuple[list[dict], list[dict]]:
        """(accepted rows: their segmentation is a label, pending or skipped rows: still pseudo-labelled)."""
        rows = self.rows()
        return [r for r in rows if r["status"] == "accepted"], [r for r in rows if r["status"] in ("pending", "skipped")]
