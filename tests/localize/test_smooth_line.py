"""Step 1's line is smoothed along its length before the reformation (`codec.smooth_line`)."""

from __future__ import annotations

import numpy as np

from vertfrac_core.localize.codec import densify, smooth_line
from vertfrac_core.reformat import Reformation


def _arc(radius: float = 180.0, length: float = 300.0) -> np.ndarray:
    """A lordosis-like arc in the sagittal plane (LPS: y posterior, z superior), 1 mm steps."""
    a = np.arange(0.0, length, 1.0) / radius
    return np.stack([np.zeros_like(a), radius * (1 - np.cos(a)), -radius * np.sin(a)], axis=1)


def _row_spacing(line: np.ndarray, anterior_mm: float = 20.0) -> np.ndarray:
    """Distance between consecutive rows of the reformation, ``anterior_mm`` in front of the line."""
    ref = Reformation(line)
    rows = np.arange(20.0, ref.shape[1] - 21.0)
    col = np.full_like(rows, ref.settings.line_col - anterior_mm)
    return np.linalg.norm(ref.to_lps(rows + 1, col) - ref.to_lps(rows, col), axis=1)


def test_kinks_every_few_millimetres_no_longer_tilt_the_planes() -> None:
    """A polyline through points 4 mm apart, each 0.3 mm off the arc (what a decoder gives):
    its spline's planes wobble; the smoothed line's rows are as even as the arc's."""
    arc = _arc()
    rng = np.random.default_rng(0)
    knots = arc[::4] + np.concatenate([np.zeros((len(arc[::4]), 1)), rng.normal(0, 0.3, (len(arc[::4]), 2))], 1)
    kinked = densify(knots, 1.0)
    ideal = _row_spacing(arc)
    raw, smooth = _row_spacing(kinked), _row_spacing(smooth_line(kinked, 8.0))
    assert np.abs(raw - 1).max() > 0.3  # the wobble this removes
    assert np.abs(smooth - 1).max() < np.abs(ideal - 1).max() + 0.05, (np.abs(smooth - 1).max(), np.abs(ideal - 1).max())


def test_a_smooth_line_stays_where_it_was() -> None:
    arc = _arc()
    out = smooth_line(arc, 8.0)
    # every point of the smoothed line lies within 0.2 mm of the arc, the ends included
    d = np.abs(np.linalg.norm(out - [0.0, 180.0, 0.0], axis=1) - 180.0)  # off the circle
    assert d.max() < 0.2, d.max()
    assert np.linalg.norm(out[0] - arc[0]) < 0.5 and np.linalg.norm(out[-1] - arc[-1]) < 0.5
    assert abs(len(out) - len(arc)) <= 1
    straight = np.stack([np.zeros(50), np.zeros(50), -np.arange(50.0)], axis=1)
    assert np.allclose(smooth_line(straight, 8.0), straight, atol=1e-6)
    assert np.allclose(smooth_line(straight, 0.0), straight)
