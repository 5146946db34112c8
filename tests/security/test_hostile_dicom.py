"""Hostile DICOM: mutation fuzzing of the header index and the loader, and the classic bombs.

The fuzz tests (hypothesis, derandomized: the same examples every run, bounded in number, about
half a minute in all) mutate real files -- a scanner CT, pydicom's implicit-VR, big-endian and
deflated test files, and synthetic slices in explicit VR, RLE and JPEG 2000 -- by overwriting
bytes and length fields in the header, setting image attributes (rows, columns, frames, bits)
to extreme values, truncating, inserting and duplicating blocks. The index must turn every
object into header rows (a reason, never an exception); the loader must return a volume or raise
one of the project's errors (``VertfracError``); both within bounded memory (tracemalloc) and
time. Then the named cases: an element declaring 4 GB, an image declaring 65,535 x 65,535 x
65,535, a sequence nested 20,000 deep, and a zip member far larger than its image.
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
import tracemalloc
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.dicom.conftest import QUIRKS, axial_positions, write_ct_slices
from vertfrac_core.dicom.grouping import group_series
from vertfrac_core.dicom.header import FileHeader, read_header
from vertfrac_core.dicom.index import IndexSettings, ObjectInfo, build_index, read_object
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.dicom.load import LoadSettings, load_series
from vertfrac_core.dicom.reasons import FileReason
from vertfrac_core.errors import VertfracError
from vertfrac_core.limits import SeriesTooLargeError

FUZZ = settings(max_examples=int(os.environ.get("VERTFRAC_FUZZ_EXAMPLES", "300")), deadline=None,
               derandomize=not os.environ.get("VERTFRAC_FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_PEAK = 64 << 20  # bytes any one example may allocate (tracemalloc)
MAX_SECONDS = 10.0  # any one example
LOAD = LoadSettings(workers=1, use_processes=False, max_volume_bytes=32 << 20)
#: image attributes worth breaking: (group, element) little endian
IMAGE_TAGS = [b"\x28\x00\x10\x00", b"\x28\x00\x11\x00", b"\x28\x00\x08\x00", b"\x28\x00\x00\x01",
              b"\x28\x00\x01\x01", b"\x28\x00\x02\x00", b"\x28\x00\x03\x01", b"\x28\x00\x53\x10",
              b"\x20\x00\x32\x00", b"\x20\x00\x37\x00", b"\x28\x00\x30\x00", b"\xe0\x7f\x10\x00",
              b"\x02\x00\x10\x00"]
EXTREME = [0, 1, 2, 7, 8, 9, 15, 16, 17, 255, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFF0]


def _neighbours(data: bytes) -> tuple[bytes, ...]:
    """Two copies of a slice one slice thickness above and below it (same series), so that a
    mutated slice sits in a stack the loader can assemble; none without plane geometry."""
    import io

    import numpy as np
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(io.BytesIO(data))
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        return ()
    normal = np.cross(np.asarray(ds.ImageOrientationPatient[:3], float),
                      np.asarray(ds.ImageOrientationPatient[3:], float))
    out = []
    for k in (-1, 1):
        copy = pydicom.dcmread(io.BytesIO(data))
        copy.ImagePositionPatient = [float(x) for x in np.asarray(ds.ImagePositionPatient, float)
                                     + k * float(ds.get("SliceThickness") or 1.0) * normal]
        copy.SOPInstanceUID = generate_uid()
        buf = io.BytesIO()
        copy.save_as(buf)
        out.append(buf.getvalue())
    return tuple(out)


@cache
def seeds() -> tuple[tuple[str, bytes, tuple[bytes, ...]], ...]:
    """Real files to mutate: (name, bytes, unmutated neighbour slices)."""
    from pydicom.data import get_testdata_file

    out = []
    tmp = Path(tempfile.mkdtemp(prefix="vertfrac-fuzz-seeds-"))
    for ts, tag in ((None, "explicit"), ("1.2.840.10008.1.2.5", "rle"),
                    ("1.2.840.10008.1.2.4.90", "j2k")):
        files = write_ct_slices(tmp / tag, axial_positions(3), size=32, transfer_syntax=ts,
                                marker_lps=(0, 0, 1))
        out.append((tag, files[1].read_bytes(), (files[0].read_bytes(), files[2].read_bytes())))
    for name in ("CT_small.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm"):
        path = get_testdata_file(name)
        if path:
            data = Path(path).read_bytes()
            out.append((name, data, _neighbours(data)))
    scanner = QUIRKS / "cornerstone" / "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm"
    if scanner.exists():
        data = scanner.read_bytes()
        out.append(("scanner_ct", data, _neighbours(data)))
    return tuple(out)


def _mutate(data: bytearray, op: tuple, rng_bytes: bytes) -> bytearray:
    kind, a, b = op
    n = len(data)
    if n == 0:
        return data
    if kind in ("byte", "len16", "len32"):  # header bytes, after the 128-byte preamble
        base = 128 if n > 256 else 0
        pos = min(base + a % max(min(n, 4096) - base, 1), n - 1)
    else:  # cuts and inserts anywhere
        pos = a % n
    if kind == "byte":
        data[pos] = b & 0xFF
    elif kind == "len16":
        data[pos:pos + 2] = struct.pack("<H", EXTREME[b % len(EXTREME)] & 0xFFFF)
    elif kind == "len32":
        data[pos:pos + 4] = struct.pack("<I", EXTREME[b % len(EXTREME)])
    elif kind == "attr":  # an image attribute (or Pixel Data, the syntax) given an extreme value
        tag = IMAGE_TAGS[a % len(IMAGE_TAGS)]
        i = data.find(tag, 128)
        if i >= 0:
            value = EXTREME[b % len(EXTREME)]
            if data[i + 4:i + 6].isalpha():  # explicit VR: value after VR and length
                vr = bytes(data[i + 4:i + 6])
                if vr in (b"OB", b"OW", b"UN"):
                    data[i + 8:i + 12] = struct.pack("<I", value)
                else:
                    data[i + 6:i + 8] = struct.pack("<H", 2)
                    data[i + 8:i + 10] = struct.pack("<H", value & 0xFFFF)
            else:
                data[i + 4:i + 8] = struct.pack("<I", value)
    elif kind == "truncate":
        del data[pos:]
    elif kind == "insert":
        data[pos:pos] = rng_bytes[: b % 64 + 1]
    elif kind == "duplicate":  # a block repeated: nested or repeated elements
        size = b % 512 + 1
        data[pos:pos] = data[max(0, pos - size):pos]
    return data


OPS = st.tuples(st.sampled_from(["attr", "byte", "len32", "attr", "len16", "truncate", "attr",
                                 "insert", "duplicate", "byte"]),
                st.integers(0, 1 << 24), st.integers(0, 1 << 16))


@dataclass(frozen=True)
class Case:
    """A mutated file; its repr (what hypothesis prints on a failure) names the seed and the
    mutations, not the bytes."""

    name: str
    ops: tuple
    data: bytes = field(repr=False)
    neighbours: tuple[bytes, ...] = field(repr=False)


@st.composite
def hostile_files(draw: st.DrawFn) -> Case:
    name, data, neighbours = draw(st.sampled_from(seeds()))
    out = bytearray(data)
    ops = draw(st.lists(OPS, min_size=1, max_size=6))
    filler = draw(st.binary(min_size=64, max_size=64))
    for op in ops:
        out = _mutate(out, op, filler)
    return Case(name, tuple(ops), bytes(out), neighbours)


def bounded(fn: Callable[[], object]) -> tuple[object, int, float]:
    """(result, peak bytes allocated, seconds) of ``fn()``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return result, peak, time.perf_counter() - t0


