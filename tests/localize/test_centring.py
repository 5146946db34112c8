"""Body centring: a line a few mm off the bodies is moved onto their middle, measured from the
walls; without bodies the line stays as it is."""

from __future__ import annotations

import numpy as np
import pytest

from vertfrac_core.localize.centring import centre_on_bodies
from vertfrac_core.localize.codec import distance_to_line
from vertfrac_core.volume import Volume, axis_aligned_affine

N_Z, N_Y, N_X = 150, 110, 110  # 1 mm voxels; LPS: x left, y posterior, z head
ORIGIN = (-55.0, -55.0, -75.0)


def _column(interior_hu: float, tilt: float = 0.0) -> tuple[Volume, np.ndarray]:
    """Elliptic bodies (AP half-depth 15 mm, half-width 20 mm, 2 mm cortex of 450 HU around
    ``interior_hu``), 24 mm tall with 6 mm discs (90 HU), a canal (10 HU) behind them inside a
    ring of posterior elements (350 HU), muscle (45 HU) around, fat (-90 HU) further out. The
    column's axis runs through (x, y) = (tilt * z, 0): (N, 3) LPS points every mm."""
    z = ORIGIN[2] + np.arange(N_Z)
    y = ORIGIN[1] + np.arange(N_Y)
    x = ORIGIN[0] + np.arange(N_X)
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    xx = xx - tilt * zz
    hu = np.where(xx**2 + yy**2 < 45.0**2, 45.0, -90.0).astype(np.float32)
    body_r = (xx / 20.0) ** 2 + (yy / 15.0) ** 2
    inner_r = (xx / 18.0) ** 2 + (yy / 13.0) ** 2
    in_body = ((zz + 150.0) % 30.0) < 24.0
    hu = np.where((body_r < 1) & in_body, 450.0, hu)
    hu = np.where((inner_r < 1) & in_body, interior_hu, hu)
    hu = np.where((body_r < 1) & ~in_body, 90.0, hu)
    canal = (xx / 8.0) ** 2 + ((yy - 24.0) / 8.0) ** 2
    hu = np.where((canal >= 1) & (canal < 2.2) & (yy > 16.5), 350.0, hu)
    hu = np.where(canal < 1, 10.0, hu)
    hu += np.random.default_rng(0).normal(0, 12, hu.shape).astype(np.float32)
    vol = Volume(hu=hu, affine_lps=axis_aligned_affine((1.0, 1.0, 1.0), ORIGIN))
    zs = np.arange(60.0, -60.0, -1.0)
    axis = np.stack([tilt * zs, np.zeros_like(zs), zs], axis=1)
    return vol, axis


@pytest.mark.parametrize("interior_hu", [220.0, 60.0])  # healthy; osteoporotic (as dark as muscle)
@pytest.mark.parametrize("tilt", [0.0, 0.25])
def test_a_line_off_the_bodies_is_moved_onto_their_middle(interior_hu: float, tilt: float) -> None:
    vol, axis = _column(interior_hu, tilt)
    off = axis + np.array([2.5, 5.0, 0.0])  # left and posterior of the middle, as on real CT
    assert distance_to_line(axis[10:-10], off).mean() > 5.0
    moved = centre_on_bodies(vol, off)
    d = distance_to_line(axis[10:-10], moved)
    assert d.mean() < 0.6 and d.max() < 1.2, (d.mean(), d.max())
    # the ends stay where they were along the column: the line moves across itself (on a tilted
    # column that shifts each end by about 0.6 mm along the axis), and resampling every 1 mm
    # may drop up to 1 mm at the caudal end
    assert np.linalg.norm(moved[0] - axis[0]) < 1.0 and np.linalg.norm(moved[-1] - axis[-1]) < 1.8


def test_without_bodies_the_line_stays() -> None:
    hu = np.full((N_Z, N_Y, N_X), 40.0, np.float32)
    hu += np.random.default_rng(1).normal(0, 12, hu.shape).astype(np.float32)
    vol = Volume(hu=hu, affine_lps=axis_aligned_affine((1.0, 1.0, 1.0), ORIGIN))
    zs = np.arange(60.0, -60.0, -1.0)
    line = np.stack([np.zeros_like(zs), np.zeros_like(zs), zs], axis=1)
    assert np.array_equal(centre_on_bodies(vol, line), line)


def test_the_shift_is_capped() -> None:
    """A line 11 mm behind the middle (still inside the bodies, whose walls are measured 11 mm
    off) moves by the cap, 10 mm, and no further."""
    vol, axis = _column(220.0)
    far = axis + np.array([0.0, 11.0, 0.0])
    moved = centre_on_bodies(vol, far)
    shift = np.linalg.norm(moved[10:-10] - far[10:-10], axis=1)
    assert shift.max() <= 10.0 + 1e-3
    assert np.median(shift) > 9.5  # the walls were read and the cap is what stopped the move
