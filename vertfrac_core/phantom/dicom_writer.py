"""Write volumes as DICOM: CT Image Storage (one file per slice) and a Secondary Capture object.

Geometry comes straight from the volume's affine (voxel ``(i, j, k, 1)`` -> LPS mm, see
:mod:`vertfrac_core.volume`): slice ``k`` has ImagePositionPatient ``affine[:3, 3] + k *
affine[:3, 2]``; ImageOrientationPatient is the row direction ``affine[:3, 0] / |affine[:3, 0]|``
followed by the column direction ``affine[:3, 1] / |affine[:3, 1]|``; PixelSpacing is
``[row spacing, column spacing] = [|affine[:3, 1]|, |affine[:3, 0]|]``. SliceLocation is the
position projected on the slice normal (row x column direction). Decimal strings keep 16
characters, so positions survive to about 1e-10 mm.

HU are stored as integers, ``stored = rint(HU) + 1024`` (RescaleIntercept -1024, slope 1) in
uint16, or int16 when ``SeriesHeader.signed``; values outside the type's range are clipped, as
scanners clip below -1024 HU. Everything is deterministic: UIDs are hashes of their inputs
(:func:`derive_uid`), dates and times come from the header, never from the clock, so the same
inputs give byte-identical files.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import fsspec
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, generate_uid
from pydicom.valuerep import format_number_as_ds

from vertfrac_core.volume import Volume

log = logging.getLogger(__name__)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root; suffix = SHA-512 of the inputs
HU_INTERCEPT = -1024.0
J2K_MIN_SIDE = 32  # openjpeg encodes 6 resolutions: 2**5 pixels at least


class TransferSyntax(StrEnum):
    """The transfer syntaxes the phantom writes (values are the UIDs)."""

    EXPLICIT_LE = "1.2.840.10008.1.2.1"
    RLE_LOSSLESS = "1.2.840.10008.1.2.5"
    J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"

    @classmethod
    def parse(cls, value: TransferSyntax | str) -> TransferSyntax:
        """Accept a member, its UID or its name (``"rle_lossless"``)."""
        if isinstance(value, cls):
            return value
        for member in cls:
            if value in (member.value, member.name, member.name.lower()):
                return member
        raise ValueError(
            f"unknown transfer syntax {value!r}; expected one of "
            f"{[m.name.lower() for m in cls]} or their UIDs"
        )


@dataclass(frozen=True)
class SeriesHeader:
    """Patient, study and series attributes of one series (what a PACS export would carry)."""

    patient_id: str
    patient_name: str  # DICOM PN, "Family^Given"
    birth_date: date
    sex: str  # "F" or "M"
    age_years: int
    study_date: date
    study_time: str  # "HHMMSS"
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    series_number: int
    series_description: str
    accession_number: str
    manufacturer: str
    model: str
    kernel: str
    kvp: int
    contrast_agent: str | None  # ContrastBolusAgent when enhanced, None for a native scan
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    patient_position: str = "HFS"
    body_part: str = "CHEST"
    slice_thickness_mm: float | None = None  # None: the element is left out (localizers)
    institution: str = "Synthetic General Hospital"
    window_center: float = 40.0
    window_width: float = 400.0
    signed: bool = False  # int16 instead of uint16 storage
    series_time: str | None = None  # default: study_time

    def __post_init__(self) -> None:
        if len(self.study_time) != 6 or not self.study_time.isdigit():
            raise ValueError(f"study_time must be 'HHMMSS'; got {self.study_time!r}")
        if self.sex not in ("F", "M", "O"):
            raise ValueError(f"sex must be 'F', 'M' or 'O'; got {self.sex!r}")


def derive_uid(*parts: object) -> str:
    """A deterministic DICOM UID from ``parts`` (same parts -> same UID)."""
    return str(generate_uid(prefix=UID_PREFIX, entropy_srcs=[str(p) for p in parts]))


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


@dataclass(frozen=True)
class SliceGeometry:
    """DICOM plane geometry of a volume (LPS mm)."""

    orientation: np.ndarray  # (6,) row direction then column direction
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing)
    positions: np.ndarray  # (K, 3) ImagePositionPatient of each slice
    normal: np.ndarray  # (3,) row direction x column direction
    spacing_between_mm: float  # slice step projected on the normal (0 for one slice)


def slice_geometry(affine_lps: np.ndarray, n_slices: int, *, tol: float = 1e-6) -> SliceGeometry:
    """Plane geometry of the slices of a volume with ``affine_lps`` (see the module docstring)."""
    aff = np.asarray(affine_lps, dtype=np.float64)
    col_spacing = float(np.linalg.norm(aff[:3, 0]))
    row_spacing = float(np.linalg.norm(aff[:3, 1]))
    row_dir = aff[:3, 0] / col_spacing
    col_dir = aff[:3, 1] / row_spacing
    if abs(float(row_dir @ col_dir)) > tol:
        raise ValueError(
            f"row and column directions are not orthogonal (dot {row_dir @ col_dir:.2e}); "
            "DICOM planes need orthogonal in-plane axes"
        )
    normal = np.cross(row_dir, col_dir)
    positions = aff[:3, 3][None, :] + np.arange(n_slices)[:, None] * aff[:3, 2][None, :]
    step = abs(float(aff[:3, 2] @ normal)) if n_slices > 1 else 0.0
    return SliceGeometry(
        orientation=np.concatenate([row_dir, col_dir]),
        pixel_spacing=(row_spacing, col_spacing),
        positions=positions,
        normal=normal,
        spacing_between_mm=step,
    )


def hu_to_stored(hu: np.ndarray, signed: bool) -> np.ndarray:
    """Round and clip HU to the stored integer type (intercept -1024, slope 1)."""
    dtype = np.int16 if signed else np.uint16
    info = np.iinfo(dtype)
    stored = np.rint(np.asarray(hu, dtype=np.float64) - HU_INTERCEPT)  # one slice at a time
    return np.clip(stored, info.min, info.max).astype(dtype)


def _common_dataset(header: SeriesHeader, sop_class: str, modality: str) -> Dataset:
    """Patient, study, series and equipment modules shared by every object of a series."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.StudyDate = header.study_date.strftime("%Y%m%d")
    ds.SeriesDate = ds.StudyDate
    ds.ContentDate = ds.StudyDate
    ds.StudyTime = header.study_time
    ds.SeriesTime = header.series_time or header.study_time
    ds.ContentTime = ds.SeriesTime
    ds.AccessionNumber = header.accession_number
    ds.Modality = modality
    ds.Manufacturer = header.manufacturer
    ds.InstitutionName = header.institution
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CT " + header.body_part.title()
    ds.SeriesDescription = header.series_description
    ds.ManufacturerModelName = header.model
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = header.birth_date.strftime("%Y%m%d")
    ds.PatientSex = header.sex
    ds.PatientAge = f"{header.age_years:03d}Y"
    ds.BodyPartExamined = header.body_part
    ds.StudyInstanceUID = header.study_uid
    ds.SeriesInstanceUID = header.series_uid
    ds.StudyID = header.accession_number[-8:]
    ds.SeriesNumber = header.series_number
    ds.ImageType = list(header.image_type)
    return ds


