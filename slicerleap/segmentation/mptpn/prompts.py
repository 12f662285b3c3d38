"""Text prompts for MPTPN: written from a mask for training, or from a click / box in the viewer at inference.

Both paths use one vocabulary so that a prompt built from an annotator's box reads like the prompts the
model was trained on (the paper's hand-crafted style: count, size, shape, position). Positions are in the
displayed slice: rows run top -> bottom ("upper", "middle", "lower"), columns left -> right as the viewer
shows them ("left", "centre", "right"), not patient anatomy, so a prompt means what the user sees.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage import measure

COUNT_WORDS = {2: "two", 3: "three"}
SIZE_CLASSES = ((0.01, "small"), (0.05, "medium"))  # area fraction of the slice below which a region has that size
SHAPE_CLASSES = ((0.6, "round"), (0.9, "oval"))  # eccentricity of the fitted ellipse below which it has that shape


@dataclass(frozen=True)
class Region:
    """One object as a prompt sees it: centre (row, col) in pixels, area in pixels, ellipse eccentricity."""

    centre: tuple[float, float]
    area: float
    eccentricity: float


def position_words(centre: tuple[float, float], shape: tuple[int, int]) -> str:
    """'upper left', 'middle centre' -> 'centre', 'lower right', … on a 3 x 3 grid over the slice."""
    row = ("upper", "middle", "lower")[min(2, int(3 * centre[0] / shape[0]))]
    col = ("left", "centre", "right")[min(2, int(3 * centre[1] / shape[1]))]
    if row == "middle" and col == "centre":
        return "centre"
    return col if row == "middle" else f"{row} {col}"


def size_word(area: float, shape: tuple[int, int]) -> str:
    fraction = area / float(shape[0] * shape[1])
    return next((word for limit, word in SIZE_CLASSES if fraction < limit), "large")


def shape_word(eccentricity: float) -> str:
    return next((word for limit, word in SHAPE_CLASSES if eccentricity < limit), "elongated")


def regions_from_mask(mask: np.ndarray, min_pixels: int = 5) -> list[Region]:
    """Connected objects of a 2D mask, largest first; specks under `min_pixels` are not worth a word."""
    if mask.ndim != 2:
        raise ValueError(f"a text prompt describes one 2D slice; got an array of shape {mask.shape}")
    props = [p for p in measure.regionprops(measure.label(mask > 0)) if p.area >= min_pixels]
    props.sort(key=lambda p: -p.area)
    return [Region((float(p.centroid[0]), float(p.centroid[1])), float(p.area), float(p.eccentricity)) for p in props]


def region_from_box(row_range: tuple[float, float], col_range: tuple[float, float]) -> Region:
    """The object an annotator's box stands for: the inscribed ellipse (its area, its eccentricity)."""
    height, width = abs(row_range[1] - row_range[0]), abs(col_range[1] - col_range[0])
    if height <= 0 or width <= 0:
        raise ValueError("a box prompt needs a box with height and width; drag a rectangle rather than clicking")
    major, minor = max(height, width), min(height, width)
    return Region(((row_range[0] + row_range[1]) / 2, (col_range[0] + col_range[1]) / 2),
                  float(np.pi * height * width / 4), float(np.sqrt(1 - (minor / major) ** 2)))


def region_from_click(point: tuple[float, float], shape: tuple[int, int], size: str = "small") -> Region:
    """A click says where, not how big: the user picks the size word (default small), shape is round."""
    fractions = {"small": 0.005, "medium": 0.03, "large": 0.08}
    if size not in fractions:
        raise ValueError(f"size must be one of {sorted(fractions)}, not {size!r}")
    return Region((float(point[0]), float(point[1])), fractions[size] * shape[0] * shape[1], 0.0)


def describe(regions: list[Region], shape: tuple[int, int], target: str = "lesion") -> str:
    """The prompt for a slice: 'one small round lesion in the upper left', 'two lesions: …', 'no lesion'."""
    if not regions:
        return f"no {target}"
    words = [(size_word(r.area, shape), shape_word(r.eccentricity), position_words(r.centre, shape)) for r in regions[:3]]
    if len(regions) == 1:
        size, form, where = words[0]
        return f"one {size} {form} {target} in the {where}"
    count = COUNT_WORDS.get(len(regions), "several")
    return f"{count} {target}s: " + ", ".join(f"{size} {form} in the {where}" for size, form, where in words) + \
        (", and more" if len(regions) > 3 else "")


def prompt_from_mask(mask: np.ndarray, target: str = "lesion", min_pixels: int = 5) -> str:
    return describe(regions_from_mask(mask, min_pixels), mask.shape, target)


_MIRRORED = {"upper": "lower", "lower": "upper", "left": "right", "right": "left"}


def mislocate(prompt: str) -> str:
    """The same prompt pointing at the opposite place (upper <-> lower, left <-> right; 'the centre' -> 'the upper
    left'): for measuring whether a model reads where a prompt says the object is."""
    words = [_MIRRORED.get(w.rstrip(","), w.rstrip(",")) + ("," if w.endswith(",") else "") for w in prompt.split(" ")]
    return " ".join(words).replace("the centre", "the upper left")
