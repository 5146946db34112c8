"""Vertebral morphometry: heights from the 6 keypoints, shape ratios, Genant grade and type.

Formula (configurable through :class:`GradingSettings`):

* heights ``ha``, ``hm``, ``hp`` (mm) are the 3D distances between the upper and lower keypoint at
  the anterior, middle and posterior wall;
* the three deformity ratios are measured against what a normal vertebra of that level shows:

  - wedge      ``rw = (ha / hp) / ref_ha_hp(level)``
  - biconcave  ``rb = (hm / hp) / ref_hm_hp(level)``
  - crush      ``rc = hp / hp_ref``, where ``hp_ref`` is the posterior height expected from the
    neighbouring vertebrae: the median, over up to ``neighbours`` levels on each side, of
    ``hp_j * ref_hp(level) / ref_hp(level_j)`` (reference heights from :mod:`vertfrac_core.anatomy`);
    with no neighbour the crush ratio is not used;

* height loss = ``1 - min(rw, rb, rc)`` clipped to [0, 1]; the type is the ratio that attains the
  minimum (``normal`` when the grade is 0);
* Genant grade: 0 below 20 %, 1 for 20-25 %, 2 for 25-40 %, 3 above 40 %.

Per-level reference ratios (``ha/hp`` about 0.87 at T6-T7, ``hm/hp`` about 0.85) mean that the
natural mid-thoracic wedging and endplate concavity are not called fractures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from vertfrac_core.anatomy import Grade, reference

#: Order of the 6 keypoints everywhere in vertfrac (upper = cranial endplate).
KEYPOINT_NAMES: tuple[str, ...] = (
    "anterior_upper",
    "anterior_lower",
    "middle_upper",
    "middle_lower",
    "posterior_upper",
    "posterior_lower",
)


class DeformityType(str, Enum):
    NORMAL = "normal"
    WEDGE = "wedge"
    BICONCAVE = "biconcave"
    CRUSH = "crush"


@dataclass(frozen=True)
class GradingSettings:
    """Thresholds (fractions of height loss) and the neighbour window for the crush reference."""

    mild: float = 0.20
    moderate: float = 0.25
    severe: float = 0.40
    neighbours: int = 2
    use_level_reference: bool = True


@dataclass(frozen=True)
class Heights:
    ha_mm: float
    hm_mm: float
    hp_mm: float


@dataclass(frozen=True)
class Grading:
    """Ratios, height loss, grade and type of one vertebra."""

    wedge_ratio: float
    biconcave_ratio: float
    crush_ratio: float  # nan when no neighbour was available
    height_loss: float
    grade: Grade
    type: DeformityType


def heights_from_keypoints(keypoints: np.ndarray) -> Heights:
    """Heights (mm) from (6, D) keypoints in the order of :data:`KEYPOINT_NAMES` (any mm space)."""
    kp = np.asarray(keypoints, dtype=float)
    if kp.shape[0] != 6:
        raise ValueError(f"expected 6 keypoints (ordered as KEYPOINT_NAMES); got shape {kp.shape}")
    ha = float(np.linalg.norm(kp[0] - kp[1]))
    hm = float(np.linalg.norm(kp[2] - kp[3]))
    hp = float(np.linalg.norm(kp[4] - kp[5]))
    return Heights(ha, hm, hp)


def genant_grade(height_loss: float, settings: GradingSettings = GradingSettings()) -> Grade:
    """Genant grade of a fractional height loss (0.27 -> grade 2)."""
    if not np.isfinite(height_loss):
        raise ValueError(f"height loss must be finite; got {height_loss}")
    if height_loss > settings.severe:
        return Grade.SEVERE
    if height_loss >= settings.moderate:
        return Grade.MODERATE
    if height_loss >= settings.mild:
        return Grade.MILD
    return Grade.NORMAL


def expected_hp(
    index: int,
    levels: Sequence[str],
    hp_mm: Sequence[float],
    settings: GradingSettings = GradingSettings(),
) -> float:
    """Posterior height expected at ``levels[index]`` from its neighbours (nan without any)."""
    ref_here = reference(levels[index]).hp_mm
    vals = []
    for j in range(index - settings.neighbours, index + settings.neighbours + 1):
        if j == index or j < 0 or j >= len(levels):
            continue
        vals.append(hp_mm[j] * ref_here / reference(levels[j]).hp_mm)
    return float(np.median(vals)) if vals else float("nan")


def grade_vertebra(
    level: str, heights: Heights, hp_ref_mm: float, settings: GradingSettings = GradingSettings()
) -> Grading:
    """Grade one vertebra of ``level`` from its heights and the neighbour-based ``hp_ref_mm``."""
    if heights.hp_mm <= 0:
        raise ValueError(f"posterior height must be positive; got {heights.hp_mm} mm at {level}")
    ref = reference(level)
    rw_ref = ref.ha_hp if settings.use_level_reference else 1.0
    rb_ref = ref.hm_hp if settings.use_level_reference else 1.0
    rw = heights.ha_mm / heights.hp_mm / rw_ref
    rb = heights.hm_mm / heights.hp_mm / rb_ref
    rc = heights.hp_mm / hp_ref_mm if np.isfinite(hp_ref_mm) and hp_ref_mm > 0 else float("nan")
    candidates = {DeformityType.WEDGE: rw, DeformityType.BICONCAVE: rb}
    if np.isfinite(rc):
        candidates[DeformityType.CRUSH] = rc
    kind = min(candidates, key=lambda k: candidates[k])
    loss = float(np.clip(1.0 - candidates[kind], 0.0, 1.0))
    grade = genant_grade(loss, settings)
    return Grading(
        wedge_ratio=float(rw),
        biconcave_ratio=float(rb),
        crush_ratio=float(rc),
        height_loss=loss,
        grade=grade,
        type=kind if grade > Grade.NORMAL else DeformityType.NORMAL,
    )


def grade_spine(
    levels: Sequence[str],
    keypoints: Sequence[np.ndarray],
    settings: GradingSettings = GradingSettings(),
) -> list[tuple[Heights, Grading]]:
    """Grade every vertebra of one spine, cranial to caudal (levels and (6, 3) keypoints)."""
    heights = [heights_from_keypoints(kp) for kp in keypoints]
    hps = [h.hp_mm for h in heights]
    out = []
    for i, (lv, h) in enumerate(zip(levels, heights, strict=True)):
        out.append((h, grade_vertebra(lv, h, expected_hp(i, levels, hps, settings), settings)))
    return out