OUTCOMES: dict[str, int] = {}  # what the loader fuzz ended in, by type (checked at the end)


class _Local:
    """The smallest fsspec-like file system the index needs for one local file."""

    protocol = "file"


def test_seeds_are_usable_images() -> None:
    names = [n for n, _, _ in seeds()]
    assert {"explicit", "rle", "j2k", "CT_small.dcm"} <= set(names)
    for name, data, _ in seeds():
        h = read_header(lambda n, d=data: d[:n], name, len(data))
        assert h.ok or name == "MR_small_bigendian.dcm", (name, h.reason, h.message)


@FUZZ
@given(hostile_files())
def test_fuzzed_files_become_index_rows_never_exceptions(case: Case) -> None:
    name, data = case.name, case.data
    with tempfile.TemporaryDirectory(prefix="vertfrac-fuzz-") as tmp:
        path = Path(tmp) / "f.dcm"
        path.write_bytes(data)
        obj = ObjectInfo(str(path), len(data), "1")
        headers, peak, seconds = bounded(lambda: read_object(_Local(), obj, IndexSettings()))
    assert isinstance(headers, list) and len(headers) == 1, name
    h = headers[0]
    assert isinstance(h, FileHeader) and (h.reason is None) == (h.message == ""), (name, h)
    assert not h.message.startswith("unexpected"), f"{name}: only the last-resort guard caught it: {h.message}"
    assert peak < MAX_PEAK and seconds < MAX_SECONDS, (name, peak, seconds)


@FUZZ
@given(hostile_files())
def test_fuzzed_slices_load_or_raise_project_errors(case: Case) -> None:
    """The mutated slice between two intact neighbours; every series the index forms from the
    three is loaded (or refused with a project error)."""
    name, data, neighbours = case.name, case.data, case.neighbours
    with tempfile.TemporaryDirectory(prefix="vertfrac-fuzz-") as tmp:
        headers = []
        for k, blob in enumerate((data, *neighbours)):
            path = Path(tmp) / f"f{k}.dcm"
            path.write_bytes(blob)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                headers.append(read_header(lambda n, b=blob: b[:n], str(path), len(blob)))
        for series in group_series(headers, secret=DEMO_SECRET):
            outcome, peak, seconds = bounded(lambda s=series: _load_or_error(s, LOAD))
            OUTCOMES[type(outcome).__name__] = OUTCOMES.get(type(outcome).__name__, 0) + 1
            assert peak < MAX_PEAK and seconds < MAX_SECONDS, (name, peak, seconds)


