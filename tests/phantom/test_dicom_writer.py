"""The DICOM writer: exact geometry and lossless HU for every transfer syntax, determinism."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest

from vertfrac_core.phantom.derived import LocalizerView, localizer, sagittal_reformat, thick_axial
from vertfrac_core.phantom.dicom_writer import (
    SeriesHeader,
    TransferSyntax,
    derive_uid,
    encode_secondary_capture,
    hu_to_stored,
    write_ct_series,
)
from vertfrac_core.volume import Volume, axis_aligned_affine


def _header(**kw: object) -> SeriesHeader:
    base: dict = dict(
        patient_id="PID0001", patient_name="Doe^Jane", birth_date=date(1950, 3, 4), sex="F",
        age_years=71, study_date=date(2021, 5, 6), study_time="101500",
        study_uid=derive_uid("study", 1), series_uid=derive_uid("series", 1),
        frame_of_reference_uid=derive_uid("for", 1), series_number=2,
        series_description="Thorax 1.0 B70f", accession_number="ACC0000001",
        manufacturer="SIEMENS", model="SOMATOM Force", kernel="B70f", kvp=120,
        contrast_agent="Iohexol", slice_thickness_mm=1.25,
    )
    base.update(kw)
    return SeriesHeader(**base)


def _box_volume(affine: np.ndarray, shape: tuple[int, int, int] = (6, 40, 36)) -> Volume:
    """A 300 HU box in -1000 HU air, with a few extreme and fractional values."""
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[1:5, 5:15, 6:18] = 300.0
    hu[2, 10, 10] = 2999.6  # rounds to 3000
    hu[3, 10, 11] = -1030.0  # below the uint16 range: clipped to -1024
    hu[0, 0, 0] = 0.4
    return Volume(hu=hu, affine_lps=affine)


def _read_affine(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Affine and HU rebuilt from files, ordered by InstanceNumber (the writer's k order)."""
    dss = sorted((pydicom.dcmread(p) for p in paths), key=lambda d: int(d.InstanceNumber))
    first = dss[0]
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    row_sp, col_sp = (float(v) for v in first.PixelSpacing)
    aff = np.eye(4)
    aff[:3, 0] = iop[:3] * col_sp
    aff[:3, 1] = iop[3:] * row_sp
    ipp = np.array([[float(v) for v in d.ImagePositionPatient] for d in dss])
    aff[:3, 3] = ipp[0]
    if len(dss) > 1:
        aff[:3, 2] = ipp[1] - ipp[0]
        steps = np.diff(ipp, axis=0)
        np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-6)
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])
    return aff, hu


_OBLIQUE_FFS = axis_aligned_affine(
    (0.7421875, 0.6835, 1.25), (123.456789, -87.654321, 1234.5678),
    directions=np.array([[-1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]]).T,
)


@pytest.mark.parametrize("ts", list(TransferSyntax))
@pytest.mark.parametrize("signed", [False, True])
def test_round_trip_geometry_and_hu(tmp_path: Path, ts: TransferSyntax, signed: bool) -> None:
    vol = _box_volume(_OBLIQUE_FFS)
    paths = write_ct_series(vol, _header(signed=signed), str(tmp_path / "s"), ts)
    assert [Path(p).name for p in paths] == [f"IM{k:04d}.dcm" for k in range(1, 7)]
    aff, hu = _read_affine(paths)
    np.testing.assert_allclose(aff, vol.affine_lps, atol=1e-6, rtol=0)
    lo = -32768.0 - 1024.0 if signed else -1024.0
    expected = np.clip(np.rint(vol.hu), lo, None)
    np.testing.assert_array_equal(hu, expected)
    ds = pydicom.dcmread(paths[0])
    assert ds.file_meta.TransferSyntaxUID == ts.value
    assert ds.PixelRepresentation == (1 if signed else 0)
    assert float(ds.SliceThickness) == 1.25
    assert float(ds.SpacingBetweenSlices) == pytest.approx(1.25, abs=1e-9)
    assert ds.ContrastBolusAgent == "Iohexol" and ds.ConvolutionKernel == "B70f"
    assert ds.PatientAge == "071Y" and ds.Modality == "CT"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"


def test_hfs_position_and_slice_location(tmp_path: Path) -> None:
    aff = axis_aligned_affine((0.5, 0.5, 2.0), (-60.0, -50.0, 100.0))
    paths = write_ct_series(_box_volume(aff, (6, 16, 16)), _header(), str(tmp_path), "rle_lossless")
    locs = [float(pydicom.dcmread(p).SliceLocation) for p in paths]
    assert locs == pytest.approx([100.0 + 2.0 * k for k in range(6)])
    ds = pydicom.dcmread(paths[0])
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert [float(v) for v in ds.ImagePositionPatient] == [-60.0, -50.0, 100.0]


