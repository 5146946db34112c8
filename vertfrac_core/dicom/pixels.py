"""Decode one slice (a file or a frame of one) to HU, written straight into the output volume.

Three paths:

* fast: a local, uncompressed little-endian 16-bit file whose Pixel Data offset the header read
  already found; the slice is read with one ``np.fromfile`` at that offset (no re-parse);
* JPEG 2000: a single-frame grayscale file whose Pixel Data offset is known; its fragments are
  cut out of the bytes at that offset and handed to ``openjpeg`` (pylibjpeg-openjpeg) directly,
  skipping pydicom's dataset parse and pixel pipeline. Used only when the codestream agrees
  with the header (size, one sample, precision = BitsStored, signedness = PixelRepresentation);
  anything else takes the general path, which knows the corrections;
* general: the object's bytes go through ``pydicom.pixels.pixel_array`` with the installed
  decoders (pylibjpeg for JPEG, JPEG-LS, JPEG 2000; pydicom for RLE, deflate, big endian).

HU = stored value x RescaleSlope + RescaleIntercept, rounded to int16 (1 HU steps; values
outside the int16 range are clipped and counted).
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np

from vertfrac_core.dicom import zipio
from vertfrac_core.dicom.grouping import SliceRef
from vertfrac_core.dicom.header import FileHeader
from vertfrac_core.errors import DicomError

NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
JPEG2000 = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}  # lossless only, and lossy
DEFLATED = "1.2.840.10008.1.2.1.99"
MAX_OBJECT_BYTES = 4 << 30


def read_bytes(location: str, storage_options: dict[str, Any] | None = None,
               max_bytes: int = MAX_OBJECT_BYTES) -> bytes:
    """All bytes of a location (a path, a URL or a ``zip://member::container`` member)."""
    import fsspec

    container, member = zipio.split_location(location)
    if member is None:
        with fsspec.open(container, "rb", **(storage_options or {})) as fh:
            data = fh.read(max_bytes + 1)
    else:
        with fsspec.open(container, "rb", **(storage_options or {})) as fh, \
                zipio.open_zip(fh) as zf:
            data = zipio.read_member(zf, member, max_bytes + 1)
    if len(data) > max_bytes:
        raise DicomError(f"{location} is larger than the {max_bytes}-byte limit")
    return data


def slice_byte_limit(h: FileHeader) -> int:
    """The most bytes a file can need for the image its header declares: header, the
    uncompressed pixel data (compressed data is smaller) and 1 MiB of slack. Reading stops
    there, so a file (or zip member) padded far beyond its image costs no more memory."""
    pixels = h.rows * h.cols * h.frames * h.samples_per_pixel * ((max(h.bits_allocated, 8) + 7) // 8)
    return min(MAX_OBJECT_BYTES, max(h.pixel_offset or 0, 0) + pixels + (1 << 20))


def _read_all(location: str, storage_options: dict[str, Any] | None,
              max_bytes: int = MAX_OBJECT_BYTES) -> bytes:
    """``read_bytes`` with plain ``open`` for local files (no fsspec round trip per slice)."""
    if _is_local_file(location) and zipio.split_location(location)[1] is None:
        path = location[len("file://"):] if location.startswith("file://") else location
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise DicomError(f"{location} is larger than the {max_bytes}-byte limit")
        return data
    return read_bytes(location, storage_options, max_bytes)


def encapsulated_frame(data: bytes, pixel_offset: int) -> bytes | None:
    """The fragments of a single-frame encapsulated Pixel Data element starting at
    ``pixel_offset`` (its tag), joined; None when the layout is not the plain one
    (explicit VR OB, undefined length, offset table item, fragments, delimiter)."""
    head = data[pixel_offset:pixel_offset + 12]
    if len(head) < 12 or head[4:6] != b"OB" or head[8:12] != b"\xff\xff\xff\xff":
        return None
    pos, first = pixel_offset + 12, True
    parts: list[bytes] = []
    while pos + 8 <= len(data):
        tag, length = struct.unpack("<II", data[pos:pos + 8])
        if tag == 0xE0DDFFFE:  # sequence delimiter
            return parts[0] if len(parts) == 1 else b"".join(parts)
        if tag != 0xE000FFFE or length == 0xFFFFFFFF or pos + 8 + length > len(data):
            return None
        if not first:
            parts.append(data[pos + 8:pos + 8 + length])
        first, pos = False, pos + 8 + length
    return None


def _j2k_slice(ref: SliceRef, data: bytes) -> np.ndarray | None:
    """Decode a single-frame JPEG 2000 slice with openjpeg; None to use the general path."""
    h = ref.header
    if (h.frames != 1 or h.samples_per_pixel != 1 or h.bits_allocated != 16
            or h.pixel_offset is None or h.pixel_offset <= 0):
        return None
    stream = encapsulated_frame(data, h.pixel_offset)
    if stream is None:
        return None
    try:
        from openjpeg.utils import decode, get_parameters

        p = get_parameters(stream, 0)
        if (p["rows"], p["columns"], p["samples_per_pixel"]) != (h.rows, h.cols, 1) \
                or p["precision"] != (h.bits_stored or 16) or bool(p["is_signed"]) != (h.pixel_representation == 1):
            return None
        flat = decode(stream, 0, reshape=False)
    except ImportError:
        return None
    except BaseException as err:  # openjpeg raises RuntimeError with a code
        if not _decoder_failure(err):
            raise
        raise DicomError(f"Cannot decode the JPEG 2000 pixel data of {h.location}: "
                         f"{type(err).__name__}: {err}") from err
    return flat.view("<i2" if h.pixel_representation == 1 else "<u2").reshape(h.rows, h.cols)


def _decoder_failure(err: BaseException) -> bool:
    """Whether ``err`` is a decoder failing on its data: any ``Exception``, and the
    ``PanicException`` of decoders written in Rust (pylibjpeg-rle), which derives from
    ``BaseException``; never an interrupt, an exit or a per-scan timeout."""
    return isinstance(err, Exception) or type(err).__name__ == "PanicException"


def _is_local_file(location: str) -> bool:
    return "://" not in location or location.startswith("file://")


def fast_path_ok(ref: SliceRef) -> bool:
    """True if the slice can be read by offset without decoding."""
    h = ref.header
    return (h.transfer_syntax in NATIVE_LE and h.bits_allocated == 16 and h.samples_per_pixel == 1
            and h.pixel_offset is not None and h.pixel_offset >= 0 and _is_local_file(h.location))


def _native_slice(ref: SliceRef) -> np.ndarray:
    h = ref.header
    implicit = h.transfer_syntax == "1.2.840.10008.1.2"
    start = (h.pixel_offset or 0) + (8 if implicit else 12) + ref.frame * h.rows * h.cols * 2
    dtype = "<i2" if h.pixel_representation == 1 else "<u2"
    path = h.location[len("file://"):] if h.location.startswith("file://") else h.location
    arr = np.fromfile(path, dtype=dtype, count=h.rows * h.cols, offset=start)
    if arr.size != h.rows * h.cols:
        raise DicomError(f"{h.location}: pixel data is short ({arr.size} of {h.rows * h.cols} "
                         "values); the file is truncated")
    arr = arr.reshape(h.rows, h.cols)
    bits = h.bits_stored or 16
    if bits < 16:  # mask unused high bits, sign-extend signed data
        if h.pixel_representation == 1:
            shift = 16 - bits
            arr = (arr << shift) >> shift
        else:
            arr = arr & np.uint16((1 << bits) - 1)
    return arr


def _decoded_slice(ref: SliceRef, storage_options: dict[str, Any] | None) -> np.ndarray:
    from pydicom.pixels import pixel_array

    h = ref.header
    limit = slice_byte_limit(h)
    if h.size > limit:
        raise DicomError(f"{h.location} holds {h.size} bytes, more than its {h.rows}x{h.cols}x"
                         f"{h.frames} image can need ({limit}); refused (padded, corrupt or a "
                         "decompression bomb)")
    data = _read_all(h.location, storage_options, limit)
    if h.transfer_syntax in JPEG2000:
        arr = _j2k_slice(ref, data)
        if arr is not None:
            return arr
    index = ref.frame if h.frames > 1 else None
    try:
        if h.transfer_syntax == DEFLATED:  # pixel_array(file) does not inflate; the index
            from pydicom import dcmread  # already bounded the inflated size (header.py)

            arr = dcmread(io.BytesIO(data)).pixel_array
            arr = arr[ref.frame] if h.frames > 1 else arr
        else:
            arr = pixel_array(io.BytesIO(data), index=index)
    except BaseException as err:  # decoder errors vary by plugin
        if not _decoder_failure(err):
            raise
        raise DicomError(f"Cannot decode the pixel data of {h.location} "
                         f"(transfer syntax {h.transfer_syntax}): {type(err).__name__}: {err}") from err
    if arr.ndim != 2:
        raise DicomError(f"{h.location}: expected one grayscale frame, got shape {arr.shape}")
    return arr


def raw_slice(ref: SliceRef, storage_options: dict[str, Any] | None = None) -> np.ndarray:
    """Stored pixel values of one slice, (rows, columns)."""
    return _native_slice(ref) if fast_path_ok(ref) else _decoded_slice(ref, storage_options)


def to_hu_into(raw: np.ndarray, slope: float, intercept: float, out: np.ndarray) -> int:
    """Write round(raw * slope + intercept) into int16 ``out``; return how many were clipped."""
    if slope == 1.0 and float(intercept).is_integer():
        hu = raw.astype(np.int32)
        hu += int(intercept)
    else:
        hu = np.rint(raw.astype(np.float32) * np.float32(slope) + np.float32(intercept))
    lo, hi = np.iinfo(np.int16).min, np.iinfo(np.int16).max
    clipped = int(np.count_nonzero((hu < lo) | (hu > hi)))
    if clipped:
        np.clip(hu, lo, hi, out=hu)
    out[...] = hu
    return clipped


def decode_into(ref: SliceRef, out: np.ndarray, storage_options: dict[str, Any] | None = None) -> int:
    """Decode one slice to HU into ``out`` (rows, columns) int16; returns the clipped count."""
    raw = raw_slice(ref, storage_options)
    if raw.shape != out.shape:
        raise DicomError(f"{ref.header.location}: slice is {raw.shape}, the series is {out.shape}")
    return to_hu_into(raw, ref.slope, ref.intercept, out)
