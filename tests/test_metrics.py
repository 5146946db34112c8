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
