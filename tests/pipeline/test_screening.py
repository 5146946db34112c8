"""Screening one study on a worker: results, failures as rows, no-spine fallback, one model load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from vertfrac_core.dicom.index import build_index
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.result import ScanStatus, Stage
from vertfrac_core.screening import AnalyzerSpec, WorkItem, loaded, screen_study, unavailable_reason
from vertfrac_core.storage import StorageSettings, is_transient
from vertfrac_core.worklist import likely_version, work_items


def _spec(tmp_path: Path, **options: object) -> AnalyzerSpec:
    opts = {"load_log": str(tmp_path / "loads.txt"), **options}
    return AnalyzerSpec(analyze="fake_analyzer:analyze_volume", load_models="fake_analyzer:load_models",
                        options=tuple(sorted(opts.items())))


@pytest.fixture(scope="module")
def index(local_archive):  # noqa: ANN001, ANN201
    return build_index(local_archive.url, secret=DEMO_SECRET)


def test_every_study_with_a_usable_series_is_one_item(index, local_archive) -> None:  # noqa: ANN001
    items = work_items(index)
    patients = pd.read_parquet(local_archive.truth / "patients.parquet")
    assert len(items) == len({i.study_key for i in items})
    assert len(items) >= int(patients.has_usable_series.sum())
    assert all(it.selected.series_key == index.studies[it.study_key].chosen for it in items)


def test_ok_result_and_models_loaded_once(index, tmp_path: Path) -> None:  # noqa: ANN001
    spec = _spec(tmp_path)
    items = work_items(index)[:3]
    outs = [screen_study(it, spec) for it in items]
    assert [o.result.status for o in outs].count(ScanStatus.OK) >= 2
    ok = next(o for o in outs if o.result.status == ScanStatus.OK)
    assert ok.result.vertebrae and ok.model_version == "fake-1" and ok.candidates_tried == 1
    assert {"load", "analyze", "total"} <= set(ok.result.timings_s)
    assert (tmp_path / "loads.txt").read_text().count("\n") == 1  # one load for three scans
    assert loaded(spec) is loaded(spec)


def test_no_spine_falls_back_to_the_next_candidate(index, local_archive, tmp_path: Path) -> None:  # noqa: ANN001
    defects = pd.read_parquet(local_archive.truth / "defects.parquet")
    row = defects[defects.kind == "no_spine_series"].iloc[0]
    folder = f"{local_archive.url}/{row.study_folder}/{row.series_folder}"
    no_spine = next(s for s in index.series if s.source == folder)
    study = next(it for it in work_items(index) if it.study_key == no_spine.study_key)
    others = tuple(s for s in study.candidates if s is not no_spine)
    out = screen_study(WorkItem(study.study_key, (no_spine, *others)), _spec(tmp_path))
    assert out.series_key == no_spine.series_key  # filed under the selected series
    assert out.analyzed_series_key == others[0].series_key and out.candidates_tried == 2
    assert out.result.status == ScanStatus.OK
    alone = screen_study(WorkItem(study.study_key, (no_spine,)), _spec(tmp_path))
    assert alone.result.failed_stage == Stage.LOCALIZE and alone.result.error_code == "no_spine"


def test_corrupt_series_is_a_row_with_a_reason(index, local_archive, tmp_path: Path) -> None:  # noqa: ANN001
    item = work_items(index)[0]
    copy = tmp_path / "copy"
    shutil.copytree(item.selected.source, copy)
    broken = build_index(str(copy), secret=DEMO_SECRET)
    for p in sorted(copy.glob("*.dcm"))[3:6]:  # corrupt after indexing: cut inside the pixels
        p.write_bytes(p.read_bytes()[:400])
    out = screen_study(work_items(broken)[0], _spec(tmp_path))
    assert out.result.status == ScanStatus.FAILED and out.result.failed_stage == Stage.LOAD
    assert out.result.error_code in {"dicom_error", "geometry", "load_error"} and out.result.error
    assert not out.transient


def test_missing_analyzer_is_reported_not_raised() -> None:
    assert "cannot be imported" in (unavailable_reason(AnalyzerSpec(analyze="nope.nothing:f")) or "")
    assert unavailable_reason(AnalyzerSpec("fake_analyzer:analyze_volume", "fake_analyzer:load_models")) is None


def test_unreachable_store_is_transient() -> None:
    import s3fs

    opts = StorageSettings(endpoint_url="http://127.0.0.1:9", key="k", secret="s").options("s3://b/x")
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
    with pytest.raises(Exception) as err:
        fs.cat_file("b/x")
    assert is_transient(err.value)
    assert not is_transient(FileNotFoundError("gone")) and not is_transient(ValueError("bad"))


def test_likely_version_is_the_most_published_one() -> None:
    assert likely_version(set()) is None
    done = {("a", "h1", "vf-1"), ("b", "h2", "vf-1"), ("c", "h3", "vf-2")}
    assert likely_version(done) == "vf-1"
    assert likely_version(done | {("d", "h4", "vf-2")}) == "vf-2"  # a tie: the greater string
