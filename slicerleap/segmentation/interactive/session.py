"""`InteractiveSession`: a mask built or corrected by clicks, boxes and scribbles, with undo and reset.

Each interaction changes the mask only inside its region (region.py: a click reaches `reach_mm`, default 30 mm,
along every axis around it; a box acts inside itself) and is undone by putting that region's previous voxels back.
The session may start from an existing mask (a pseudo-label to correct)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ...errors import BadInputError
from ...transforms.input_checks import check_volume_content
from ...volume import Volume
from . import region as regions
from .grow_from_clicks import GrowFromClicks
from .prompts import BoxPrompt, Click, Scribble, scribble_voxels, voxels_of

REACH_MM = 30.0


@dataclass
class Interaction:
    prompt: object
    region: regions.Region
    before: np.ndarray  # the region's mask before the interaction
    seconds: float
    seeds: np.ndarray  # the prompt's voxels (k, j, i) on the whole image


def refiner_for(model: str | None, volume: Volume, force: bool = False):
    """"grow-from-clicks" (classical), a click network from the catalog by id (its domain checked), or, for None, the
    catalog's default click network when the image is inside its domain, else grow-from-clicks (a warning says why)."""
    if model == GrowFromClicks.name:
        return GrowFromClicks()
    from .click_net_refiner import ClickNetRefiner

    return ClickNetRefiner.default_or_classical(volume) if model is None else ClickNetRefiner.from_catalog(model, volume, force)


class InteractiveSession:
    def __init__(self, volume: Volume, model: str | None = None, initial_mask: Volume | np.ndarray | None = None,
                 reach_mm: float = REACH_MM, force: bool = False):
        if not np.isfinite(reach_mm) or reach_mm <= 0:
            raise BadInputError(f"The reach of a click is {reach_mm} mm.", "Give a positive distance in mm (default 30).")
        check_volume_content(volume, "image to click on", min_size=2)  # vector, NaN or constant images refused
        self.volume = volume
        self.image = np.asarray(volume.array, dtype=np.float32)
        self.refiner = refiner_for(model, volume, force)
        self.warnings: list[str] = list(self.refiner.warnings)
        self.reach_mm = float(reach_mm)
        self.initial = self._initial_mask(initial_mask)
        self._mask = self.initial.copy()
        self.history: list[Interaction] = []

    def _initial_mask(self, initial) -> np.ndarray:
        if initial is None:
            return np.zeros(self.image.shape, bool)
        if isinstance(initial, Volume):
            if not initial.same_geometry(self.volume, atol=1e-3):
                raise BadInputError("The mask to correct is not on the image's grid.",
                                    "Resample the segmentation to the image (Slicer does this when it is exported with the image as reference).")
            initial = initial.array
        initial = np.asarray(initial)
        if initial.shape != self.image.shape:
            raise BadInputError(f"The mask to correct has shape {initial.shape}, the image {self.image.shape}.",
                                "Give a mask on the image's grid.")
        return initial > 0

    # -- interactions ---------------------------------------------------------------------------
    def add_point(self, ras, positive: bool = True) -> regions.Region:
        """A click at a RAS position: positive adds what is like it around it, negative removes it."""
        seeds = voxels_of(self.volume, [ras])
        return self._apply(Click(tuple(map(float, ras)), positive), regions.around_voxels(self.volume, seeds, self.reach_mm), seeds)

    def add_box(self, ras_min, ras_max) -> regions.Region:
        """A box around the structure (two opposite RAS corners): the mask inside it becomes the object at its centre."""
        region = regions.inside_box(self.volume, ras_min, ras_max)
        if regions.size_of(region) == 0:
            raise BadInputError("The box holds no voxel of the image.", "Draw the box over the structure, on the image.")
        centre = np.array([[(s.start + s.stop - 1) // 2 for s in region]])
        inside = regions.voxels_in_box(self.volume.crop(region), ras_min, ras_max)  # on a tilted grid: not the whole region
        return self._apply(BoxPrompt(tuple(map(float, ras_min)), tuple(map(float, ras_max))), region, centre, inside)

    def add_scribble(self, ras_points, positive: bool = True) -> regions.Region:
        """A stroke through RAS points: every voxel it crosses is a click of the same sign."""
        points = np.asarray(ras_points, dtype=float)
        if points.ndim != 2 or points.shape[1] != 3 or len(points) < 1:
            raise BadInputError(f"A scribble needs RAS points (n x 3); got shape {points.shape}.", "Give the stroke's points in mm.")
        seeds = scribble_voxels(self.volume, points)
        prompt = Scribble(tuple(map(tuple, points.tolist())), positive)
        return self._apply(prompt, regions.around_voxels(self.volume, seeds, self.reach_mm), seeds)

    def _apply(self, prompt, region: regions.Region, seeds_kji: np.ndarray, inside: np.ndarray | None = None) -> regions.Region:
        """`inside`: the region's voxels the prompt may change (default all)."""
        started = time.perf_counter()
        offset = np.array([s.start for s in region])
        before = self._mask[region].copy()
        after = self.refiner.refine(self.image[region], before, prompt, seeds_kji - offset, self.volume.spacing[::-1],
                                    self._clicks_in(region, prompt, seeds_kji))
        self._mask[region] = after if inside is None else np.where(inside, after, before)
        self.history.append(Interaction(prompt, region, before, time.perf_counter() - started, seeds_kji))
        return region

    def _clicks_in(self, region: regions.Region, prompt, seeds_kji) -> list:
        """[(voxel in the region, positive)] of every click and scribble so far inside the region, this one last."""
        low, high = np.array([s.start for s in region]), np.array([s.stop for s in region])
        signed = [(h.seeds, h.prompt.positive) for h in self.history if not isinstance(h.prompt, BoxPrompt)]
        if not isinstance(prompt, BoxPrompt):
            signed.append((seeds_kji, prompt.positive))
        return [(tuple(v - low), positive) for seeds, positive in signed for v in seeds if np.all((v >= low) & (v < high))]

    def undo(self) -> regions.Region | None:
        """Take back the last interaction; the region it changed, or None when there was none."""
        if not self.history:
            return None
        last = self.history.pop()
        self._mask[last.region] = last.before
        return last.region

    def reset(self) -> None:
        """Back to the initial mask, every interaction forgotten."""
        self._mask = self.initial.copy()
        self.history.clear()

    # -- what the session holds -----------------------------------------------------------------
    @property
    def mask_array(self) -> np.ndarray:
        return self._mask

    @property
    def mask(self) -> Volume:
        """The current mask as a label Volume (0/1, uint8) on the image's grid."""
        return self.volume.with_array(self._mask.astype(np.uint8), interactive_model=self.refiner.name,
                                      interactions=len(self.history))

    @property
    def clicks(self) -> int:
        """Interactions so far (a box or a scribble counts as one)."""
        return len(self.history)
