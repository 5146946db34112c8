"""Consistent level labels down the spine: a Viterbi decoder over the detections (cranial to
caudal) whose transitions follow the anatomical order, allowing the T13 and L6 variants and at
most one missed vertebra (with a penalty). Two extra states take detections outside the graded
range (C3-C6 above, the sacrum below) so that they can never force a level to repeat; they are
dropped from the output. Confidences are the posterior marginals."""

from __future__ import annotations

import numpy as np

from vertfrac_core.anatomy import GRADED_LEVELS

_IDX = {lv: i for i, lv in enumerate(GRADED_LEVELS)}
ABOVE, BELOW = "above", "below"  # not graded: cervical above C7, sacrum below the last lumbar
STATES = (*GRADED_LEVELS, ABOVE, BELOW)
NEG = -1e9
EXTRA_EMISSION = np.log(0.02)


def _transition_logp(skip_penalty: float = 4.0) -> np.ndarray:
    """log-probabilities of going from state a (row) to state b (column) one detection down."""
    n = len(GRADED_LEVELS)
    t = np.full((n + 2, n + 2), NEG)
    order = list(GRADED_LEVELS)  # C7 T1..T12 T13 L1..L5 L6

    def nxt(i: int) -> list[int]:
        out = [i + 1] if i + 1 < n else []
        if order[i] == "T12":
            out.append(_IDX["L1"])  # T13 absent (the usual case)
        if order[i] == "L5":
            out = [_IDX["L6"]]
        return out

    for i in range(n):
        for j in nxt(i):
            t[i, j] = np.logaddexp(t[i, j], -2.5 if order[j] in ("T13", "L6") else 0.0)
            for k in nxt(j):  # one missed vertebra
                t[i, k] = np.logaddexp(t[i, k], -skip_penalty)
    a, b = n, n + 1
    t[a, a] = 0.0
    t[a, _IDX["C7"]] = 0.0
    t[a, _IDX["T1"]] = -skip_penalty
    for lv in ("L5", "L6"):
        t[_IDX[lv], b] = 0.0
    t[_IDX["L4"], b] = -skip_penalty
    t[b, b] = 0.0
    return t


_T = _transition_logp()


def assign_levels(probs: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(states, confidences) for detections with level probabilities (N, n_levels), top first.
    A state is a level name, or ``"above"`` / ``"below"`` for bodies outside C7-L6."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return [], np.zeros(0)
    n = len(probs)
    e = np.concatenate([np.log(np.clip(probs, 1e-9, 1.0)), np.full((n, 2), EXTRA_EMISSION)], axis=1)
    k = e.shape[1]
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
    a = np.zeros((n, k))
    a[0] = e[0]
    for i in range(1, n):
        a[i] = np.logaddexp.reduce(a[i - 1][:, None] + _T, axis=0) + e[i]
    b = np.zeros((n, k))
    for i in range(n - 2, -1, -1):
        b[i] = np.logaddexp.reduce(_T + (e[i + 1] + b[i + 1])[None, :], axis=1)
    z = np.logaddexp.reduce(a[-1])
    marg = np.exp(np.clip(a + b - z, -700.0, 0.0))
    conf = np.array([marg[i, p] for i, p in enumerate(path)])
    return [STATES[p] for p in path], np.clip(conf, 0.0, 1.0)
