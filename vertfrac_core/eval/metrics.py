"""Metrics of the paper: matching, ROC AUC, sensitivity/specificity, linearly weighted kappa."""

from __future__ import annotations

import numpy as np


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); nan without both classes."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(allv.size)
    i = 0
    while i < allv.size:  # average ranks of ties
        j = i
        while j + 1 < allv.size and allv[j + 1] == allv[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    r = np.empty(allv.size)
    r[order] = ranks
    r_pos = r[: pos.size].sum()
    return float((r_pos - pos.size * (pos.size + 1) / 2.0) / (pos.size * neg.size))


def sens_spec(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    p = np.asarray(pred, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    sens = float((p & t).sum() / t.sum()) if t.sum() else float("nan")
    spec = float((~p & ~t).sum() / (~t).sum()) if (~t).sum() else float("nan")
    return sens, spec


def weighted_kappa(a: np.ndarray, b: np.ndarray, n_classes: int = 4) -> float:
    """Linearly weighted Cohen's kappa of two integer gradings."""
    a = np.asarray(a, dtype=int)
    b = np.asarray(b, dtype=int)
    if a.size == 0:
        return float("nan")
    o = np.zeros((n_classes, n_classes))
    np.add.at(o, (a, b), 1.0)
    o /= o.sum()
    e = np.outer(o.sum(1), o.sum(0))
    i, j = np.mgrid[0:n_classes, 0:n_classes]
    w = np.abs(i - j) / (n_classes - 1)
    denom = (w * e).sum()
    return float(1.0 - (w * o).sum() / denom) if denom > 0 else 1.0


def point_in_polygon(p: np.ndarray, poly: np.ndarray) -> bool:
    """Ray casting; ``poly`` (N, 2) in order."""
    x, y = float(p[0]), float(p[1])
    inside = False
    n = len(poly)
    for k in range(n):
        x1, y1 = poly[k]
        x2, y2 = poly[(k + 1) % n]
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1 + 1e-12) + x1:
            inside = not inside
    return inside


def body_outline_2d(kp: np.ndarray) -> np.ndarray:
    """The body's sagittal outline from 6 keypoints (KEYPOINT_NAMES order) as a polygon."""
    return np.asarray(kp)[[0, 2, 4, 5, 3, 1]]
