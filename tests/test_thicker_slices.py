"""`thicker_slices`: a CT reconstructed again with thicker contiguous slices (for the real-CT
evaluation at archival thicknesses)."""

from __future__ import annotations

import numpy as np
import pytest

from vertfrac_core.resample import thicker_slices
from vertfrac_core.volume import Volume, axis_aligned_affine


def _centroid_lps(vol: Volume) -> np.ndarray:
    kji = np.argwhere(vol.hu > 0).astype(float)
    w = vol.hu[vol.hu > 0].astype(float)
    return vol.voxel_to_lps((kji[:, ::-1] * w[:, None]).sum(axis=0, keepdims=True) / w.sum())[0]


@pytest.mark.parametrize("thickness,k", [(3.0, 3), (4.0, 4), (5.2, 5)])
def test_axial_stack_keeps_geometry_and_mean(thickness: float, k: int) -> None:
    """Axial slices (k runs feet -> head, S falling with k as DICOM often stores them): the
    slices become k times thicker, every new slice is the mean of the k it replaces and lies
    where their middle was, and a blob stays where it was in patient space."""
    rng = np.random.default_rng(0)
    hu = rng.normal(40.0, 20.0, (60, 20, 24)).astype(np.float32)
    directions = np.diag([1.0, 1.0, -1.0])
    vol = Volume(hu=hu, affine_lps=axis_aligned_affine((0.8, 0.8, 1.0), (-10.0, 5.0, 30.0), directions))
    thick = thicker_slices(vol, thickness)
    assert thick.shape == (60 // k, 20, 24)
    assert thick.spacing_mm == pytest.approx((0.8, 0.8, k * 1.0))
    assert thick.meta["thicker_slices_mm"] == pytest.approx(k * 1.0)
    np.testing.assert_allclose(thick.hu[2], hu[2 * k:3 * k].mean(axis=0), rtol=1e-5)
    mid = vol.voxel_to_lps(np.array([[3.0, 4.0, 2 * k + (k - 1) / 2.0]]))[0]
    np.testing.assert_allclose(thick.voxel_to_lps(np.array([[3.0, 4.0, 2.0]]))[0], mid, atol=1e-9)

    blob = np.zeros_like(hu)
    blob[2 * k:5 * k, 8:12, 10:14] = 400.0  # whole runs: its centroid is kept exactly
    vb = Volume(hu=blob, affine_lps=vol.affine_lps)
    np.testing.assert_allclose(_centroid_lps(thicker_slices(vb, thickness)), _centroid_lps(vb), atol=1e-6)


def test_sagittal_stack_averages_along_its_head_feet_axis() -> None:
    """A sagittal acquisition (slices k run left-right, rows j run head -> feet): the average
    runs along j, not along the slices."""
    hu = np.zeros((12, 40, 30), dtype=np.float32)
    hu[:, 21, :] = 300.0  # one row of voxels at one height: a thin horizontal plane
    directions = np.array([[0.0, 0.0, 1.0],   # k -> L
                           [1.0, 0.0, 0.0],   # i -> P
                           [0.0, -1.0, 0.0]])  # j -> -S (rows go down)
    vol = Volume(hu=hu, affine_lps=axis_aligned_affine((1.0, 1.0, 2.0), (0.0, 0.0, 0.0), directions))
    thick = thicker_slices(vol, 3.0)
    assert thick.shape == (12, 13, 30)
    assert thick.affine_lps[2, 1] == pytest.approx(-3.0)  # j now steps 3 mm down
    np.testing.assert_allclose(thick.hu[:, 7, :], 100.0)  # rows 21-23: one bright of three
    assert thick.hu[:, [6, 8], :].max() == 0.0
    # slice 7 lies at the height of the old row 22, the middle of its run
    z7 = thick.voxel_to_lps(np.array([[0.0, 7.0, 0.0]]))[0, 2]
    assert z7 == pytest.approx(vol.voxel_to_lps(np.array([[0.0, 22.0, 0.0]]))[0, 2])


def test_thin_enough_or_invalid() -> None:
    vol = Volume(hu=np.zeros((10, 8, 8), np.float32), affine_lps=axis_aligned_affine((1.0, 1.0, 3.0), (0, 0, 0)))
    assert thicker_slices(vol, 3.0) is vol  # already that thick
    assert thicker_slices(vol, 4.0) is vol  # 4 / 3 rounds to one slice
    with pytest.raises(ValueError, match="positive"):
        thicker_slices(vol, 0.0)
