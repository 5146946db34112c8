"""Genant grade arithmetic, per-level references and the crush reference from neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from vertfrac_core.anatomy import Grade, reference
from vertfrac_core.morphometry import (
    DeformityType,
    GradingSettings,
    Heights,
    expected_hp,
    genant_grade,
    grade_spine,
    grade_vertebra,
    heights_from_keypoints,
)


@pytest.mark.parametrize(
    ("loss", "grade"),
    [(0.0, 0), (0.199, 0), (0.20, 1), (0.249, 1), (0.25, 2), (0.40, 2), (0.401, 3), (0.9, 3)],
)
def test_genant_thresholds(loss: float, grade: int) -> None:
    assert genant_grade(loss) == Grade(grade)


def test_genant_rejects_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        genant_grade(float("nan"))


def test_heights_from_keypoints_order() -> None:
    kp = np.array([[0, 0, 10], [0, 0, -10], [5, 0, 8], [5, 0, -8], [10, 0, 12], [10, 0, -12.0]])
    h = heights_from_keypoints(kp)
    assert (h.ha_mm, h.hm_mm, h.hp_mm) == (20.0, 16.0, 24.0)
    with pytest.raises(ValueError, match="6 keypoints"):
        heights_from_keypoints(kp[:5])


def test_natural_mid_thoracic_wedging_is_normal() -> None:
    ref = reference("T7")
    h = Heights(ha_mm=20 * ref.ha_hp, hm_mm=20 * ref.hm_hp, hp_mm=20.0)
    g = grade_vertebra("T7", h, hp_ref_mm=20.0)
    assert g.grade == Grade.NORMAL and g.type == DeformityType.NORMAL
    # without the level reference the same vertebra would lose 13 % (and more with concavity)
    g_naive = grade_vertebra("T7", h, 20.0, GradingSettings(use_level_reference=False))
    assert g_naive.height_loss > 0.13


def test_wedge_biconcave_crush_types() -> None:
    ref = reference("L1")
    hp = 25.0
    wedge = grade_vertebra("L1", Heights(hp * ref.ha_hp * 0.7, hp * ref.hm_hp, hp), hp)
    assert wedge.type == DeformityType.WEDGE and wedge.grade == Grade.MODERATE
    assert wedge.height_loss == pytest.approx(0.3, abs=1e-9)
    bic = grade_vertebra("L1", Heights(hp * ref.ha_hp, hp * ref.hm_hp * 0.55, hp), hp)
    assert bic.type == DeformityType.BICONCAVE and bic.grade == Grade.SEVERE
    crush = grade_vertebra("L1", Heights(hp * 0.78 * ref.ha_hp, hp * 0.78 * ref.hm_hp, hp * 0.78), hp)
    assert crush.type == DeformityType.CRUSH and crush.grade == Grade.MILD


def test_expected_hp_uses_neighbours_scaled_by_level() -> None:
    levels = ["T11", "T12", "L1", "L2", "L3"]
    hp = [reference(lv).hp_mm * 1.1 for lv in levels]
    assert expected_hp(2, levels, hp) == pytest.approx(reference("L1").hp_mm * 1.1)
    hp_frac = list(hp)
    hp_frac[3] *= 0.5  # a crushed neighbour barely moves the median reference
    assert expected_hp(2, levels, hp_frac) == pytest.approx(reference("L1").hp_mm * 1.1, rel=0.05)
    assert np.isnan(expected_hp(0, ["L1"], [25.0]))


def test_grade_spine_end_to_end() -> None:
    levels = ["L1", "L2", "L3"]
    kps = []
    for lv, loss in zip(levels, [0.0, 0.45, 0.0], strict=True):
        r = reference(lv)
        hp = r.hp_mm
        ha = hp * r.ha_hp * (1 - loss)
        kps.append(np.array([[30, 0, ha / 2], [30, 0, -ha / 2], [15, 0, hp * r.hm_hp / 2],
                             [15, 0, -hp * r.hm_hp / 2], [0, 0, hp / 2], [0, 0, -hp / 2]]))
    out = grade_spine(levels, kps)
    assert [int(g.grade) for _, g in out] == [0, 3, 0]
    assert out[1][1].type == DeformityType.WEDGE
