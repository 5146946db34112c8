"""Training-time variety for step 2: narrow fields of view for the level network, coarse voxels and
thin body shells in the rendered samples."""

from __future__ import annotations

import numpy as np

from vertfrac_core.detect.levelnet import POOL
from vertfrac_core.reformat import ReformatSettings
from vertfrac_core.train.detector import sample_voxel_mm
from vertfrac_core.train.levels import narrow_fov


def test_narrow_fov_blanks_only_beyond_the_bodies() -> None:
    line = ReformatSettings().anterior_mm / POOL
    x = np.zeros((4, 90, 41), np.float32)
    rng = np.random.default_rng(0)
    seen_front = seen_back = 0
    for _ in range(300):
        y = narrow_fov(x, rng)
        air = y[0] == -1.5
        cols = np.nonzero(air.any(axis=0))[0]
        front, back = cols[cols < line], cols[cols > line]
        # the bodies (front wall at most 30 mm anterior of the line) and the canal stay in view
        assert not air[:, int(np.floor(line - 38.0 / POOL)) + 1: int(np.ceil(line + 40.0 / POOL))].any()
        assert (y[:, ~air] == 0).all()  # nothing else is touched
        seen_front += front.size > 0
        seen_back += back.size > 0
    assert 60 < seen_front < 130 and 20 < seen_back < 70  # about 30 % and 15 %


def test_coarse_voxels_are_a_share_of_the_seeds() -> None:
    v = [sample_voxel_mm(s, 0.25) for s in range(2_000, 2_400)]
    coarse = [x for x in v if x is not None]
    assert 70 < len(coarse) < 130
    assert min(coarse) >= 1.5 and max(coarse) <= 3.0
    assert v == [sample_voxel_mm(s, 0.25) for s in range(2_000, 2_400)]  # a function of the seed
    assert all(sample_voxel_mm(s, 0.0) is None for s in range(100))


def test_body_shell_varies_between_patients() -> None:
    from vertfrac_core.phantom.population import sample_patient
    from vertfrac_core.phantom.render import _material
    from vertfrac_core.phantom.spine import build_phantom

    ph = build_phantom(sample_patient(7))
    shells = []
    for i in range(60):
        m = _material(ph, np.random.default_rng(i))
        assert 0.4 <= m.shell_mm <= 1.0 and 0.6 * m.cortex_hu <= m.shell_hu <= m.cortex_hu
        shells.append(m.shell_mm)
    assert np.ptp(shells) > 0.45
