"""Hostile and broken inputs become rows with a reason: no crash, bounded memory and time."""

from __future__ import annotations

import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from tests.dicom.conftest import QUIRKS, axial_positions, need, write_ct_slices
from vertfrac_core.dicom.index import build_index
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.dicom.reasons import FileReason, SeriesReason

GOOD = QUIRKS / "cornerstone" / "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm"


def _reasons(folder: Path) -> dict[str, FileReason | None]:
    result = build_index(str(folder), secret=DEMO_SECRET)
    return {Path(h.location.split("::")[0].removeprefix("zip://")).name: h.reason for h in result.headers}


def test_each_bad_file_gets_its_reason(tmp_path: Path) -> None:
    good = need(GOOD).read_bytes()
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image\n" * 100)
    (tmp_path / "truncated_header.dcm").write_bytes(good[:700])
    (tmp_path / "truncated_pixels.dcm").write_bytes(good[: len(good) // 2])
    i = good.find(b"\x08\x00\x70\x00LO")  # Manufacturer -> private OB of 4 GB
    huge = good[:i] + b"\x09\x00\x10\x10OB\x00\x00" + struct.pack("<I", 0xFFFFFFF0) + good[i + 8:]
    (tmp_path / "huge_length.dcm").write_bytes(huge)
    reasons = _reasons(tmp_path)
    assert reasons == {
        "empty.dcm": FileReason.EMPTY,
        "notes.txt": FileReason.NOT_DICOM,
        "truncated_header.dcm": FileReason.TRUNCATED,
        "truncated_pixels.dcm": FileReason.TRUNCATED,
        "huge_length.dcm": FileReason.ELEMENT_TOO_LARGE,
    }


def test_zip_bomb_nested_zip_and_bad_zip(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * (64 << 20))  # 64 MiB compressing ~1000:1
        zf.writestr("inner.zip", b"PK\x03\x04 not really")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    tracemalloc.start()
    t0 = time.perf_counter()
    result = build_index(str(tmp_path), secret=DEMO_SECRET)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    got = sorted((h.location.split("::")[0], h.reason) for h in result.headers)
    assert got == [
        (str(tmp_path / "broken.zip"), FileReason.BAD_ZIP),
        ("zip://inner.zip", FileReason.NESTED_ZIP),
        ("zip://zeros.dcm", FileReason.DECOMPRESSION_BOMB),
    ]
    assert peak < 16 << 20 and elapsed < 5


def test_wrong_modality_and_dicomdir(tmp_path: Path) -> None:
    write_ct_slices(tmp_path / "mr", axial_positions(12, 3.0), modality="MR")
    result = build_index(str(tmp_path), secret=DEMO_SECRET)
    (decision,) = result.decisions
    assert decision.reason is SeriesReason.NOT_CT and "MR" in decision.detail
    from pydicom.data import get_testdata_file

    dicomdir = get_testdata_file("DICOMDIR")
    (header,) = build_index(dicomdir, secret=DEMO_SECRET).headers
    assert header.reason is FileReason.DICOMDIR


def test_table_rows_for_bad_files(tmp_path: Path) -> None:
    (tmp_path / "empty.dcm").write_bytes(b"")
    table = build_index(str(tmp_path), secret=DEMO_SECRET).table().to_pylist()
    assert [(r["reason"], r["selected"], r["n_files"]) for r in table] == [("empty_file", False, 1)]


@pytest.mark.parametrize("cut", [132, 200, 1000, 5000])
def test_any_truncation_is_a_reason_not_a_crash(tmp_path: Path, cut: int) -> None:
    (tmp_path / "cut.dcm").write_bytes(need(GOOD).read_bytes()[:cut])
    (header,) = build_index(str(tmp_path), secret=DEMO_SECRET).headers
    assert header.reason in {FileReason.TRUNCATED, FileReason.MALFORMED, FileReason.NOT_DICOM,
                             FileReason.NO_IMAGE}


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"])
@pytest.mark.parametrize("keep", [0.5, 0.9, -8])
def test_truncated_encapsulated_file_is_found_by_the_index(tmp_path: Path, syntax: str,
                                                           keep: float) -> None:
    """RLE / JPEG 2000 files cut inside their fragments (or just before the sequence
    delimiter) are TRUNCATED at index time, from the fragment lengths; intact ones are not."""
    files = write_ct_slices(tmp_path, axial_positions(3), size=64, transfer_syntax=syntax,
                            marker_lps=(0, 0, 1))
    data = files[1].read_bytes()
    files[1].write_bytes(data[:int(len(data) * keep)] if keep > 0 else data[:int(keep)])
    reasons = _reasons(tmp_path)
    assert reasons[files[1].name] is FileReason.TRUNCATED
    assert reasons[files[0].name] is None and reasons[files[2].name] is None
