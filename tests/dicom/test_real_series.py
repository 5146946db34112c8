"""The real Siemens series with empty UIDs, against another converter's NIfTI of it."""

from __future__ import annotations

import numpy as np

from tests.dicom.conftest import EXAMPLE_DICOM, EXAMPLE_SEG, need
from vertfrac_core.dicom.index import build_index
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.dicom.load import load_dicom
from vertfrac_core.nifti import load_nifti_array


def test_empty_uids_group_into_one_selected_series() -> None:
    result = build_index(str(need(EXAMPLE_DICOM)), secret=DEMO_SECRET)
    assert len(result.series) == 1 and not result.failed
    (decision,) = result.decisions
    assert decision.selected and decision.series.n_slices == 20


def test_loads_20_slices_in_hu_sorted_by_position() -> None:
    vol = load_dicom(str(need(EXAMPLE_DICOM)))
    assert vol.shape == (20, 512, 512) and vol.hu.dtype == np.int16
    assert vol.hu.min() == -1024 and 1000 < vol.hu.max() < 3000  # air, bone
    assert np.allclose(vol.spacing_mm, (0.9765625, 0.9765625, 2.0))
    assert vol.affine_lps[2, 2] > 0  # k runs along the slice normal (+z), not InstanceNumber


def test_voxel_to_lps_matches_reference_nifti_and_labels_sit_on_bone() -> None:
    vol = load_dicom(str(need(EXAMPLE_DICOM)))
    labels, affine = load_nifti_array(str(need(EXAMPLE_SEG)))  # [k, j, i], LPS affine
    kk, jj, ii = labels.shape
    corners = np.array([[i, j, k] for i in (0, ii - 1) for j in (0, jj - 1) for k in (0, kk - 1)], float)
    ref_lps = corners @ affine[:3, :3].T + affine[:3, 3]
    ours = vol.lps_to_voxel(ref_lps)
    assert np.abs(ours - np.rint(ours)).max() < 1e-6  # same grid
    err = np.abs(vol.voxel_to_lps(np.rint(ours)) - ref_lps).max()
    assert err < 0.01, f"voxel->LPS differs from the reference by {err:.4f} mm"
    k, j, i = np.nonzero(np.isin(labels, (32, 33)))  # T12, T11
    pts = np.stack([i, j, k], 1) @ affine[:3, :3].T + affine[:3, 3]
    vox = np.rint(vol.lps_to_voxel(pts)).astype(int)
    hu = vol.hu[vox[:, 2], vox[:, 1], vox[:, 0]]
    assert np.median(hu) > 150, "vertebra labels should fall on bone"
    flipped = vol.hu[vox[:, 2], vol.shape[1] - 1 - vox[:, 1], vox[:, 0]]
    assert np.median(flipped) < 50, "an A-P flip would put them off the bone"
