from __future__ import annotations

import numpy as np
import pytest

from vertfrac_core.eval.metrics import point_in_polygon, roc_auc, sens_spec, weighted_kappa


def test_auc_reference_values() -> None:
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert roc_auc(np.array([1, 2, 3.0]), np.array([0, 1, 1])) == 1.0
    assert roc_auc(np.array([1, 1, 1.0]), np.array([0, 1, 1])) == 0.5
    assert np.isnan(roc_auc(np.array([1.0]), np.array([1])))
    rng = np.random.default_rng(0)
    s, y = rng.normal(size=400), rng.random(400) < 0.3
    # compare with the pairwise definition
    pos, neg = s[y], s[~y]
    ref = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert roc_auc(s, y) == pytest.approx(ref)


def test_kappa_and_sens_spec() -> None:
    g = np.array([0, 0, 1, 2, 3, 3])
    assert weighted_kappa(g, g) == pytest.approx(1.0)
    assert weighted_kappa(g, np.array([0, 0, 0, 0, 0, 0])) == pytest.approx(0.0)
    assert sens_spec(np.array([1, 0, 1, 0]), np.array([1, 1, 0, 0])) == (0.5, 0.5)


def test_point_in_polygon() -> None:
    sq = np.array([[0, 0], [0, 10], [10, 10], [10, 0.0]])
    assert point_in_polygon(np.array([5, 5]), sq)
    assert not point_in_polygon(np.array([15, 5]), sq)


def test_level_calibration_counts_confident_levels_apart() -> None:
    from vertfrac_core.eval.detector import Tally

    t = Tally()
    truth = [{"level": lv, "grade": 0, "centre": np.zeros(3), "keypoints": np.zeros((6, 3))}
             for lv in ("L1", "L2", "L3", "L4")]
    pred = [dict(p, level=lv, level_confidence=c, loss=0.0, grade=0)
            for p, lv, c in zip(truth, ("L1", "L2", "T12", "T11"), (0.99, 0.9, 0.5, 0.8), strict=True)]
    t.add_case(pred, truth, lambda p, q: p is not None and p["centre"] is q["centre"])
    s = t.summary()
    assert s["level_accuracy"] == 0.5
    assert s["level_confident_share"] == 0.75  # 0.99, 0.9, 0.8 >= 0.75
    assert abs(s["level_accuracy_confident"] - 2 / 3) < 1e-9 and s["level_accuracy_unsure"] == 0.0
