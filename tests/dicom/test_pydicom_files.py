"""pydicom's and pydicom-data's test files: every file indexes to a header or a reason, every
CT series loads with a geometry or fails with a specific DicomError."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from vertfrac_core.dicom.index import build_index
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.dicom.load import load_series
from vertfrac_core.errors import DicomError


def _folders() -> list[Path]:
    import pydicom

    out = [Path(pydicom.__file__).parent / "data" / "test_files"]
    try:
        import data_store  # pydicom-data

        out.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("folder", _folders(), ids=lambda p: p.parent.name)
def test_every_file_indexes_and_every_ct_series_loads_or_fails_clearly(folder: Path) -> None:
    result = build_index(str(folder), secret=DEMO_SECRET)
    n_files = sum(len(files) for _, _, files in os.walk(folder))
    assert len(result.headers) >= n_files  # zip members add rows, nothing is lost
    assert all(h.ok or h.message for h in result.headers)
    loaded = failed = 0
    for series in result.series:
        if series.first.modality != "CT":
            continue
        try:
            vol = load_series(series)
        except DicomError as err:  # GeometryError, UnsupportedTransferSyntaxError, decode errors
            assert str(err)
            failed += 1
            continue
        assert vol.hu.dtype == np.int16
        assert vol.shape[0] == series.n_slices or vol.meta["variable_spacing_resampled"] \
            or vol.meta["gaps_interpolated"]
        assert np.isfinite(vol.affine_lps).all()
        loaded += 1
    assert loaded > 0


def test_single_file_hu_matches_pydicom_reference() -> None:
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    from vertfrac_core.dicom.load import load_dicom

    for name in ("CT_small.dcm", "693_J2KR.dcm", "693_UNCR.dcm"):
        try:
            path = get_testdata_file(name)
        except Exception:  # noqa: BLE001 - pydicom-data may be absent
            continue
        if path is None:
            continue
        ds = dcmread(path)
        ref = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        vol = load_dicom(path, require_selected=False)
        assert np.array_equal(vol.hu[0], np.rint(ref).astype(np.int16)), name
        assert np.allclose(vol.affine_lps[:3, 3], [float(x) for x in ds.ImagePositionPatient])
