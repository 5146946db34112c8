"""Objects a scanner derives from one reconstruction: thick slices, a localizer, a sagittal MPR.

All three are pure functions of a rendered :class:`~vertfrac_core.volume.Volume` (so an archive
renders each acquisition once) and return a new Volume with its exact voxel -> LPS affine:

* :func:`thick_axial` -- slabs of ``thickness_mm`` along the slice axis, each the overlap-weighted
  mean of the thin slices it covers (a boxcar slice profile), as a scanner's thick recon;
* :func:`localizer` -- a one-slice projection radiograph (coronal or sagittal), rows running
  from head to feet, ImageOrientationPatient ``[1,0,0, 0,0,-1]`` or ``[0,1,0, 0,0,-1]``;
* :func:`sagittal_reformat` -- sagittal planes (``[0,1,0, 0,0,-1]``) stepping left, each the mean
  of a group of adjacent columns.

The localizer and the reformat need an axis-aligned volume (every voxel axis along an LPS axis,
as :func:`~vertfrac_core.phantom.acquisition.grid_for` produces).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from vertfrac_core.volume import Volume


class LocalizerView(StrEnum):
    CORONAL = "coronal"  # projected antero-posteriorly
    SAGITTAL = "sagittal"  # projected laterally


def thick_axial(volume: Volume, thickness_mm: float) -> Volume:
    """Re-slice ``volume`` into contiguous slabs ``thickness_mm`` thick along its slice axis.

    Thin slice ``k`` covers ``[k - 1/2, k + 1/2] * dz`` of the slice axis; slab ``m`` covers
    ``[m * T - dz / 2, (m + 1) * T - dz / 2]`` and is the overlap-weighted mean of the thin
    slices. The last partial slab is dropped.
    """
    n = volume.shape[0]
    dz = volume.spacing_mm[2]
    if thickness_mm < dz:
        raise ValueError(f"thick slices ({thickness_mm} mm) must be thicker than {dz:.3f} mm")
    n_out = int(np.floor(n * dz / thickness_mm + 1e-9))
    if n_out < 1:
        raise ValueError(f"volume of {n} x {dz:.3f} mm is shorter than one {thickness_mm} mm slab")
    lo_thin = (np.arange(n) - 0.5) * dz
    lo_out = np.arange(n_out) * thickness_mm - dz / 2
    overlap = np.clip(
        np.minimum(lo_thin[None, :] + dz, lo_out[:, None] + thickness_mm)
        - np.maximum(lo_thin[None, :], lo_out[:, None]),
        0.0,
        None,
    )  # (n_out, n)
    weights = overlap / overlap.sum(axis=1, keepdims=True)
    hu = np.tensordot(weights, volume.hu.astype(np.float32, copy=False), axes=(1, 0)).astype(np.float32)
    e_k = volume.affine_lps[:3, 2] / dz
    aff = volume.affine_lps.copy()
    aff[:3, 2] = e_k * thickness_mm
    aff[:3, 3] = volume.affine_lps[:3, 3] + e_k * (thickness_mm / 2 - dz / 2)
    return Volume(hu=hu, affine_lps=aff, meta={**volume.meta, "derived": "thick", "thickness_mm": thickness_mm})


def _canonical(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HU as ``[z, y, x]`` with every axis ascending in LPS, the origin (LPS of voxel 0) and the
    spacing ``(dx, dy, dz)``. Raises ValueError for a volume that is not axis-aligned."""
    aff = volume.affine_lps
    hu = volume.hu
    axis_of = []  # LPS axis of voxel axes i, j, k
    for col in range(3):
        vec = aff[:3, col]
        lps_axis = int(np.argmax(np.abs(vec)))
        if np.linalg.norm(vec) - abs(vec[lps_axis]) > 1e-6 * np.linalg.norm(vec):
            raise ValueError(f"voxel axis {col} is oblique ({vec}); expected an axis-aligned volume")
        axis_of.append(lps_axis)
    if sorted(axis_of) != [0, 1, 2]:
        raise ValueError(f"voxel axes map to LPS axes {axis_of}; expected a permutation")
    # array axes are (k, j, i) -> voxel axes (2, 1, 0)
    origin = aff[:3, 3].copy()
    spacing = np.zeros(3)
    for arr_axis, vox_axis in enumerate((2, 1, 0)):
        vec = aff[:3, vox_axis]
        lps_axis = axis_of[vox_axis]
        spacing[lps_axis] = abs(vec[lps_axis])
        if vec[lps_axis] < 0:
            hu = np.flip(hu, axis=arr_axis)
            origin = origin + vec * (volume.hu.shape[arr_axis] - 1)
    # reorder array axes to (z, y, x): array axis a holds voxel axis (2, 1, 0)[a]
    lps_of_array_axis = [axis_of[v] for v in (2, 1, 0)]
    order = [lps_of_array_axis.index(lps) for lps in (2, 1, 0)]
    return np.transpose(hu, order), origin, spacing


