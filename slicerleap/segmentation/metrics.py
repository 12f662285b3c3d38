"""Overlap metrics of binary masks (one case, 3D): Dice, Jaccard, precision, recall."""
from __future__ import annotations

import numpy as np


def overlap_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Both empty counts as perfect agreement; a prediction that finds nothing has precision 0 when
    there was something to find (no false positive, but also nothing right)."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    return overlap_from_counts(np.logical_and(p, t).sum(), p.sum(), t.sum())


def overlap_from_counts(true_positives, predicted, true) -> dict[str, float]:
    """overlap_metrics from voxel counts (e.g. pooled over many cases), with the same rules for empty masks."""
    tp, np_, nt = float(true_positives), float(predicted), float(true)
    if np_ + nt == 0:
        return {"dice": 1.0, "jaccard": 1.0, "precision": 1.0, "recall": 1.0}
    return {"dice": 2 * tp / (np_ + nt), "jaccard": tp / (np_ + nt - tp),
            "precision": tp / np_ if np_ else 0.0, "recall": tp / nt if nt else 1.0}


def dice_per_class(pred: np.ndarray, truth: np.ndarray, values) -> dict[int, float]:
    return {int(v): overlap_metrics(pred == v, truth == v)["dice"] for v in values}


def prompted_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """MPTPN's five (per image, as its tables): Dice, mIoU (mean of foreground and background IoU), pixel accuracy,
    precision, recall."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    fg = overlap_metrics(p, t)
    background_iou = overlap_metrics(~p, ~t)["jaccard"]
    return {"dice": fg["dice"], "miou": (fg["jaccard"] + background_iou) / 2, "accuracy": float((p == t).mean()),
            "precision": fg["precision"], "recall": fg["recall"]}