def _good_slice(tmp: Path) -> bytes:
    return write_ct_slices(tmp, axial_positions(1), size=16)[0].read_bytes()


def _set_us(data: bytes, tag: bytes, value: int) -> bytes:
    i = data.find(tag + b"US", 128)
    assert i > 0
    return data[:i + 8] + struct.pack("<H", value) + data[i + 10:]


def test_an_element_declaring_4_gb_is_a_reason(tmp_path: Path) -> None:
    good = _good_slice(tmp_path / "src")
    i = good.find(b"\x08\x00\x60\x00")  # Modality -> a private OB declaring 4 GB - 16
    bad = good[:i] + b"\x09\x00\x10\x10OB\x00\x00" + struct.pack("<I", 0xFFFFFFF0) + good[i:]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "huge.dcm").write_bytes(bad)
    result, peak, seconds = bounded(lambda: build_index(str(tmp_path / "a"), secret=DEMO_SECRET))
    (h,) = result.headers
    assert h.reason is FileReason.ELEMENT_TOO_LARGE and peak < 8 << 20 and seconds < 5


def test_an_image_declaring_65535_cubed_is_refused_before_allocation(tmp_path: Path) -> None:
    files = write_ct_slices(tmp_path / "s", axial_positions(3), size=16)
    for f in files:  # Rows = Columns = 65535; the pixel data stays 16 x 16
        data = _set_us(_set_us(f.read_bytes(), b"\x28\x00\x10\x00", 0xFFFF), b"\x28\x00\x11\x00", 0xFFFF)
        f.write_bytes(data)
    result = build_index(str(tmp_path / "s"), secret=DEMO_SECRET)
    for series in result.series:
        outcome, peak, _ = bounded(lambda s=series: _load_or_error(s))
        assert isinstance(outcome, SeriesTooLargeError), outcome
        assert peak < 8 << 20
    assert result.series, "the headers themselves are plausible; the loader must refuse them"


def _load_or_error(series: object, settings: LoadSettings = LoadSettings(workers=1, use_processes=False)) -> object:
    """The volume, or the project error the loader raised (anything else fails the test)."""
    try:
        return load_series(series, settings=settings)  # type: ignore[arg-type]
    except VertfracError as err:
        return err


def test_a_sequence_nested_20000_deep_is_bounded(tmp_path: Path) -> None:
    good = _good_slice(tmp_path / "src")
    depth = 20_000
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"  # item, undefined length
    item_end = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
    seq_end = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    sq = b"\x09\x00\x10\x10SQ\x00\x00\xff\xff\xff\xff"  # private SQ, undefined length
    nested = (sq + item) * depth + (item_end + seq_end) * depth
    i = good.find(b"\x08\x00\x60\x00")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "deep.dcm").write_bytes(good[:i] + nested + good[i:])
    result, peak, seconds = bounded(lambda: build_index(str(tmp_path / "a"), secret=DEMO_SECRET))
    (h,) = result.headers
    assert peak < MAX_PEAK and seconds < 20, (peak, seconds)
    assert h.reason is not None or (h.rows, h.cols, h.modality) == (16, 16, "CT"), h


def test_a_zip_member_far_larger_than_its_image_is_not_read_whole(tmp_path: Path) -> None:
    import os

    files = write_ct_slices(tmp_path / "src", axial_positions(3), size=16)
    (tmp_path / "a").mkdir()
    with zipfile.ZipFile(tmp_path / "a" / "study.zip", "w", zipfile.ZIP_STORED) as zf:
        for k, f in enumerate(files):  # the middle slice padded with 24 MiB after its pixels
            pad = os.urandom(24 << 20) if k == 1 else b""
            zf.writestr(f.name, f.read_bytes() + pad)
    result = build_index(str(tmp_path / "a"), secret=DEMO_SECRET)
    assert {h.reason for h in result.headers} == {None}  # plausible at index time
    (series,) = result.series
    outcome, peak, seconds = bounded(lambda: _load_or_error(series))
    assert isinstance(outcome, VertfracError) and "more than its 16x16x1 image can need" in str(outcome)
    assert peak < 4 << 20 and seconds < 5, (peak, seconds)


def test_the_loader_fuzz_reached_the_decoders() -> None:
    """Runs after the loader fuzz (file order): it must have loaded volumes and met errors,
    or it exercised nothing."""
    if not OUTCOMES:
        pytest.skip("run together with test_fuzzed_slices_load_or_raise_project_errors")
    assert OUTCOMES.get("Volume", 0) >= 20, OUTCOMES
    assert sum(n for k, n in OUTCOMES.items() if k != "Volume") >= 10, OUTCOMES
