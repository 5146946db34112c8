"""Detector target codec round trip and the level sequence decoder."""

from __future__ import annotations

import numpy as np

from vertfrac_core.anatomy import GRADED_LEVELS
from vertfrac_core.detect.codec import decode, encode, target_as_output
from vertfrac_core.detect.levels import agreed_confidence, assign_levels


def _spine(n: int = 8, start: int = 12):
    rng = np.random.default_rng(0)
    centres, kps = [], []
    for k in range(n):
        c = np.array([20.0 + 27.3 * k + rng.uniform(-1, 1), 70.0 + rng.uniform(-3, 3)])
        h, d = 22 + rng.uniform(-2, 2), 16 + rng.uniform(-1, 1)
        kp = np.array([[-h / 2, -d], [h / 2, -d], [-h / 2 + 2, 0], [h / 2 - 2, 0], [-h / 2, d], [h / 2, d]]) + c
        centres.append(c)
        kps.append(kp)
    return np.array(centres), np.array(kps), list(GRADED_LEVELS[start:start + n])


def test_round_trip_recovers_keypoints_and_levels() -> None:
    c, kp, lv = _spine()
    t = encode((260, 161), c, kp, lv)
    dets = decode(target_as_output(t))
    assert len(dets) == len(c)
    for d, k in zip(dets, kp, strict=True):
        assert np.abs(d.keypoints_rc - k).max() < 1e-3
    levels, conf = assign_levels(np.stack([d.level_probs for d in dets]))
    assert levels == lv and (conf[:-1] > 0.99).all() and conf[-1] > 0.7  # L6 is a rare variant


def test_viterbi_fixes_a_single_wrong_label() -> None:
    _, _, lv = _spine()
    probs = np.full((len(lv), len(GRADED_LEVELS)), 0.01)
    for i, name in enumerate(lv):
        probs[i, GRADED_LEVELS.index(name)] = 0.9
    probs[3] = 0.01
    probs[3, GRADED_LEVELS.index("C7")] = 0.9  # a confident but impossible label
    levels, _ = assign_levels(probs / probs.sum(1, keepdims=True))
    assert levels == lv


def test_t13_and_l6_variants_are_possible() -> None:
    seq = ["T11", "T12", "T13", "L1", "L2", "L3", "L4", "L5", "L6"]
    probs = np.full((len(seq), len(GRADED_LEVELS)), 0.001)
    for i, name in enumerate(seq):
        probs[i, GRADED_LEVELS.index(name)] = 0.99
    levels, _ = assign_levels(probs)
    assert levels == seq


def test_empty() -> None:
    levels, conf = assign_levels(np.zeros((0, len(GRADED_LEVELS))))
    assert levels == [] and conf.size == 0
    assert decode(np.zeros((1 + 2 + 12 + len(GRADED_LEVELS), 10, 10), np.float32)) == []


def test_more_bodies_than_levels_never_repeat_a_level() -> None:
    """C3-C6 above and the sacrum below go to the extra states; no graded level repeats."""
    n = len(GRADED_LEVELS) + 5
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(len(GRADED_LEVELS)), size=n)
    levels, conf = assign_levels(probs)
    graded = [lv for lv in levels if lv in GRADED_LEVELS]
    assert len(graded) == len(set(graded))
    assert np.isfinite(conf).all()
    seq = ["C7", "T1", "T2"]
    p = np.full((5, len(GRADED_LEVELS)), 0.001)
    for i, name in enumerate(seq):
        p[i + 1, GRADED_LEVELS.index(name)] = 0.99
    p[0] = p[4] = 1.0 / len(GRADED_LEVELS)  # an unsure body above C7 and one below T2
    levels, _ = assign_levels(p)
    assert levels[1:4] == seq and levels[0] == "above"


def _sure_of(seq: list[str], p: float = 0.97) -> np.ndarray:
    probs = np.full((len(seq), len(GRADED_LEVELS)), (1 - p) / (len(GRADED_LEVELS) - 1))
    for i, name in enumerate(seq):
        probs[i, GRADED_LEVELS.index(name)] = p
    return probs


def test_confidence_is_high_when_the_level_models_agree() -> None:
    seq = ["T12", "L1", "L2", "L3", "L4"]
    head, rows = _sure_of(seq, 0.9), _sure_of(seq, 0.97)
    levels, _ = assign_levels(head * rows / (head * rows).sum(1, keepdims=True))
    conf = agreed_confidence(levels, head, rows)
    assert levels == seq and (conf > 0.95).all(), conf


def test_confidence_falls_when_the_level_models_disagree() -> None:
    """Two sure models that disagree (as on a real lumbar crop: the detector's head read T9-L1,
    the sequence network L1-L5): their product's posterior is sharp whichever wins, but the
    stated confidence must not be."""
    head, rows = _sure_of(["T9", "T10", "T11", "T12", "L1"]), _sure_of(["L1", "L2", "L3", "L4", "L5"])
    prod = rows**0.85 * head**0.15  # as the detector weighs them
    levels, product_conf = assign_levels(prod / prod.sum(1, keepdims=True))
    assert levels == ["L1", "L2", "L3", "L4", "L5"]
    assert (product_conf > 0.9).all()  # what the former confidence said
    conf = agreed_confidence(levels, head, rows)
    assert (conf < 0.6).all(), conf
    # partly agreeing models: the bodies where they agree keep a high confidence
    rows2 = _sure_of(["T9", "T10", "T11", "L1", "L2"])
    conf2 = agreed_confidence(["T9", "T10", "T11", "T12", "L1"], head, rows2)
    assert (conf2[:2] > 0.9).all() and (conf2[3:] < 0.6).all(), conf2
    assert agreed_confidence([], head[:0], rows[:0]).size == 0
