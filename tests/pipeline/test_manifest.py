"""The object manifest: an unchanged archive costs no header read; a changed, removed or added
object makes its whole study be read again; the manifest holds no name, path or UID."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from vertfrac_core.dicom.index import build_index, filesystem, list_objects
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.manifest import (
    index_needed,
    load_manifest,
    plan_source,
    save_manifest,
    totals,
    updated_manifest,
)
from vertfrac_core.worklist import work_items


@pytest.fixture
def archive(local_archive, tmp_path: Path) -> Path:  # noqa: ANN001
    root = tmp_path / "archive"
    shutil.copytree(local_archive.url, root)
    return root


def _plan(root: Path, previous: pa.Table | None):  # noqa: ANN202
    fs, path = filesystem(str(root))
    return fs, plan_source(str(root), list_objects(fs, path), previous, DEMO_SECRET)


def _rows(t: pa.Table) -> set[tuple]:
    return set(zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True))


def _first_run(root: Path):  # noqa: ANN202
    fs, plan = _plan(root, None)
    index = index_needed(fs, plan, ())
    return index, updated_manifest(plan, index)


def _locations(index, study_key: str) -> set[str]:  # noqa: ANN001
    return {sl.header.location.split("!")[0] for s in index.series if s.study_key == study_key
            for sl in s.slices}


def test_first_run_reads_everything_like_build_index(archive: Path) -> None:
    index, manifest = _first_run(archive)
    full = build_index(str(archive), secret=DEMO_SECRET)
    assert {(s.series_key, s.content_hash) for s in index.series} == \
        {(s.series_key, s.content_hash) for s in full.series}
    assert {k: s.chosen for k, s in index.studies.items()} == {k: s.chosen for k, s in full.studies.items()}
    assert len(index.headers) == len(full.headers)
    assert totals(manifest) == (len(full.series), len(work_items(full)))


def test_manifest_holds_no_name_path_or_uid(archive: Path) -> None:
    index, manifest = _first_run(archive)
    raw = {str(archive), archive.name}
    for h in index.headers:
        raw |= {h.location, os.path.basename(h.location), h.patient_id, h.study_uid, h.series_uid,
                h.accession}
    raw.discard("")
    cells = [v for col in manifest.columns for v in col.to_pylist() if isinstance(v, str)]
    assert cells and not [v for v in cells if any(r in v for r in raw)]


def test_unchanged_archive_reads_no_header(archive: Path, tmp_path: Path) -> None:
    index, manifest = _first_run(archive)
    fs, root = filesystem(str(tmp_path / "dest"))
    save_manifest(fs, root, manifest)
    previous = load_manifest(fs, root)
    fs, plan = _plan(archive, previous)
    assert not plan.dirty and not plan.stale_studies
    assert plan.counts["unchanged"] == plan.counts["objects"] == len(list_objects(*filesystem(str(archive))))
    again = index_needed(fs, plan, ())
    assert again.headers == [] and again.series == []
    assert _rows(updated_manifest(plan, again)) == _rows(manifest)
    # results missing for this model: exactly the studies with a selection are wanted
    chosen = {k for k, s in index.studies.items() if s.chosen}
    assert plan.unfinished(set(), "m2") == chosen
    done = {(s.series_key, s.content_hash, "m1") for s in index.selected()}
    assert plan.unfinished(done, "m1") == set()
    one = sorted(chosen)[0]
    part = index_needed(fs, plan, {one})
    assert set(part.studies) == {one} and [it.study_key for it in work_items(part)] == [one]
    assert {h.location.split("!")[0] for h in part.headers} == _locations(index, one)


def test_a_changed_object_is_read_again_with_its_whole_study(archive: Path) -> None:
    index, manifest = _first_run(archive)
    item = work_items(index)[0]
    touched = item.selected.slices[0].header.location
    st = os.stat(touched)
    os.utime(touched, (st.st_atime, st.st_mtime + 10))  # same bytes, new mtime: a new version
    fs, plan = _plan(archive, manifest)
    assert [o.location for o in plan.dirty] == [touched]
    assert plan.stale_studies == {item.study_key} and plan.counts["changed"] == 1
    again = index_needed(fs, plan, ())
    assert set(again.studies) == {item.study_key}
    assert {h.location.split("!")[0] for h in again.headers} == _locations(index, item.study_key)
    new = next(s for s in again.series if s.series_key == item.selected.series_key)
    assert new.content_hash != item.selected.content_hash  # the result will be redone
    after = updated_manifest(plan, again)
    assert totals(after) == totals(manifest)
    _, plan2 = _plan(archive, after)
    assert not plan2.dirty and not plan2.stale_studies


def test_removed_and_added_objects(archive: Path) -> None:
    index, manifest = _first_run(archive)
    items = work_items(index)
    gone = Path(items[0].selected.slices[-1].header.location)
    gone.unlink()  # a slice removed: its study is read again from the remaining files
    series_dir = Path(items[1].selected.source)
    copy = series_dir.parent / (series_dir.name + "_copy")  # same UIDs: joins that study
    shutil.copytree(series_dir, copy)
    fs, plan = _plan(archive, manifest)
    assert plan.counts["removed"] == 1 and plan.counts["added"] == len(list(copy.iterdir()))
    assert plan.stale_studies == {items[0].study_key}
    again = index_needed(fs, plan, ())
    assert set(again.studies) == {items[0].study_key, items[1].study_key}
    old_objects = _locations(index, items[1].study_key)
    assert old_objects <= {h.location.split("!")[0] for h in again.headers}  # whole study read
