"""The standard simulated annotator (SPPNet, PE-MED): the next click goes to the largest error region — a positive
click in the largest false-negative part, a negative one in the largest false-positive part — at the voxel
farthest from that part's border (Euclidean distance in mm). With an `rng`, the click is drawn among the voxels at
least 80 % as deep, so that seeds differ. Scores: Dice after each click, NoC@85 / NoC@90 (clicks needed to reach
that Dice; the cap + 1 when it is never reached)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..metrics import overlap_metrics
from .session import InteractiveSession


def next_click(mask: np.ndarray, truth: np.ndarray, spacing_kji, rng: np.random.Generator | None = None):
    """((k, j, i), positive) of the next click, or None when the mask equals the truth."""
    best = None
    for positive, error in ((True, truth & ~mask), (False, mask & ~truth)):
        parts, n = ndimage.label(error)
        if n == 0:
            continue
        sizes = np.bincount(parts.ravel())[1:]
        largest = int(np.argmax(sizes)) + 1
        if best is None or sizes[largest - 1] > best[0]:
            best = (sizes[largest - 1], positive, parts == largest)
    if best is None:
        return None
    _, positive, part = best
    box = ndimage.find_objects(part.astype(np.uint8))[0]
    depth = ndimage.distance_transform_edt(np.pad(part[box], 1), sampling=spacing_kji)[1:-1, 1:-1, 1:-1]
    if rng is None:
        voxel = np.unravel_index(int(np.argmax(depth)), depth.shape)
    else:
        candidates = np.argwhere(depth >= 0.8 * depth.max())
        voxel = candidates[rng.integers(len(candidates))]
    return tuple(int(v) + s.start for v, s in zip(voxel, box)), positive


def simulate_clicks(session: InteractiveSession, truth: np.ndarray, clicks: int,
                    rng: np.random.Generator | None = None) -> list[float]:
    """Click `clicks` times where the simulated annotator would; Dice (against `truth`) after each click."""
    truth = np.asarray(truth) > 0
    spacing_kji = session.volume.spacing[::-1]
    scores = []
    for _ in range(clicks):
        click = next_click(session.mask_array, truth, spacing_kji, rng)
        if click is None:
            scores.append(1.0)
            continue
        voxel, positive = click
        session.add_point(session.volume.ijk_to_ras_points([voxel[::-1]])[0], positive)
        scores.append(float(overlap_metrics(session.mask_array, truth)["dice"]))
    return scores


def clicks_to_reach(scores: list[float], target: float) -> int:
    """NoC@target: the first click count whose Dice reaches `target`; len(scores) + 1 when none does."""
    return next((n for n, s in enumerate(scores, 1) if s >= target), len(scores) + 1)
