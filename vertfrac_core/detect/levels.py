"""Consistent level labels down the spine: a Viterbi decoder over the detections (cranial to
caudal) whose transitions follow the anatomical order, allowing the T13 and L6 variants and at
most one missed vertebra (with a penalty). Confidences are the posterior marginals."""

from __future__ import annotations

import numpy as np

from vertfrac_core.anatomy import GRADED_LEVELS

_IDX = {lv: i for i, lv in enumerate(GRADED_LEVELS)}


def _transition_logp(skip_penalty: float = 4.0) -> np.ndarray:
    """log-probabilities of going from level a (row) to level b (column) one detection down."""
    n = len(GRADED_LEVELS)
    t = np.full((n, n), -np.inf)
    order = list(GRADED_LEVELS)  # C7 T1..T12 T13 L1..L5 L6
    def nxt(i: int) -> list[int]:
        lv = order[i]
        out = []
        if i + 1 < n:
            out.append(i + 1)
        if lv == "T12":
            out.append(_IDX["L1"])  # T13 absent (the usual case)
        return out
    for i in range(n):
        for j in nxt(i):
            penalty = 0.0
            if order[j] in ("T13", "L6"):
                penalty = 2.5  # rare variants
            t[i, j] = np.logaddexp(t[i, j], -penalty)
            for k in nxt(j):  # one missed vertebra
                t[i, k] = np.logaddexp(t[i, k], -skip_penalty)
    if "L6" in _IDX:
        t[_IDX["L6"], :] = -np.inf
    return t


_T = _transition_logp()


def assign_levels(probs: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(levels, confidences) for detections with level probabilities (N, n_levels), top first."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return [], np.zeros(0)
    e = np.log(np.clip(probs, 1e-9, 1.0))
    n, k = e.shape
    fwd = np.zeros((n, k))
    fwd[0] = e[0]
    back = np.zeros((n, k), int)
    for i in range(1, n):
        s = fwd[i - 1][:, None] + _T
        back[i] = np.argmax(s, axis=0)
        fwd[i] = s[back[i], np.arange(k)] + e[i]
    path = [int(np.argmax(fwd[-1]))]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    path = path[::-1]
    # marginals by forward-backward in log space
    a = np.zeros((n, k))
    a[0] = e[0]
    for i in range(1, n):
        a[i] = np.logaddexp.reduce(a[i - 1][:, None] + _T, axis=0) + e[i]
    b = np.zeros((n, k))
    for i in range(n - 2, -1, -1):
        b[i] = np.logaddexp.reduce(_T + (e[i + 1] + b[i + 1])[None, :], axis=1)
    z = np.logaddexp.reduce(a[-1])
    marg = np.exp(a + b - z)
    conf = np.array([marg[i, p] for i, p in enumerate(path)])
    return [GRADED_LEVELS[p] for p in path], np.clip(conf, 0.0, 1.0)
