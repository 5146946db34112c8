"""Object keys, zip member names, UIDs, keys read back from tables and user input never choose
where a file is written (``vertfrac_core/safepath.py``): hostile names such as ``../../etc/x``
are refused or cleaned, archives whose object keys and member names are such names are indexed
and loaded in place, and nothing appears outside the folders a run writes to."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import fsspec
import pyarrow as pa
import pytest

from reports.build import study_file_stem
from tests.dicom.conftest import axial_positions, write_ct_slices
from vertfrac_core.batches import STAGING, TableStore, repair
from vertfrac_core.dicom.index import build_index
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.dicom.load import LoadSettings, load_series
from vertfrac_core.errors import UnsafePathError
from vertfrac_core.safepath import (
    check_component,
    check_relative,
    clean_component,
    key_component,
    safe_join,
)

HOSTILE = ["../../etc/x", "..", ".", "/etc/passwd", "a/../../b", "..\\..\\windows\\x", "C:\\x",
           "\\\\server\\share", "a\x00b", "~/.ssh/id_rsa", ".hidden", "%2e%2e%2fetc",
           "．．／etc／x", "x" * 300, "", "a b", "line\nbreak", "1.2.840.113619.2.55/../.."]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_or_cleaned_into_one_component(name: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError):
        check_component(name)
    with pytest.raises(UnsafePathError):
        key_component(name)
    with pytest.raises(UnsafePathError):
        safe_join(str(tmp_path), "images", name)
    try:
        clean = clean_component(name)
    except UnsafePathError:
        assert not name.strip("./\\") or name == "", name  # nothing usable left: refused
        return
    assert check_component(clean) == clean
    assert not clean.startswith(".") and not {"/", "\\", "\x00", "\n"} & set(clean)
    assert Path(safe_join(str(tmp_path), clean)).parent == tmp_path


def test_keys_and_clean_components_pass_and_join_under_the_root(tmp_path: Path) -> None:
    assert key_component("0123456789abcdef01234567") == "0123456789abcdef01234567"
    assert clean_component("fake-1+loc:3.2/det") == "fake-1_loc_3.2_det"
    assert safe_join(str(tmp_path), "images", "ab12cd34", "x.png") == f"{tmp_path}/images/ab12cd34/x.png"
    assert check_relative("scans/run_date=2026-01-01/batch-x.parquet")
    for bad in ("../x", "/abs", "a//b", "a/./b", ""):
        with pytest.raises(UnsafePathError):
            check_relative(bad)


def test_a_symlink_inside_the_root_cannot_lead_out(tmp_path: Path) -> None:
    root, outside = tmp_path / "dest", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "images").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside"):
        safe_join(str(root), "images", "x.png")


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def deep_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory two levels down, so ``../../etc/x`` would land in ``tmp_path``."""
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    return tmp_path


def test_zip_members_named_like_paths_are_read_in_place(deep_cwd: Path) -> None:
    slices = write_ct_slices(deep_cwd / "src", axial_positions(6), marker_lps=(0, 0, 2))
    names = ["../../etc/x0.dcm", "/etc/x1.dcm", "..\\..\\windows\\x2.dcm", "a::/etc/passwd",
             "C:\\x4.dcm", "ok/../../../x5.dcm"]
    archive = deep_cwd / "archive"
    archive.mkdir()
    with zipfile.ZipFile(archive / "study.zip", "w") as zf:
        for name, path in zip(names, slices, strict=True):
            zf.writestr(zipfile.ZipInfo(name), path.read_bytes())
    before = _snapshot(deep_cwd)
    result = build_index(str(archive), secret=DEMO_SECRET)
    assert {h.reason for h in result.headers} == {None} and len(result.headers) == 6
    (series,) = result.series
    volume = load_series(series, settings=LoadSettings(workers=1))
    assert volume.hu.shape == (6, 16, 16)
    assert _snapshot(deep_cwd) == before  # nothing extracted, nothing written anywhere


def test_object_keys_with_dot_dot_are_keys_not_paths(deep_cwd: Path) -> None:
    """An object store (fsspec's memory store, which keeps keys verbatim like S3) whose keys
    are ``archive/../../etc/...``: indexed and loaded as keys; no local file is touched."""
    slices = write_ct_slices(deep_cwd / "src", axial_positions(6), marker_lps=(0, 0, 2))
    fs = fsspec.filesystem("memory")
    prefix = "/vertfrac-test-bucket/archive"
    try:
        for k, path in enumerate(slices):
            fs.pipe(f"{prefix}/../../etc/{k}/IM{k}.dcm", path.read_bytes())
        before = _snapshot(deep_cwd)
        result = build_index(f"memory://{prefix}", secret=DEMO_SECRET)
        assert all(h.location.startswith(f"memory://{prefix}/../../etc/") for h in result.headers)
        (series,) = result.series
        volume = load_series(series, settings=LoadSettings(workers=1, use_processes=False))
        assert volume.hu.shape == (6, 16, 16)
        assert _snapshot(deep_cwd) == before and not Path("/etc/0/IM0.dcm").exists()
    finally:
        fs.rm(prefix.split("/archive")[0], recursive=True)


def test_a_forged_series_key_never_names_a_picture(tmp_path: Path) -> None:
    from dataclasses import replace

    from vertfrac_core.result import ScanResult, ScanStatus
    from vertfrac_core.screening import ScreenSettings, _store_picture, image_path

    write_ct_slices(tmp_path / "s", axial_positions(4))
    (series,) = build_index(str(tmp_path / "s"), secret=DEMO_SECRET).series
    assert image_path(series, "v1/../../x") == (f"images/{series.series_key}/"
                                                f"{series.content_hash[:16]}-v1_.._.._x.png")
    forged = replace(series, series_key="../../../../etc/x")
    with pytest.raises(UnsafePathError):
        image_path(forged, "v1")
    drawn = tmp_path / "draw"
    drawn.mkdir()
    (drawn / "sagittal.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    dest = tmp_path / "deep" / "er" / "tables"
    result = ScanResult(source="x", status=ScanStatus.OK, model_version="v1",
                        images={"sagittal": "sagittal.png"})
    before = _snapshot(tmp_path)
    kept = _store_picture(result, drawn, forged, "v1", ScreenSettings(images=TableStore(str(dest))))
    assert kept.images == {} and _snapshot(tmp_path) == before  # no picture, nothing written


def test_a_study_key_from_a_tampered_table_cannot_name_a_report() -> None:
    assert study_file_stem("0123456789abcdef0123") == "0123456789abcdef"
    for bad in ("../../../../tmp/x", "/etc/passwd", "ABCDEF0123456789", "0123456/../../x"):
        with pytest.raises(UnsafePathError):
            study_file_stem(bad)


def test_repair_refuses_a_staged_manifest_that_points_outside(tmp_path: Path) -> None:
    dest = tmp_path / "tables"
    batch = dest / STAGING / "20260101T000000-deadbeef"
    batch.mkdir(parents=True)
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), batch / "scans.parquet")
    (batch / "_READY.json").write_text(json.dumps({
        "batch_id": "20260101T000000-deadbeef", "run_date": "2026-01-01",
        "files": {"scans": "../../escaped.parquet"}, "rows": {"scans": 1}}))
    with pytest.raises(UnsafePathError):
        repair(TableStore(str(dest)))
    assert not (tmp_path / "escaped.parquet").exists() and (batch / "scans.parquet").exists()
    assert os.listdir(tmp_path) == ["tables"]
