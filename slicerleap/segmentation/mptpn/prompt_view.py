"""Where a text prompt's words point: the axial slice as Slicer's axial view shows it, fitted into the model's square.

Prompts say "upper left" about what the user sees. Slicer's axial (Red) view puts anterior at the top and the
patient's right on the screen's left (radiological convention). On a RAS-reoriented grid (i -> R, j -> A,
k -> S, see `reorient_to_ras_axes`) a slice array is indexed [j, i], so the view is that array with both
axes reversed. The view is then padded to a square (centred, zeros) and resized to the model's input size;
`from_model_input` undoes both so results land on the slice exactly where the model put them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def as_viewed(slice_ji: np.ndarray) -> np.ndarray:
    """A RAS-grid axial slice [j, i] as the axial view shows it (rows top -> bottom, columns left -> right).
    Its own inverse."""
    return slice_ji[..., ::-1, ::-1]


@dataclass(frozen=True)
class SquareFit:
    """How a (rows, cols) view went into the model's size x size input: centred zero padding, then resizing."""

    rows: int
    cols: int
    size: int

    @property
    def side(self) -> int:
        return max(self.rows, self.cols)

    @property
    def offset(self) -> tuple[int, int]:
        return (self.side - self.rows) // 2, (self.side - self.cols) // 2

    def to_model_input(self, views: np.ndarray, mode: str = "bilinear") -> torch.Tensor:
        """(B, rows, cols) views -> (B, 1, size, size) float tensor. `mode` "nearest" for masks."""
        r, c = self.offset
        square = np.zeros((views.shape[0], self.side, self.side), dtype=np.float32)
        square[:, r:r + self.rows, c:c + self.cols] = views
        x = torch.from_numpy(square)[:, None]
        if self.side == self.size:
            return x
        if mode == "nearest":
            return F.interpolate(x, size=(self.size, self.size), mode="nearest")
        return F.interpolate(x, size=(self.size, self.size), mode=mode, align_corners=False, antialias=self.side > self.size)

    def from_model_input(self, maps: torch.Tensor) -> np.ndarray:
        """(B, 1, size, size) maps (probabilities) -> (B, rows, cols) on the view, bilinear."""
        if self.side != self.size:
            maps = F.interpolate(maps.float(), size=(self.side, self.side), mode="bilinear", align_corners=False)
        r, c = self.offset
        return maps[:, 0, r:r + self.rows, c:c + self.cols].cpu().numpy()
