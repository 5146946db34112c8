"""JPEG 2000 straight from the fragments (openjpeg) agrees with pydicom's pixel pipeline;
decoding processes can be reused across series."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from pydicom.pixels import pixel_array

from tests.dicom.conftest import axial_positions, write_ct_slices
from vertfrac_core.dicom.index import build_index
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.dicom.load import LoadSettings, load_series
from vertfrac_core.dicom.pixels import _j2k_slice, encapsulated_frame, read_bytes
from vertfrac_core.dicom.workers import DecodePool

J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"


def _series(tmp_path: Path, n: int = 6, **kw: object):  # noqa: ANN202
    write_ct_slices(tmp_path, axial_positions(n), size=64, transfer_syntax=J2K_LOSSLESS,
                    marker_lps=(0, 0, 2), **kw)  # type: ignore[arg-type]
    (series,) = build_index(str(tmp_path), secret=DEMO_SECRET).series
    return series


@pytest.mark.parametrize("intercept", [-1024.0, 0.0])
def test_direct_decode_equals_pydicom(tmp_path: Path, intercept: float) -> None:
    for ref in _series(tmp_path, intercept=intercept).ordered_slices():
        data = read_bytes(ref.header.location)
        direct = _j2k_slice(ref, data)
        assert direct is not None, "the direct path should handle a plain J2K slice"
        reference = pixel_array(io.BytesIO(data))
        assert direct.dtype == reference.dtype and np.array_equal(direct, reference)


def test_fragments_are_joined_and_odd_layouts_refused() -> None:
    def item(payload: bytes) -> bytes:
        return struct.pack("<HHI", 0xFFFE, 0xE000, len(payload)) + payload

    head = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
    end = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    data = b"xx" + head + item(b"") + item(b"abcd") + item(b"ef") + end
    assert encapsulated_frame(data, 2) == b"abcdef"
    assert encapsulated_frame(data[:-8], 2) is None  # no delimiter: not the plain layout
    assert encapsulated_frame(b"xx" + head[:8] + b"\x10\x00\x00\x00" + b"0" * 16, 2) is None


def test_pool_is_reused_and_matches_threads(tmp_path: Path) -> None:
    series = _series(tmp_path, n=8)
    threads = load_series(series, settings=LoadSettings(workers=2, use_processes=False))
    procs = LoadSettings(workers=2, process_min_slices=4)
    with DecodePool(2) as pool:
        first = load_series(series, settings=procs, pool=pool)
        executor = pool.executor()
        second = load_series(series, settings=procs, pool=pool)
        assert pool.executor() is executor
    assert "processes" in first.meta["decoded_with"]
    assert np.array_equal(first.hu, threads.hu) and np.array_equal(second.hu, threads.hu)
    assert int(threads.hu.max()) == 1000  # the marker, in HU
