"""The localizer's canonical grid: exact geometry for every patient orientation."""

from __future__ import annotations

import numpy as np
import pytest

from vertfrac_core.localize.grid import FILL_HU, to_canonical
from vertfrac_core.volume import Volume

CENTRE = np.array([12.3, -40.7, 101.9])  # LPS mm


def _volume(directions: np.ndarray, spacing: tuple[float, float, float], shape_kji: tuple[int, int, int],
            sigma_mm: float = 9.0) -> Volume:
    """A Gaussian blob at CENTRE in air; voxel axis n runs along ``directions[:, n]``."""
    m = directions * np.array(spacing)
    k, j, i = shape_kji
    centre_ijk = (np.array([i, j, k]) - 1) / 2.0 + np.array([1.7, -2.2, 3.1])
    origin = CENTRE - m @ centre_ijk
    aff = np.eye(4)
    aff[:3, :3], aff[:3, 3] = m, origin
    kk, jj, ii = np.meshgrid(np.arange(k), np.arange(j), np.arange(i), indexing="ij")
    lps = np.stack([ii, jj, kk], -1) @ m.T + origin
    d2 = np.sum((lps - CENTRE) ** 2, axis=-1)
    hu = (-1000.0 + 2000.0 * np.exp(-d2 / (2 * sigma_mm**2))).astype(np.int16)
    return Volume(hu=hu, affine_lps=aff)


ORIENTATIONS = {
    "head-first supine, slices up": np.eye(3),
    "feet-first supine, slices down": np.diag([-1.0, 1.0, -1.0]),
    "head-first prone": np.diag([-1.0, -1.0, 1.0]),
    "sagittal acquisition": np.array([[0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]]),
    "permuted and flipped": np.array([[0, -1.0, 0], [0, 0, -1.0], [1.0, 0, 0]]),
}


def _centroid_lps(grid) -> np.ndarray:  # noqa: ANN001
    w = np.clip(grid.data - FILL_HU, 0, None) ** 2
    zyx = np.stack(np.meshgrid(*[np.arange(n) for n in grid.data.shape], indexing="ij"), -1)
    idx = (zyx * w[..., None]).reshape(-1, 3).sum(0) / w.sum()
    return grid.index_to_lps(idx[None])[0]


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_canonical_grid_keeps_lps_exact(name: str) -> None:
    vol = _volume(ORIENTATIONS[name], (0.8, 0.9, 1.25), (70, 90, 80))
    grid = to_canonical(vol, 4.0)
    assert np.all(np.abs(grid.spacing_zyx - 4.0) < 0.5)
    # z grows superior, y posterior, x left whatever the acquisition
    assert np.allclose(grid.index_to_lps(np.eye(3)) - grid.origin_lps, np.diag(grid.spacing_zyx)[:, ::-1])
    assert np.linalg.norm(_centroid_lps(grid) - CENTRE) < 0.5