def test_files_are_deterministic_and_uids_unique(tmp_path: Path) -> None:
    vol = _box_volume(_OBLIQUE_FFS)
    a = write_ct_series(vol, _header(), str(tmp_path / "a"), TransferSyntax.J2K_LOSSLESS)
    b = write_ct_series(vol, _header(), str(tmp_path / "b"), TransferSyntax.J2K_LOSSLESS)
    assert [Path(p).read_bytes() for p in a] == [Path(p).read_bytes() for p in b]
    uids = {pydicom.dcmread(p).SOPInstanceUID for p in a}
    assert len(uids) == len(a)
    c = write_ct_series(vol, _header(series_uid=derive_uid("series", 2)), str(tmp_path / "c"))
    assert pydicom.dcmread(c[0]).SOPInstanceUID not in uids


def test_stored_values_clip_to_type() -> None:
    hu = np.array([-5000.0, -1024.0, 0.5, 1.5, 70000.0])
    np.testing.assert_array_equal(hu_to_stored(hu, signed=False), [0, 0, 1024, 1026, 65535])
    assert hu_to_stored(hu, signed=True).dtype == np.int16


def test_rejects_non_orthogonal_plane(tmp_path: Path) -> None:
    aff = np.eye(4)
    aff[:3, 1] = [0.5, 1.0, 0.0]
    with pytest.raises(ValueError, match="orthogonal"):
        write_ct_series(_box_volume(aff), _header(), str(tmp_path))


def test_unknown_transfer_syntax() -> None:
    with pytest.raises(ValueError, match="unknown transfer syntax"):
        TransferSyntax.parse("jpeg-xl")


def test_header_validation() -> None:
    with pytest.raises(ValueError, match="HHMMSS"):
        _header(study_time="10:15")


@pytest.mark.parametrize("view", list(LocalizerView))
def test_localizer_geometry(tmp_path: Path, view: LocalizerView) -> None:
    vol = _box_volume(_OBLIQUE_FFS)
    loc = localizer(vol, view)
    assert loc.shape[0] == 1
    header = _header(image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), slice_thickness_mm=None)
    (path,) = write_ct_series(loc, header, str(tmp_path), TransferSyntax.EXPLICIT_LE)
    ds = pydicom.dcmread(path)
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    assert "SliceThickness" not in ds
    iop = [float(v) for v in ds.ImageOrientationPatient]
    assert iop == ([1, 0, 0, 0, 0, -1] if view == LocalizerView.CORONAL else [0, 1, 0, 0, 0, -1])
    # the top row is the volume's most superior slice; the box (slices 1-4) appears in rows 1-4
    top_z = vol.bounds_lps()[1][2]
    assert float(ds.ImagePositionPatient[2]) == pytest.approx(top_z)
    img = ds.pixel_array.astype(float)
    assert img[1:5].max() > img[0].max()


def test_sagittal_reformat_maps_the_same_points() -> None:
    vol = _box_volume(_OBLIQUE_FFS)
    sag = sagittal_reformat(vol, step_mm=0.75)  # one column per slab: pure resampling
    assert sag.spacing_mm[2] == pytest.approx(0.7421875)
    src = vol.voxel_to_lps(np.array([[6.0, 5.0, 1.0], [17.0, 14.0, 4.0]]))
    ijk = np.rint(sag.lps_to_voxel(src)).astype(int)
    for (i, j, k), p in zip(ijk, src, strict=True):
        np.testing.assert_allclose(sag.voxel_to_lps(np.array([[i, j, k]]))[0], p, atol=1e-9)
        assert sag.hu[k, j, i] == 300.0


def test_thick_axial_preserves_mean_and_geometry() -> None:
    aff = axis_aligned_affine((1.0, 1.0, 1.25), (0.0, 0.0, 0.0))
    rng = np.random.default_rng(0)
    hu = rng.normal(0, 10, (8, 4, 4)).astype(np.float32)
    thick = thick_axial(Volume(hu=hu, affine_lps=aff), 5.0)
    assert thick.shape == (2, 4, 4)
    np.testing.assert_allclose(thick.hu[0], hu[:4].mean(axis=0), atol=1e-5)
    # slab 0 covers thin slices 0-3: centre at 1.5 * 1.25 mm
    np.testing.assert_allclose(thick.affine_lps[:3, 3], [0.0, 0.0, 1.875])
    assert thick.spacing_mm[2] == pytest.approx(5.0)


def test_secondary_capture(tmp_path: Path) -> None:
    img = np.zeros((32, 48), dtype=np.uint8)
    img[4:8, 4:40] = 200
    data = encode_secondary_capture(img, _header(series_description="Dose Report"), "DLP=412 mGy*cm")
    out = tmp_path / "dose.dcm"
    out.write_bytes(data)
    ds = pydicom.dcmread(out)
    assert ds.Modality == "OT" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    np.testing.assert_array_equal(ds.pixel_array, img)