def _finish(ds: Dataset, sop_uid: str, ts: TransferSyntax, pixels: np.ndarray) -> bytes:
    """Attach the pixels (encoded with ``ts``) and file meta; return the Part 10 file bytes."""
    ds.SOPInstanceUID = sop_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(TransferSyntax.EXPLICIT_LE.value)
    ds.file_meta = meta
    arr = np.ascontiguousarray(pixels)
    if ts == TransferSyntax.EXPLICIT_LE:
        ds.PixelData = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        ds["PixelData"].VR = "OW" if arr.dtype.itemsize == 2 else "OB"
    else:
        ds.compress(UID(ts.value), arr=arr, generate_instance_uid=False)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def slice_file_name(instance_number: int) -> str:
    """File name of instance ``instance_number`` (1-based) inside a series folder."""
    return f"IM{instance_number:04d}.dcm"


def encode_ct_series(
    volume: Volume, header: SeriesHeader, transfer_syntax: TransferSyntax | str
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(file name, Part 10 bytes)`` for every slice of ``volume``, in slice order k.

    InstanceNumber is ``k + 1``; the file name is :func:`slice_file_name` of it.
    """
    ts = TransferSyntax.parse(transfer_syntax)
    n_slices, rows, cols = volume.shape
    if ts == TransferSyntax.J2K_LOSSLESS and min(rows, cols) < J2K_MIN_SIDE:
        raise ValueError(
            f"JPEG 2000 (6 wavelet levels) needs images of at least {J2K_MIN_SIDE} pixels a side; "
            f"got {rows} x {cols}: use RLE or uncompressed for such small images"
        )
    geo = slice_geometry(volume.affine_lps, n_slices)
    for k in range(n_slices):
        ds = _common_dataset(header, CT_IMAGE_STORAGE, "CT")
        ds.ScanOptions = "HELICAL MODE" if "LOCALIZER" not in header.image_type else "SURVIEW"
        if header.slice_thickness_mm is not None:
            ds.SliceThickness = _ds(header.slice_thickness_mm)
        ds.KVP = header.kvp
        if n_slices > 1:
            ds.SpacingBetweenSlices = _ds(geo.spacing_between_mm)
        ds.ConvolutionKernel = header.kernel
        ds.GantryDetectorTilt = "0"
        ds.PatientPosition = header.patient_position
        if header.contrast_agent:
            ds.ContrastBolusAgent = header.contrast_agent
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(v) for v in geo.positions[k]]
        ds.ImageOrientationPatient = [_ds(v) for v in geo.orientation]
        ds.FrameOfReferenceUID = header.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds(float(geo.positions[k] @ geo.normal))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.PixelSpacing = [_ds(geo.pixel_spacing[0]), _ds(geo.pixel_spacing[1])]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if header.signed else 0
        ds.WindowCenter = _ds(header.window_center)
        ds.WindowWidth = _ds(header.window_width)
        ds.RescaleIntercept = _ds(HU_INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        sop_uid = derive_uid(header.series_uid, "instance", k + 1)
        stored = hu_to_stored(volume.hu[k], header.signed)  # per slice: bounded memory
        yield slice_file_name(k + 1), _finish(ds, sop_uid, ts, stored)


def encode_secondary_capture(
    image: np.ndarray, header: SeriesHeader, comments: str = ""
) -> bytes:
    """A Secondary Capture object (Modality OT, 8-bit grey, uncompressed) such as a dose screen.

    ``image`` is (rows, columns) uint8.
    """
    img = np.asarray(image)
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"secondary capture needs a 2D uint8 image; got {img.dtype} {img.shape}")
    ds = _common_dataset(header, SECONDARY_CAPTURE_STORAGE, "OT")
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    if comments:
        ds.ImageComments = comments
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = img.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    return _finish(ds, derive_uid(header.series_uid, "instance", 1), TransferSyntax.EXPLICIT_LE, img)


def open_fs(url: str, storage_options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and root path of ``url`` (local path, ``file://`` or ``s3://``)."""
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs, str(root).rstrip("/")


def write_files(
    fs: fsspec.AbstractFileSystem, folder: str, files: Iterable[tuple[str, bytes]]
) -> list[str]:
    """Write ``(name, bytes)`` pairs into ``folder`` on ``fs``; return the paths written."""
    fs.makedirs(folder, exist_ok=True)
    paths = []
    for name, data in files:
        path = f"{folder}/{name}"
        fs.pipe_file(path, data)
        paths.append(path)
    return paths


def write_ct_series(
    volume: Volume,
    header: SeriesHeader,
    dest_url: str,
    transfer_syntax: TransferSyntax | str = TransferSyntax.EXPLICIT_LE,
    *,
    storage_options: dict | None = None,
) -> list[str]:
    """Write ``volume`` as a CT series, one file per slice, into the folder ``dest_url``.

    ``dest_url`` is a local folder or an fsspec URL (``s3://bucket/prefix/series_001``);
    ``storage_options`` go to fsspec. Returns the paths written, in slice order.
    """
    fs, folder = open_fs(dest_url, storage_options)
    paths = write_files(fs, folder, encode_ct_series(volume, header, transfer_syntax))
    log.debug("wrote %d slices of series %s to %s", len(paths), header.series_number, dest_url)
    return paths
