"""Sampling a volume at arbitrary LPS points (trilinear), and planes through it.

Used by the reformation, the rendered pictures and the figures; one implementation so that every
picture and every measurement agrees on where a voxel is.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from vertfrac_core.volume import Volume


def sample_lps(volume: Volume, points_lps: np.ndarray, *, order: int = 1, fill_hu: float = -1024.0) -> np.ndarray:
    """HU at LPS points of any shape (..., 3); outside the volume gives ``fill_hu``."""
    pts = np.asarray(points_lps, dtype=np.float64)
    flat = pts.reshape(-1, 3)
    ijk = volume.lps_to_voxel(flat)
    coords = np.stack([ijk[:, 2], ijk[:, 1], ijk[:, 0]])  # array axes are (k, j, i)
    vals = map_coordinates(volume.hu, coords, order=order, mode="constant", cval=fill_hu,
                           prefilter=False)
    return vals.reshape(pts.shape[:-1]).astype(np.float32)


def plane_points(origin_lps: np.ndarray, u_lps: np.ndarray, v_lps: np.ndarray,
                 shape: tuple[int, int], spacing_mm: float) -> np.ndarray:
    """LPS points (rows, cols, 3) of a plane: row r, column c at origin + r*s*v + c*s*u."""
    rows, cols = shape
    r = np.arange(rows)[:, None, None] * spacing_mm
    c = np.arange(cols)[None, :, None] * spacing_mm
    return np.asarray(origin_lps)[None, None, :] + r * np.asarray(v_lps) + c * np.asarray(u_lps)


def sagittal_slice(volume: Volume, x_lps: float, y_range: tuple[float, float],
                   z_range: tuple[float, float], spacing_mm: float = 1.0) -> np.ndarray:
    """Sagittal image at LPS x: rows go from superior to inferior, columns anterior to posterior."""
    rows = int((z_range[1] - z_range[0]) / spacing_mm) + 1
    cols = int((y_range[1] - y_range[0]) / spacing_mm) + 1
    pts = plane_points(np.array([x_lps, y_range[0], z_range[1]]), np.array([0, 1.0, 0]),
                       np.array([0, 0, -1.0]), (rows, cols), spacing_mm)
    return sample_lps(volume, pts)


def axial_slice(volume: Volume, z_lps: float, x_range: tuple[float, float],
                y_range: tuple[float, float], spacing_mm: float = 1.0) -> np.ndarray:
    """Axial image at LPS z in radiological display: rows anterior to posterior, columns from the
    patient's right to left."""
    rows = int((y_range[1] - y_range[0]) / spacing_mm) + 1
    cols = int((x_range[1] - x_range[0]) / spacing_mm) + 1
    pts = plane_points(np.array([x_range[0], y_range[0], z_lps]), np.array([1.0, 0, 0]),
                       np.array([0, 1.0, 0]), (rows, cols), spacing_mm)
    return sample_lps(volume, pts)