def localizer(volume: Volume, view: LocalizerView | str = LocalizerView.CORONAL) -> Volume:
    """A projection radiograph of ``volume``: one slice, values on a pseudo-HU scale.

    Attenuation relative to water, ``max(HU + 1000, 0) / 1000``, is summed along the projection
    axis (AP for coronal, LR for sagittal) and mapped linearly to about -1000 (no tissue) to a
    few thousand (dense bone). The plane passes through the middle of the volume.
    """
    view = LocalizerView(view)
    vol, origin, (dx, dy, dz) = _canonical(volume)
    mu = np.clip(vol.astype(np.float32) + 1000.0, 0.0, None) / 1000.0
    nz, ny, nx = vol.shape
    top = origin[2] + (nz - 1) * dz
    if view == LocalizerView.CORONAL:
        path_mm = mu.sum(axis=1) * dy  # (z, x)
        row_dir, col_dir, col_spacing = np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), dx
        corner = np.array([origin[0], origin[1] + (ny - 1) * dy / 2, top])
    else:
        path_mm = mu.sum(axis=2) * dx  # (z, y)
        row_dir, col_dir, col_spacing = np.array([0, 1.0, 0]), np.array([0, 0, -1.0]), dy
        corner = np.array([origin[0] + (nx - 1) * dx / 2, origin[1], top])
    image = (path_mm[::-1] * 8.0 - 1000.0).astype(np.float32)  # rows from head to feet
    aff = np.eye(4)
    aff[:3, 0] = row_dir * col_spacing
    aff[:3, 1] = col_dir * dz
    aff[:3, 2] = np.cross(row_dir, col_dir)  # unit step: a single slice
    aff[:3, 3] = corner
    return Volume(hu=image[None], affine_lps=aff, meta={**volume.meta, "derived": f"localizer-{view.value}"})


def sagittal_reformat(volume: Volume, step_mm: float = 3.0) -> Volume:
    """Sagittal slabs about ``step_mm`` thick stepping from right to left (+x).

    Each output slice is the mean of ``g = max(1, round(step_mm / dx))`` adjacent columns and
    sits at their mean x, so the true step is ``g * dx``. Rows run head to feet (-z), columns
    anterior to posterior (+y).
    """
    vol, origin, (dx, dy, dz) = _canonical(volume)
    g = max(1, int(round(step_mm / dx)))
    nz, ny, nx = vol.shape
    m = nx // g
    if m < 1:
        raise ValueError(f"volume is {nx * dx:.1f} mm wide; too narrow for {g * dx:.1f} mm slabs")
    slabs = vol[:, :, : m * g].astype(np.float32).reshape(nz, ny, m, g).mean(axis=3)  # (z, y, m)
    hu = np.ascontiguousarray(np.transpose(slabs, (2, 0, 1))[:, ::-1, :])  # (m, z from top, y)
    aff = np.eye(4)
    aff[:3, 0] = [0.0, dy, 0.0]
    aff[:3, 1] = [0.0, 0.0, -dz]
    aff[:3, 2] = [g * dx, 0.0, 0.0]
    aff[:3, 3] = [origin[0] + (g - 1) * dx / 2, origin[1], origin[2] + (nz - 1) * dz]
    return Volume(hu=hu, affine_lps=aff, meta={**volume.meta, "derived": "sagittal-mpr", "step_mm": g * dx})
