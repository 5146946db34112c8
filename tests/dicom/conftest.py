"""Shared fixtures: paths to ../shared/data and a tiny synthetic CT series writer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = (REPO / ".." / "shared" / "data").resolve()
QUIRKS = DATA / "dicom-quirks"
EXAMPLE_DICOM = DATA / "real" / "totalseg" / "example_ct_dicom"
EXAMPLE_SEG = DATA / "real" / "totalseg" / "example_ct_dicom_seg.nii.gz"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data missing: {path}")
    return path


def write_ct_slices(
    folder: Path,
    positions: Sequence[Sequence[float]],
    *,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    size: int = 16,
    spacing: float = 1.0,
    thickness: float = 1.0,
    marker_lps: Sequence[float] | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    modality: str = "CT",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    kernel: str = "STANDARD",
    contrast: str = "",
    slope: float = 1.0,
    intercept: float = -1024.0,
    prefix: str = "IM",
    transfer_syntax: str | None = None,
) -> list[Path]:
    """Write one 16x16 slice per position (stored value 1024 = 0 HU, marker 2024 = 1000 HU).

    The marker is the voxel nearest to ``marker_lps`` in each slice it lies in (within half a
    thickness), so a correct loader puts 1000 HU at that LPS point. Instance numbers run
    opposite to the positions to catch loaders that sort by InstanceNumber.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid if study_uid is not None else generate_uid()
    series_uid = series_uid if series_uid is not None else generate_uid()
    o = np.asarray(orientation, float)
    r, c = o[:3], o[3:]
    n = np.cross(r, c)
    paths = []
    for k, pos in enumerate(positions):
        stored = np.full((size, size), 1024, np.uint16)
        if marker_lps is not None:
            d = np.asarray(marker_lps, float) - np.asarray(pos, float)
            if abs(d @ n) <= thickness / 2 + 1e-6:
                i, j = int(round(d @ r / spacing)), int(round(d @ c / spacing))
                if 0 <= i < size and 0 <= j < size:
                    stored[j, i] = 1024 + int(round(1000 / slope))
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.ImageType = modality, list(image_type)
        ds.PatientID, ds.PatientAge, ds.PatientSex = "P1", "070Y", "F"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.StudyDate, ds.SeriesNumber = "20250101", 1
        ds.InstanceNumber = len(positions) - k
        ds.ImageOrientationPatient = [float(x) for x in orientation]
        ds.ImagePositionPatient = [float(x) for x in pos]
        ds.PixelSpacing, ds.SliceThickness = [spacing, spacing], thickness
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.ConvolutionKernel = kernel
        if contrast:
            ds.ContrastBolusAgent = contrast
        ds.PixelData = stored.tobytes()
        if transfer_syntax:
            ds.compress(transfer_syntax)
        path = folder / f"{prefix}{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def axial_positions(n: int, step: float = 1.0, z0: float = 0.0, xy: tuple[float, float] = (-8.0, -8.0)) -> list[list[float]]:
    return [[xy[0], xy[1], z0 + k * step] for k in range(n)]


@pytest.fixture
def make_series() -> Callable[..., list[Path]]:
    return write_ct_slices
