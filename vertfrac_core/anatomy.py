"""Vertebral levels and the per-level reference values shared by the phantom and the grading.

Sizes are adult means (posterior body height, body width and depth, disc height), compiled from
morphometric literature (Panjabi et al. 1991/1992 thoracic and lumbar surface anatomy; Zhou et al.
2000). Normal shape ratios ``ha/hp`` and ``hm/hp`` per level follow the medians of the public
6-keypoint expert annotations summarised in DESIGN.md (neuro-ml/anchor-free-genant: 3,607
vertebrae); levels missing there (L3-L5) are extrapolated from lumbar morphometry (the lordotic
L4-L5 bodies are anteriorly taller).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Grade(IntEnum):
    """Genant semi-quantitative grade."""

    NORMAL = 0
    MILD = 1  # 20-25 % height loss
    MODERATE = 2  # 25-40 %
    SEVERE = 3  # > 40 %


#: Every level the product knows, cranial to caudal. T13 and L6 are anatomical variants.
ALL_LEVELS: tuple[str, ...] = (
    "C3", "C4", "C5", "C6", "C7",
    "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "T13",
    "L1", "L2", "L3", "L4", "L5", "L6",
    "S1",
)  # fmt: skip

#: Levels that are detected, graded and reported.
GRADED_LEVELS: tuple[str, ...] = tuple(
    lv for lv in ALL_LEVELS if lv not in ("C3", "C4", "C5", "C6", "S1")
)


@dataclass(frozen=True)
class LevelReference:
    """Adult reference dimensions of one level (mm) and its normal shape ratios."""

    hp_mm: float  # posterior body height
    width_mm: float  # transverse body width (upper endplate)
    depth_mm: float  # antero-posterior body depth
    disc_below_mm: float  # height of the disc below this body
    ha_hp: float  # normal anterior / posterior height ratio
    hm_hp: float  # normal middle / posterior height ratio


_REF: dict[str, LevelReference] = {
    "C3": LevelReference(13.0, 16.0, 15.0, 4.5, 0.97, 0.88),
    "C4": LevelReference(13.0, 17.0, 15.5, 4.5, 0.97, 0.88),
    "C5": LevelReference(13.0, 18.0, 16.0, 4.5, 0.98, 0.87),
    "C6": LevelReference(13.5, 20.0, 16.5, 4.5, 0.99, 0.87),
    "C7": LevelReference(14.0, 23.0, 16.5, 4.0, 0.99, 0.86),
    "T1": LevelReference(15.5, 27.0, 17.0, 3.5, 0.96, 0.85),
    "T2": LevelReference(16.5, 28.0, 18.0, 3.5, 0.955, 0.845),
    "T3": LevelReference(17.0, 28.5, 19.0, 3.5, 0.95, 0.84),
    "T4": LevelReference(17.5, 29.0, 20.0, 3.5, 0.93, 0.84),
    "T5": LevelReference(18.0, 30.0, 21.5, 4.0, 0.91, 0.84),
    "T6": LevelReference(18.5, 31.0, 23.0, 4.0, 0.87, 0.84),
    "T7": LevelReference(19.0, 32.5, 24.5, 4.0, 0.87, 0.84),
    "T8": LevelReference(19.5, 34.0, 26.0, 4.5, 0.90, 0.85),
    "T9": LevelReference(20.5, 36.0, 27.5, 5.0, 0.93, 0.86),
    "T10": LevelReference(21.5, 38.5, 28.5, 5.5, 0.95, 0.86),
    "T11": LevelReference(23.0, 41.0, 29.5, 6.0, 0.91, 0.85),
    "T12": LevelReference(24.0, 43.0, 30.5, 7.0, 0.92, 0.86),
    "T13": LevelReference(24.5, 44.0, 31.0, 7.5, 0.93, 0.86),
    "L1": LevelReference(25.0, 45.0, 32.0, 8.5, 0.94, 0.86),
    "L2": LevelReference(26.0, 47.0, 33.5, 9.5, 0.96, 0.86),
    "L3": LevelReference(27.0, 49.0, 34.5, 10.5, 0.98, 0.86),
    "L4": LevelReference(27.0, 50.0, 35.0, 11.0, 1.00, 0.86),
    "L5": LevelReference(26.5, 51.0, 35.0, 11.0, 1.06, 0.87),
    "L6": LevelReference(26.0, 51.0, 35.0, 10.0, 1.06, 0.87),
    "S1": LevelReference(28.0, 50.0, 33.0, 0.0, 1.10, 0.90),
}


def reference(level: str) -> LevelReference:
    """The reference dimensions and normal ratios of ``level`` (e.g. ``"T12"``)."""
    try:
        return _REF[level]
    except KeyError as err:
        raise ValueError(f"unknown vertebral level {level!r}; expected one of {ALL_LEVELS}") from err


def level_index(level: str) -> int:
    """Position of ``level`` in :data:`ALL_LEVELS` (cranial = small)."""
    return ALL_LEVELS.index(level)


def region(level: str) -> str:
    """'cervical', 'thoracic', 'lumbar' or 'sacral'."""
    return {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[level[0]]
