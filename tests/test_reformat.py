"""Straightened reformation: exact round trips, straightening of a curved synthetic column."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vertfrac_core.errors import NoSpineError
from vertfrac_core.localize.codec import smooth_centre_line
from vertfrac_core.phantom.population import sample_patient
from vertfrac_core.phantom.spine import build_phantom
from vertfrac_core.reformat import Reformation, ReformatSettings
from vertfrac_core.volume import Volume, axis_aligned_affine


def _scoliotic_line() -> np.ndarray:
    for seed in range(300):
        spec = sample_patient(seed)
        if spec.shape.scoliosis_cobb_deg > 35:
            ph = build_phantom(spec)
            return smooth_centre_line(np.array([v.center_lps for v in ph.vertebrae]), 1.0)
    raise AssertionError("no scoliotic phantom in 300 seeds")


@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_under_a_tenth_of_a_millimetre(seed: int) -> None:
    line = _scoliotic_line() if seed else smooth_centre_line(
        np.array([v.center_lps for v in build_phantom(sample_patient(4)).vertebrae]), 1.0)
    ref = Reformation(line)
    rng = np.random.default_rng(seed)
    _, rows, cols = ref.shape
    r = rng.uniform(0, rows - 1, 2000)
    c = rng.uniform(0, cols - 1, 2000)
    u = rng.uniform(-6, 6, 2000)
    # the mapping is one-to-one only closer to the line than its radius of curvature (normal
    # planes of a bent line cross there): keep points within 80 % of the local radius
    s = np.clip(ref.s_values[0] + r, 0, ref.length_mm)
    radius = 1.0 / np.maximum(np.linalg.norm(ref.spline(s, 2), axis=1), 1e-9)
    v = ref.v_values[0] + c
    ok = np.hypot(v, u) < 0.8 * radius
    assert ok.mean() > 0.95
    r, c, u = r[ok], c[ok], u[ok]
    pts = ref.to_lps(r, c, u)
    back = ref.from_lps(pts)
    assert np.abs(back[:, 0] - r).max() < 0.1
    assert np.abs(back[:, 1] - c).max() < 0.1
    assert np.abs(back[:, 2] - u).max() < 0.1
    # and LPS -> pixel -> LPS
    again = ref.to_lps(back[:, 0], back[:, 1], back[:, 2])
    assert np.linalg.norm(again - pts, axis=1).max() < 0.1


def test_straightens_a_curved_tube() -> None:
    """A bright tube along a scoliotic, kyphotic line becomes a straight vertical band."""
    line = _scoliotic_line()
    lo, hi = line.min(0) - 30, line.max(0) + 30
    aff = axis_aligned_affine((1.5, 1.5, 1.5), tuple(lo))
    shape = tuple(int(x) for x in np.ceil((hi - lo) / 1.5)[::-1])
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    pts = np.stack([i, j, k], -1).reshape(-1, 3) * 1.5 + lo
    from scipy.spatial import cKDTree

    d, _ = cKDTree(line).query(pts)
    hu = np.where(d < 6.0, 1000.0, -1000.0).astype(np.float32).reshape(shape)
    ref = Reformation(line, ReformatSettings(slab_offsets_mm=(0.0,)))
    img = ref.image(Volume(hu=hu, affine_lps=aff))[0]
    rows = slice(int(ref.settings.margin_mm) + 5, -int(ref.settings.margin_mm) - 5)
    centre_col = int(round(-ref.v_values[0] / ref.settings.step_mm))
    assert (img[rows, centre_col] > 500).all()  # the line itself is the central column
    assert (img[rows, centre_col + 12] < -500).all()  # 12 mm away is outside the tube
    assert (img[rows, centre_col - 12] < -500).all()


def test_speed_400_mm_column() -> None:
    line = np.stack([np.zeros(401), 40 + 10 * np.sin(np.linspace(0, 3, 401)), -np.arange(401.0)], 1)
    vol = Volume(hu=np.zeros((400, 256, 256), np.float32),
                 affine_lps=axis_aligned_affine((0.8, 0.8, 1.0), (-100.0, -60.0, -400.0)))
    ref = Reformation(line)
    t = time.perf_counter()
    img = ref.image(vol)
    elapsed = time.perf_counter() - t
    assert img.shape == ref.shape
    assert elapsed < 5.0  # generous for CI; the benchmark records the real figure


def test_rejects_degenerate_line() -> None:
    with pytest.raises(NoSpineError):
        Reformation(np.zeros((2, 3)))
