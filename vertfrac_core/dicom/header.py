"""One DICOM file's header: parsed from a bounded byte prefix, never from the pixel data.

``read_header`` asks a ``reader(n)`` callable for the first ``n`` bytes of the object (64 KiB at
first, more only while the header is not complete, up to ``HeaderLimits.max_header_bytes``), so
it works the same on local files, S3 range reads and zip members, with bounded memory and time.
Every failure becomes a ``FileHeader`` with a ``FileReason``; this module never raises for data.
pydicom's validation warnings are silenced by the caller (``index``), once, around the whole run:
``warnings.catch_warnings`` is not thread-safe, so it does not belong in per-file code.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from vertfrac_core.dicom import rawscan
from vertfrac_core.dicom.reasons import FileReason

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
DEFLATED_TS = "1.2.840.10008.1.2.1.99"
_PIXEL_TAGS_LE = (b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")
_PIXEL_TAGS_BE = (b"\x7f\xe0\x00\x10", b"\x7f\xe0\x00\x08", b"\x7f\xe0\x00\x09")

HEADER_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "Modality", "ImageType", "Manufacturer",
    "PatientID", "PatientName", "PatientAge", "PatientSex", "PatientBirthDate",
    "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID",
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "AcquisitionNumber",
    "InstanceNumber", "FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient",
    "PixelSpacing", "SliceThickness", "SpacingBetweenSlices", "Rows", "Columns",
    "NumberOfFrames", "SamplesPerPixel", "BitsAllocated", "BitsStored", "PixelRepresentation",
    "PhotometricInterpretation", "RescaleSlope", "RescaleIntercept", "ConvolutionKernel",
    "ContrastBolusAgent", "GantryDetectorTilt", "BodyPartExamined", "ReconstructionDiameter",
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
]


_US_KEYWORDS = {"Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored",
                "PixelRepresentation"}


def _tag_of(keyword: str) -> int:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword  # static list above: a programming error if missing
    return int(tag)


_TAGS = {kw: _tag_of(kw) for kw in [*HEADER_TAGS, "MediaStorageSOPClassUID"]}
_WANTED = set(_TAGS.values())


class _RawView:
    """Read-only ``Dataset.get`` look-alike over the raw values found by ``rawscan``."""

    def __init__(self, raw: dict[int, bytes], little: bool, ts: str) -> None:
        self.raw, self.h2, self.ts = raw, "<H" if little else ">H", ts
        self.file_meta = self

    def get(self, keyword: str, default: Any = None) -> Any:
        if keyword == "TransferSyntaxUID":
            return self.ts
        b = self.raw.get(_TAGS.get(keyword, -1))
        if b is None:
            return default
        if keyword in _US_KEYWORDS:
            return struct.unpack(self.h2, b[:2])[0] if len(b) >= 2 else default
        text = b.decode("latin-1").strip("\x00 ")
        parts = text.split("\\")
        return parts if len(parts) > 1 else (text or default)


@dataclass(frozen=True)
class HeaderLimits:
    """Byte bounds of header reads."""

    prefix_bytes: int = 64 << 10  # first read
    max_header_bytes: int = 32 << 20  # largest header accepted (enhanced CT can be large)
    max_inflated_bytes: int = 512 << 20  # deflated transfer syntax: largest inflated dataset
    max_pixel_ratio: float = 4.0  # declared pixel bytes / expected before "element too large"


@dataclass(frozen=True)
class FileHeader:
    """What the index keeps of one file (or zip member). ``reason`` None means a usable image.

    Geometry is in patient LPS mm: ``position`` is ImagePositionPatient of the first frame,
    ``orientation`` the 6 direction cosines (row then column direction), ``pixel_spacing``
    (row spacing, column spacing) as in DICOM. ``frame_positions`` is set for multi-frame files.
    """

    location: str
    size: int
    etag: str = ""
    reason: FileReason | None = None
    message: str = ""
    sop_class_uid: str = ""
    transfer_syntax: str = ""
    modality: str = ""
    image_type: tuple[str, ...] = ()
    manufacturer: str = ""
    patient_id: str = ""
    patient_name: str = ""  # kept only to find and redact it (``redact.py``); never written
    birth_date: str = ""  # likewise
    sop_uid: str = ""  # likewise
    patient_age: str = ""
    patient_sex: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    study_id: str = ""
    series_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    acquisition_number: int | None = None
    instance_number: int | None = None
    frame_of_reference: str = ""
    position: tuple[float, float, float] | None = None
    orientation: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, float] | None = None
    slice_thickness: float | None = None
    rows: int = 0
    cols: int = 0
    frames: int = 1
    samples_per_pixel: int = 1
    bits_allocated: int = 0
    bits_stored: int = 0
    pixel_representation: int = 0
    photometric: str = ""
    slope: float = 1.0
    intercept: float = 0.0
    kernel: str = ""
    contrast_agent: str = ""
    gantry_tilt: float | None = None
    body_part: str = ""
    reconstruction_diameter: float | None = None  # mm, (0018,1100) when the scanner wrote it
    pixel_offset: int | None = None  # byte offset of the Pixel Data element (its tag)
    frame_positions: tuple[tuple[float, float, float], ...] | None = None
    frame_rescale: tuple[tuple[float, float], ...] | None = None
    is_enhanced: bool = False

    @property
    def ok(self) -> bool:
        return self.reason is None


def _failed(location: str, size: int, etag: str, reason: FileReason, message: str) -> FileHeader:
    return FileHeader(location=location, size=size, etag=etag, reason=reason, message=message)


def read_header(
    reader: Callable[[int], bytes],
    location: str,
    size: int,
    *,
    etag: str = "",
    limits: HeaderLimits = HeaderLimits(),
) -> FileHeader:
    """Read the header of one object through ``reader(n)`` (its first ``n`` bytes).

    Returns a ``FileHeader``; on any problem the header carries a ``FileReason`` and a message.
    """
    if size == 0:
        return _failed(location, size, etag, FileReason.EMPTY, "file is empty (0 bytes)")
    n = min(limits.prefix_bytes, size)
    while True:
        try:
            data = reader(n)
        except Exception as err:  # noqa: BLE001 - any storage error becomes a row
            return _failed(location, size, etag, FileReason.READ_ERROR, f"read failed: {err}")
        complete = len(data) >= size
        result = _parse(data, location, size, etag, complete, limits)
        if isinstance(result, FileHeader):
            return result
        if n >= size:  # cannot grow further although the parse wants more: file is short
            return _failed(location, size, etag, FileReason.TRUNCATED,
                           "file ends inside its header")
        if n >= limits.max_header_bytes:
            return _failed(location, size, etag, FileReason.HEADER_TOO_LARGE,
                           f"header is larger than {limits.max_header_bytes} bytes")
        n = min(n * 4, size, limits.max_header_bytes)


def _looks_like_raw_dataset(data: bytes) -> bool:
    """A preamble-less dataset starts with a group 0002 or 0008 tag (little or big endian)."""
    return data[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08") and len(data) >= 8


def _parse(
    data: bytes, location: str, size: int, etag: str, complete: bool, limits: HeaderLimits
) -> FileHeader | None:
    """Parse a prefix; None means "need more bytes"."""
    if DEFLATED_TS.encode() in data[:1024] and not complete:
        return None  # deflated: pydicom inflates the whole remainder, so read it all first
    if DEFLATED_TS.encode() in data[:1024]:
        bomb = _deflate_bomb(data, limits)
        if bomb:
            return _failed(location, size, etag, FileReason.DECOMPRESSION_BOMB, bomb)
    try:
        raw, offset, little_raw, ts = rawscan.scan(data, _WANTED)
    except rawscan.Incomplete as inc:
        if not inc.at_boundary and inc.end > size:  # runs past the end of the file: decided
            reason = (FileReason.ELEMENT_TOO_LARGE if inc.end - size > max(size, 1 << 20)
                      else FileReason.TRUNCATED)
            return _failed(location, size, etag, reason,
                           f"an element declares a length reaching byte {inc.end} of a "
                           f"{size}-byte file")
        if not complete:
            return None
    except rawscan.NotSimple:
        pass
    else:  # the common case: a plain Part 10 file, read without building a Dataset
        view: Any = _RawView(raw, little_raw, ts)
        return _to_header(view, data, location, size, etag, offset, little_raw, limits)
    fp = io.BytesIO(data)
    try:
        try:
            ds = dcmread(fp, stop_before_pixels=True, specific_tags=HEADER_TAGS)
        except InvalidDicomError:
            if not _looks_like_raw_dataset(data):
                return _failed(location, size, etag, FileReason.NOT_DICOM,
                               "no DICOM preamble ('DICM') and no dataset at byte 0")
            fp = io.BytesIO(data)
            ds = dcmread(fp, stop_before_pixels=True, specific_tags=HEADER_TAGS, force=True)
    except (EOFError, struct.error) as err:
        if not complete:
            return None
        return _failed(location, size, etag, FileReason.TRUNCATED, f"file ends early: {err}")
    except Exception as err:  # noqa: BLE001 - pydicom raises many types on bad input
        if not complete and len(data) < size:
            return None
        return _failed(location, size, etag, FileReason.MALFORMED,
                       f"pydicom cannot parse it: {type(err).__name__}: {err}")
    pos = fp.tell()
    little = _is_little_endian(ds)
    at_pixels = data[pos:pos + 4] in (_PIXEL_TAGS_LE if little else _PIXEL_TAGS_BE)
    if DEFLATED_TS.encode() in data[:1024]:
        # pydicom parsed an inflated copy: the pixel offset in ``data`` is meaningless (-1)
        return _to_header(ds, data, location, size, etag, -1, little, limits)
    if not at_pixels:
        if pos > size:
            over = pos - size
            reason = (FileReason.ELEMENT_TOO_LARGE if over > max(size, 1 << 20)
                      else FileReason.TRUNCATED)
            return _failed(location, size, etag, reason,
                           f"an element declares a length reaching byte {pos} of a {size}-byte file")
        if not complete:
            return None
    return _to_header(ds, data, location, size, etag, pos if at_pixels else None, little, limits)


def _deflate_bomb(data: bytes, limits: HeaderLimits) -> str:
    """Inflate a deflated-syntax dataset in bounded chunks; a message if it grows too large."""
    start = _meta_end(data)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    chunk = data[start:]
    try:
        while chunk:
            out = inflater.decompress(chunk, 1 << 20)
            total += len(out)
            if total > limits.max_inflated_bytes:
                return f"deflated dataset inflates past {limits.max_inflated_bytes} bytes"
            chunk = inflater.unconsumed_tail
    except zlib.error:
        return ""  # not our concern here: pydicom reports the malformed stream
    return ""


def _meta_end(data: bytes) -> int:
    """Byte offset just after the file meta group, from its group length (0002,0000)."""
    i = data.find(b"\x02\x00\x00\x00UL\x04\x00", 128)
    if i < 0:
        return 132
    (length,) = struct.unpack("<I", data[i + 8:i + 12])
    return i + 12 + length


def _is_little_endian(ds: Dataset) -> bool:
    enc = getattr(ds, "original_encoding", None)
    if enc and enc[1] is not None:
        return bool(enc[1])
    return True


def _get(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """Value of a keyword, or ``default`` when absent, empty or unparseable."""
    try:
        value = ds.get(keyword, default)
    except Exception:  # noqa: BLE001 - malformed values read lazily
        return default
    if value is None or value == "":
        return default
    return value


def _str(ds: Dataset, keyword: str) -> str:
    v = _get(ds, keyword, "")
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def _floats(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    v = _get(ds, keyword)
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _float(ds: Dataset, keyword: str) -> float | None:
    v = _get(ds, keyword)
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        v = v[0] if len(v) else None
    try:
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    f = _float(ds, keyword)
    return int(f) if f is not None else default


def _item(ds: Dataset | None, seq: str) -> Dataset | None:
    """First item of a sequence, or None."""
    if ds is None:
        return None
    s = _get(ds, seq)
    try:
        return s[0] if s is not None and len(s) else None
    except Exception:  # noqa: BLE001
        return None


def _to_header(
    ds: Dataset, data: bytes, location: str, size: int, etag: str,
    pixel_offset: int | None, little: bool, limits: HeaderLimits,
) -> FileHeader:
    meta = getattr(ds, "file_meta", None)
    sop_class = _str(ds, "SOPClassUID") or (_str(meta, "MediaStorageSOPClassUID") if meta else "")
    ts = _str(meta, "TransferSyntaxUID") if meta is not None else ""
    base = FileHeader(location=location, size=size, etag=etag, sop_class_uid=sop_class,
                      transfer_syntax=ts)
    if sop_class == DICOMDIR_SOP_CLASS:
        return replace(base, reason=FileReason.DICOMDIR,
                       message="DICOMDIR media directory; the images it lists are indexed as files")
    if not (sop_class or _str(ds, "Modality") or _get(ds, "Rows")):
        return replace(base, reason=FileReason.NOT_DICOM,
                       message="parses, but has no SOP Class, Modality or image attributes")
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = _get(ds, "PerFrameFunctionalGroupsSequence")
    hdr = replace(
        base,
        modality=_str(ds, "Modality").upper(),
        image_type=tuple(s.strip().upper() for s in _str(ds, "ImageType").split("\\") if s.strip()),
        manufacturer=_str(ds, "Manufacturer"),
        patient_id=_str(ds, "PatientID"),
        patient_name=_str(ds, "PatientName"),
        birth_date=_str(ds, "PatientBirthDate"),
        sop_uid=_str(ds, "SOPInstanceUID"),
        patient_age=_str(ds, "PatientAge"),
        patient_sex=_str(ds, "PatientSex").upper(),
        study_uid=_str(ds, "StudyInstanceUID"),
        study_date=_str(ds, "StudyDate"),
        study_time=_str(ds, "StudyTime"),
        accession=_str(ds, "AccessionNumber"),
        study_id=_str(ds, "StudyID"),
        series_uid=_str(ds, "SeriesInstanceUID"),
        series_number=_int(ds, "SeriesNumber"),
        series_description=_str(ds, "SeriesDescription"),
        acquisition_number=_int(ds, "AcquisitionNumber"),
        instance_number=_int(ds, "InstanceNumber"),
        frame_of_reference=_str(ds, "FrameOfReferenceUID"),
        position=_floats(ds, "ImagePositionPatient", 3),  # type: ignore[arg-type]
        orientation=_floats(ds, "ImageOrientationPatient", 6),
        pixel_spacing=_floats(ds, "PixelSpacing", 2),  # type: ignore[arg-type]
        slice_thickness=_float(ds, "SliceThickness"),
        rows=_int(ds, "Rows", 0) or 0,
        cols=_int(ds, "Columns", 0) or 0,
        frames=max(_int(ds, "NumberOfFrames", 1) or 1, 1),
        samples_per_pixel=_int(ds, "SamplesPerPixel", 1) or 1,
        bits_allocated=_int(ds, "BitsAllocated", 0) or 0,
        bits_stored=_int(ds, "BitsStored", 0) or 0,
        pixel_representation=_int(ds, "PixelRepresentation", 0) or 0,
        photometric=_str(ds, "PhotometricInterpretation").upper(),
        slope=_float(ds, "RescaleSlope") or 1.0,
        intercept=_float(ds, "RescaleIntercept") or 0.0,
        kernel=_str(ds, "ConvolutionKernel"),
        contrast_agent=_str(ds, "ContrastBolusAgent"),
        gantry_tilt=_float(ds, "GantryDetectorTilt"),
        body_part=_str(ds, "BodyPartExamined").upper(),
        reconstruction_diameter=_float(ds, "ReconstructionDiameter"),
        pixel_offset=pixel_offset,
        is_enhanced=shared is not None or per_frame is not None,
    )
    if hdr.is_enhanced:
        hdr = _enhanced(hdr, shared, per_frame)
    if not hdr.rows or not hdr.cols or pixel_offset is None:
        what = "no Rows/Columns" if not hdr.rows or not hdr.cols else "no Pixel Data element"
        reason = FileReason.NO_IMAGE if not hdr.rows else FileReason.TRUNCATED
        return replace(hdr, reason=reason, message=f"not an image: {what}")
    return _check_pixel_length(hdr, data, little, limits)


def _enhanced(hdr: FileHeader, shared: Dataset | None, per_frame: Any) -> FileHeader:
    """Fill geometry and rescale of an enhanced multi-frame image from its functional groups."""
    frames = list(per_frame) if per_frame is not None else []

    def pick(item: Dataset | None, seq: str) -> Dataset | None:
        return _item(item, seq) or _item(shared, seq)

    first = frames[0] if frames else None
    measures = pick(first, "PixelMeasuresSequence")
    orient = pick(first, "PlaneOrientationSequence")
    ctype = pick(first, "CTImageFrameTypeSequence")
    positions, rescale = [], []
    for item in frames:
        pos = pick(item, "PlanePositionSequence")
        p = _floats(pos, "ImagePositionPatient", 3) if pos is not None else None
        positions.append(p)
        pvt = pick(item, "PixelValueTransformationSequence")
        slope = (_float(pvt, "RescaleSlope") if pvt is not None else None) or hdr.slope
        inter = _float(pvt, "RescaleIntercept") if pvt is not None else None
        rescale.append((slope, hdr.intercept if inter is None else inter))
    ok_positions = positions and all(p is not None for p in positions)
    image_type = hdr.image_type
    if ctype is not None and _str(ctype, "FrameType"):
        image_type = tuple(s.strip().upper() for s in _str(ctype, "FrameType").split("\\"))
    return replace(
        hdr,
        image_type=image_type,
        pixel_spacing=(_floats(measures, "PixelSpacing", 2) if measures is not None else None)
        or hdr.pixel_spacing,  # type: ignore[arg-type]
        slice_thickness=(_float(measures, "SliceThickness") if measures is not None else None)
        or hdr.slice_thickness,
        orientation=(_floats(orient, "ImageOrientationPatient", 6) if orient is not None else None)
        or hdr.orientation,
        frame_positions=tuple(positions) if ok_positions else None,  # type: ignore[arg-type]
        position=positions[0] if ok_positions else hdr.position,  # type: ignore[arg-type]
        frame_rescale=tuple(rescale) if rescale else None,
        slope=rescale[0][0] if rescale else hdr.slope,
        intercept=rescale[0][1] if rescale else hdr.intercept,
    )


def _check_pixel_length(hdr: FileHeader, data: bytes, little: bool, limits: HeaderLimits) -> FileHeader:
    """Compare the declared Pixel Data length with the file size and the image dimensions."""
    off = hdr.pixel_offset or 0
    if off < 0:
        return hdr
    head = data[off:off + 12]
    if len(head) < 8:
        return hdr
    fmt = "<" if little else ">"
    vr = head[4:6]
    if vr in (b"OB", b"OW", b"OF", b"OD", b"UN"):
        (length,) = struct.unpack(fmt + "I", head[8:12])
        start = off + 12
    else:  # implicit VR
        (length,) = struct.unpack(fmt + "I", head[4:8])
        start = off + 8
    if length == 0xFFFFFFFF:
        return _check_fragments(hdr, data, start)
    expected = (hdr.rows * hdr.cols * hdr.frames * hdr.samples_per_pixel
                * max(hdr.bits_allocated, 1) + 7) // 8
    if length > limits.max_pixel_ratio * max(expected, 1) and start + length > hdr.size:
        return replace(hdr, reason=FileReason.ELEMENT_TOO_LARGE,
                       message=f"Pixel Data declares {length} bytes; {expected} expected from "
                       f"{hdr.rows}x{hdr.cols}x{hdr.frames} at {hdr.bits_allocated} bits")
    if start + length > hdr.size:
        return replace(hdr, reason=FileReason.TRUNCATED,
                       message=f"Pixel Data should end at byte {start + length} but the file "
                       f"has {hdr.size} bytes")
    return hdr


_ITEM, _SEQ_END = 0xE000FFFE, 0xE0DDFFFE  # (FFFE,E000) and (FFFE,E0DD) read as little-endian <I


def _check_fragments(hdr: FileHeader, data: bytes, start: int) -> FileHeader:
    """Encapsulated Pixel Data: walk the items (offset table, fragments) that lie in ``data``.

    An item that declares more bytes than the file has left, or a file that ends where the
    next item or the sequence delimiter should start, is TRUNCATED. This costs no extra read:
    a single-fragment slice (the usual case) has its fragment header in the first 64 KiB, and
    its declared end is compared with the object size. Items beyond the prefix are not checked
    (the decoder still reports them). Encapsulated data is always little endian.
    """
    pos = start
    while pos + 8 <= len(data):
        tag, length = struct.unpack("<II", data[pos:pos + 8])
        if tag == _SEQ_END:
            return hdr
        if tag != _ITEM or length == 0xFFFFFFFF:
            return hdr  # not ours to judge here; the decoder reports malformed data
        end = pos + 8 + length
        if end > hdr.size:
            return replace(hdr, reason=FileReason.TRUNCATED,
                           message=f"a Pixel Data fragment should end at byte {end} but the "
                           f"file has {hdr.size} bytes")
        pos = end
    if pos >= hdr.size:
        return replace(hdr, reason=FileReason.TRUNCATED,
                       message=f"encapsulated Pixel Data stops at byte {pos} (end of file) "
                       "without its sequence delimiter")
    return hdr
