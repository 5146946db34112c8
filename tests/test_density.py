"""Trabecular ROI median and the L1 (or nearest) study value."""

from __future__ import annotations

import numpy as np

from vertfrac_core.density import study_l1, trabecular_hu
from vertfrac_core.result import DensityFlag, density_flag
from vertfrac_core.volume import Volume, axis_aligned_affine


def test_roi_reads_the_core_not_the_cortex() -> None:
    # a 30 mm cube body: 900 HU shell 1.5 mm thick around a 140 HU core, in 40 HU soft tissue
    n = 60
    hu = np.full((n, n, n), 40.0, np.float32)
    hu[15:45, 15:45, 15:45] = 900.0
    hu[17:43, 17:43, 17:43] = 140.0
    vol = Volume(hu=hu, affine_lps=axis_aligned_affine((1.0, 1.0, 1.0), (0.0, 0.0, 0.0)))
    # keypoints: anterior at y=15, posterior y=45 (LPS y posterior), upper z=45, lower z=15, x=30
    kp = np.array([[30, 15, 44], [30, 15, 15], [30, 30, 44], [30, 30, 15], [30, 45, 44], [30, 45, 15.0]])
    assert abs(trabecular_hu(vol, kp) - 140.0) < 1.0


def test_study_value_prefers_l1_then_nearest() -> None:
    assert study_l1(["T12", "L1", "L2"], [150.0, 120.0, 110.0]) == (120.0, "L1")
    assert study_l1(["T11", "T12", "L2"], [150.0, float("nan"), 100.0]) == (100.0, "L2")
    assert study_l1([], []) == (None, None)


def test_pickhardt_flags() -> None:
    assert density_flag(100.0) == DensityFlag.LIKELY_OSTEOPOROSIS
    assert density_flag(110.0) == DensityFlag.LIKELY_OSTEOPOROSIS
    assert density_flag(130.0) == DensityFlag.INDETERMINATE
    assert density_flag(161.0) == DensityFlag.UNLIKELY_OSTEOPOROSIS
    assert density_flag(None) == DensityFlag.UNKNOWN
