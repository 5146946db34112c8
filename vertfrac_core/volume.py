"""The CT volume object shared by every step: HU voxels plus their geometry.

Convention (used everywhere in vertfrac):

* ``hu`` is a 3D array indexed ``[k, j, i]`` = ``[slice, row, column]`` (z, y, x in voxel terms).
* ``affine_lps`` is a 4x4 matrix mapping the voxel index vector ``(i, j, k, 1)`` (column, row,
  slice) to patient LPS millimetres (x grows to the patient's Left, y to Posterior, z to
  Superior) -- the DICOM convention. ``affine_lps[:3, 0]`` is the row direction times the column
  spacing, ``[:3, 1]`` the column direction times the row spacing, ``[:3, 2]`` the slice step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Volume:
    """A CT volume in Hounsfield units with its voxel -> LPS mm geometry.

    Attributes:
        hu: (K, J, I) array, [slice, row, column]; float32 or int16 HU.
        affine_lps: (4, 4) float64, voxel index (i, j, k, 1) -> LPS mm.
        meta: free-form provenance (source, handling notes such as gaps interpolated).
    """

    hu: np.ndarray
    affine_lps: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hu.ndim != 3:
            raise ValueError(f"Volume.hu must be 3D (slice, row, column); got shape {self.hu.shape}")
        aff = np.asarray(self.affine_lps, dtype=np.float64)
        if aff.shape != (4, 4):
            raise ValueError(f"affine_lps must be 4x4; got {aff.shape}")
        if abs(np.linalg.det(aff[:3, :3])) < 1e-9:
            raise ValueError("affine_lps is singular: voxel axes are degenerate")
        object.__setattr__(self, "affine_lps", aff)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(K, J, I) = (slices, rows, columns)."""
        k, j, i = self.hu.shape
        return (k, j, i)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel spacing (column, row, slice) in mm, i.e. along i, j, k."""
        n = np.linalg.norm(self.affine_lps[:3, :3], axis=0)
        return (float(n[0]), float(n[1]), float(n[2]))

    def voxel_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Map (N, 3) voxel indices (i, j, k) (float allowed) to (N, 3) LPS mm."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine_lps[:3, :3].T + self.affine_lps[:3, 3]

    def lps_to_voxel(self, points_lps: np.ndarray) -> np.ndarray:
        """Map (N, 3) LPS mm points to (N, 3) fractional voxel indices (i, j, k)."""
        pts = np.asarray(points_lps, dtype=np.float64)
        inv = np.linalg.inv(self.affine_lps)
        return pts @ inv[:3, :3].T + inv[:3, 3]

    def bounds_lps(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned (min, max) LPS corners of the voxel-centre grid."""
        k, j, i = self.shape
        corners = np.array(
            [[a, b, c] for a in (0, i - 1) for b in (0, j - 1) for c in (0, k - 1)], dtype=float
        )
        pts = self.voxel_to_lps(corners)
        return pts.min(axis=0), pts.max(axis=0)


def axis_aligned_affine(
    spacing_mm: tuple[float, float, float],
    origin_lps: tuple[float, float, float],
    directions: np.ndarray | None = None,
) -> np.ndarray:
    """Build a voxel->LPS affine from spacing (i, j, k), origin (LPS of voxel 0,0,0) and a 3x3
    matrix of unit direction columns (default identity: i->L, j->P, k->S)."""
    d = np.eye(3) if directions is None else np.asarray(directions, dtype=float)
    aff = np.eye(4)
    aff[:3, :3] = d * np.asarray(spacing_mm, dtype=float)[None, :]
    aff[:3, 3] = origin_lps
    return aff
