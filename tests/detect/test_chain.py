"""Decoding with few confident bodies: a regular chain of weak peaks through the strongest one is
a column; irregular, off-column or duplicate peaks are not."""

from __future__ import annotations

import numpy as np

from vertfrac_core.detect.codec import N_LEVELS, Detection
from vertfrac_core.detect.model import fill_gaps, regular_chain


def _det(row: float, score: float, col: float = 60.0) -> Detection:
    kp = np.array([[row - 12, col - 15], [row + 12, col - 15], [row - 12, col],
                   [row + 12, col], [row - 12, col + 15], [row + 12, col + 15]], np.float32)
    return Detection(centre_rc=np.array([row, col], np.float32), keypoints_rc=kp, score=score,
                     level_probs=np.full(N_LEVELS, 1 / N_LEVELS, np.float32))


def _rows(dets: list[Detection]) -> list[float]:
    return [float(d.centre_rc[0]) for d in dets]


def test_a_regular_run_of_weak_peaks_through_the_strong_one_is_kept() -> None:
    strong = [_det(100, 0.47)]
    weak = [_det(100, 0.47), _det(62, 0.24), _det(137, 0.20), _det(175, 0.20), _det(25, 0.10)]
    assert _rows(fill_gaps(strong, weak)) == [25, 62, 100, 137, 175]


def test_twin_peaks_in_one_body_count_once() -> None:
    strong = [_det(100, 0.47)]
    weak = [_det(100, 0.47), _det(63, 0.24), _det(137, 0.20), _det(140, 0.15, col=54)]
    assert _rows(regular_chain(strong, weak)) == [63, 100, 137]


def test_irregular_or_off_column_peaks_leave_the_strong_ones_alone() -> None:
    strong = [_det(100, 0.47)]
    irregular = [_det(100, 0.47), _det(85, 0.2), _det(140, 0.2), _det(230, 0.2)]
    assert _rows(fill_gaps(strong, irregular)) == [100]
    off_column = [_det(100, 0.47), _det(63, 0.2, col=90), _det(137, 0.2, col=30)]
    assert _rows(fill_gaps(strong, off_column)) == [100]
    assert regular_chain([], [_det(63, 0.2), _det(100, 0.2), _det(137, 0.2)]) == []


def test_only_the_regular_run_is_taken() -> None:
    strong = [_det(100, 0.6), _det(137, 0.5)]
    weak = [*strong, _det(63, 0.2), _det(174, 0.2), _det(199, 0.15)]  # 199: a stray 25 px on
    assert _rows(regular_chain(strong, weak)) == [63, 100, 137, 174]
