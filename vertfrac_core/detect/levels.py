"""Consistent level labels down the spine: a Viterbi decoder over the detections (cranial to
caudal) whose transitions follow the anatomical order, allowing the T13 and L6 variants and at
most one missed vertebra (with a penalty). Two extra states take detections outside the graded
range (C3-C6 above, the sacrum below) so that they can never force a level to repeat; they are
dropped from the output. Confidences are the posterior marginals (:func:`assign_levels`), or, with
two level models, the chosen level's marginal averaged over both (:func:`agreed_confidence`)."""

from __future__ import annotations

import numpy as np

from vertfrac_core.anatomy import GRADED_LEVELS

_IDX = {lv: i for i, lv in enumerate(GRADED_LEVELS)}
ABOVE, BELOW = "above", "below"  # not graded: cervical above C7, sacrum below the last lumbar
STATES = (*GRADED_LEVELS, ABOVE, BELOW)
NEG = -1e9
EXTRA_EMISSION = np.log(0.02)
#: a level stated with at least this confidence is "confident"; below it, the picture marks the
#: level with "?" and the evaluation counts it apart (its accuracy is measured there)
CONFIDENT_LEVEL = 0.75


def level_label(row) -> str:  # noqa: ANN001 - a dict, a pandas row, anything with .get and []
    """The level as written for a reader: with "?" when its ``level_confidence`` is below
    ``CONFIDENT_LEVEL`` (the two level models disagree, or the anatomical context overruled
    both: typically a short field of view with no rib end, sacrum or neck to count from), so
    that nobody reads a guessed level as a counted one. A missing or NaN confidence leaves the level as it is."""
    conf = row.get("level_confidence")
    return f"{row['level']}?" if conf is not None and conf < CONFIDENT_LEVEL else str(row["level"])


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
    states, marg = _decode(probs)
    conf = np.array([marg[i, STATES.index(s)] for i, s in enumerate(states)])
    return states, np.clip(conf, 0.0, 1.0)


def agreed_confidence(states: list[str], *model_probs: np.ndarray) -> np.ndarray:
    """Confidence of the chosen ``states`` when several level models were combined: per body,
    the posterior marginal of its state under each model decoded on its own, averaged. Models
    that agree give what each gives; where they disagree the confidence falls to about 1/2 (or
    less), however sure each one is. The two level models see different things (the detector's
    head a few vertebrae, the sequence network the whole column): on a scan unlike their
    training phantoms they tend to disagree, and the sharp posterior of their product would
    then state a guess as a certainty."""
    if not states:
        return np.zeros(0)
    idx = [STATES.index(s) for s in states]
    margs = [_decode(p)[1] for p in model_probs]
    conf = np.mean([[m[i, k] for i, k in enumerate(idx)] for m in margs], axis=0)
    return np.clip(conf, 0.0, 1.0)


def _decode(probs: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Viterbi path (state names) and posterior marginals (N, n_states) of the chain."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return [], np.zeros((0, len(STATES)))
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
    return [STATES[p] for p in path], marg
