"""Volume assembly on tiny synthetic series with a 1000 HU marker at a known LPS point."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from tests.dicom.conftest import axial_positions, write_ct_slices
from vertfrac_core.dicom.index import build_index
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.dicom.load import load_dicom
from vertfrac_core.dicom.reasons import SeriesReason
from vertfrac_core.errors import GeometryError

MARKER = (-3.0, -2.0, 6.0)


def _marker_lps(vol) -> np.ndarray:  # noqa: ANN001
    k, j, i = np.unravel_index(int(np.argmax(vol.hu)), vol.shape)
    return vol.voxel_to_lps(np.array([[i, j, k]], float))[0]


def test_sorted_by_position_not_instance_number_and_hu(tmp_path: Path) -> None:
    write_ct_slices(tmp_path, axial_positions(12), marker_lps=MARKER, slope=0.5, intercept=-512)
    vol = load_dicom(str(tmp_path), require_selected=False)
    assert vol.shape == (12, 16, 16)
    assert np.allclose(_marker_lps(vol), MARKER)
    assert vol.hu.max() == 1000 and vol.hu.min() == 0  # 1024 * 0.5 - 512 = 0 HU


@pytest.mark.parametrize("orientation", [
    (1, 0, 0, 0, 1, 0),  # head-first supine
    (-1, 0, 0, 0, -1, 0),  # head-first prone
    (-1, 0, 0, 0, 1, 0),  # feet-first supine (normal points to the feet)
    (1, 0, 0, 0, -1, 0),  # feet-first prone
])
def test_marker_lands_at_its_lps_point_in_every_patient_position(tmp_path: Path, orientation) -> None:  # noqa: ANN001
    r, c = np.array(orientation[:3], float), np.array(orientation[3:], float)
    origin = np.array([0.0, 0.0, 0.0]) - 8 * r - 8 * c
    n = np.cross(r, c)
    positions = [origin + np.array([0, 0, z]) for z in range(12)]
    write_ct_slices(tmp_path, positions, orientation=orientation, marker_lps=MARKER)
    vol = load_dicom(str(tmp_path), require_selected=False)
    assert np.allclose(_marker_lps(vol), MARKER)
    assert vol.affine_lps[:3, 2] @ n > 0  # k follows the slice normal


def test_small_gap_is_interpolated_and_recorded(tmp_path: Path) -> None:
    pos = [p for k, p in enumerate(axial_positions(14)) if k not in (8, 9)]
    write_ct_slices(tmp_path, pos, marker_lps=MARKER)
    vol = load_dicom(str(tmp_path), require_selected=False)
    assert vol.shape[0] == 14 and vol.meta["gaps_interpolated"] == [[7, 2]]
    assert vol.meta["slices_interpolated"] == 2
    assert np.allclose(_marker_lps(vol), MARKER) and vol.spacing_mm[2] == pytest.approx(1.0)


def test_large_gap_is_rejected_with_reason(tmp_path: Path) -> None:
    pos = [p for k, p in enumerate(axial_positions(20)) if not 5 <= k < 10]
    write_ct_slices(tmp_path, pos)
    (decision,) = build_index(str(tmp_path), secret=DEMO_SECRET).decisions
    assert decision.reason is SeriesReason.INCONSISTENT_GEOMETRY and "gap" in decision.detail
    with pytest.raises(GeometryError, match="gap of 6.0 mm"):
        load_dicom(str(tmp_path), require_selected=False)


def test_duplicate_positions_are_dropped_and_recorded(tmp_path: Path) -> None:
    pos = axial_positions(12)
    write_ct_slices(tmp_path, pos + pos[3:5], marker_lps=MARKER)
    vol = load_dicom(str(tmp_path), require_selected=False)
    assert vol.shape[0] == 12 and vol.meta["duplicates_dropped"] == 2


def test_variable_spacing_is_resampled_to_uniform(tmp_path: Path) -> None:
    z = [0, 1, 2, 3, 4, 5, 6, 7.5, 9, 10.5, 12, 13.5]
    write_ct_slices(tmp_path, [[-8, -8, v] for v in z], marker_lps=MARKER)
    vol = load_dicom(str(tmp_path), require_selected=False)
    assert vol.meta["variable_spacing_resampled"]
    step = vol.spacing_mm[2]
    assert vol.shape[0] == round(13.5 / step) + 1
    assert np.allclose(_marker_lps(vol), MARKER)


def test_gantry_tilt_gives_a_sheared_affine(tmp_path: Path) -> None:
    tilt = np.radians(15)
    orientation = (1, 0, 0, 0, np.cos(tilt), -np.sin(tilt))
    positions = [[-8, -8, 1.0 * k] for k in range(12)]  # table moves along z, slices tilted
    write_ct_slices(tmp_path, positions, orientation=orientation, marker_lps=(-3, -2, 6 - 2 * np.sin(tilt)))
    vol = load_dicom(str(tmp_path), require_selected=False)
    assert vol.meta["gantry_tilt_deg"] == pytest.approx(15, abs=0.01) and vol.meta["affine_sheared"]
    assert np.allclose(vol.affine_lps[:3, 2], (0, 0, 1))  # k = the table step, not the normal
    k, j, i = np.unravel_index(int(np.argmax(vol.hu)), vol.shape)
    expected = np.array([-8, -8, k]) + i * np.array([1, 0, 0]) + j * np.array(orientation[3:])
    assert np.allclose(vol.voxel_to_lps(np.array([[i, j, k]], float))[0], expected)


def test_enhanced_multiframe_ct_loads_per_frame_geometry() -> None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("eCT_Supplemental.dcm")
    vol = load_dicom(path, require_selected=False)
    assert vol.shape == (2, 512, 512) and vol.meta["enhanced_multiframe"]
    assert abs(vol.affine_lps[2, 2]) == pytest.approx(10.0)  # frames 10 mm apart


def test_memory_stays_within_twice_the_int16_volume(tmp_path: Path) -> None:
    size, n = 128, 60
    write_ct_slices(tmp_path, axial_positions(n), size=size)
    nbytes = size * size * n * 2
    tracemalloc.start()
    vol = load_dicom(str(tmp_path), require_selected=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert vol.hu.nbytes == nbytes
    assert peak < 2 * nbytes, f"peak {peak / nbytes:.2f} x the int16 volume"
