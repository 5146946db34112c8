"""The screen flow end to end on a local archive and a LocalCluster: counts against the truth,
idempotent reruns, a new model version, a crash between writing and publishing, quality gates."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.pipeline.conftest import FAKE, FAST_RETRY, REPO

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _screen(source: str, dest: str, **kw):  # noqa: ANN003, ANN202
    """The flow on a LocalCluster of ``workers``, or on ``scheduler`` when given."""
    from flows.screen import screen_flow

    kw.setdefault("workers", 2)
    return screen_flow(source, dest, **FAKE, **FAST_RETRY, **kw)


def _sql(dest: str, query: str) -> pd.DataFrame:
    q = query.replace("{scans}", f"read_parquet('{dest}/scans/*/*.parquet', hive_partitioning=true)")
    for t in ("vertebrae", "series_index", "qc"):
        q = q.replace("{" + t + "}", f"read_parquet('{dest}/{t}/*/*.parquet', hive_partitioning=true)")
    return duckdb.sql(q).df()


def test_counts_match_truth_rerun_is_a_no_op_new_model_reprocesses(local_archive, dask_cluster,  # noqa: ANN001
                                                                   tmp_path: Path) -> None:
    archive = tmp_path / "archive"  # a copy: this test changes a file
    shutil.copytree(local_archive.url, archive)
    dest = str(tmp_path / "tables")
    first = _screen(str(archive), dest)  # a LocalCluster of two worker processes
    patients = pd.read_parquet(local_archive.truth / "patients.parquet")
    series = pd.read_parquet(local_archive.truth / "series.parquet")
    scans = _sql(dest, "select * from {scans}")
    assert first.screened == len(scans) == len(patients) == scans.study_key.nunique()
    assert (scans.status == "ok").sum() == patients.has_usable_series.sum()
    assert set(scans[scans.status != "ok"].error_code) <= {"no_spine"}
    assert (scans.run_date.astype(str) != "").all()
    verts = _sql(dest, "select series_key, count(*) n from {vertebrae} group by 1")
    assert dict(zip(verts.series_key, verts.n, strict=True)) == \
        {k: n for k, n in zip(scans.series_key, scans.n_vertebrae, strict=True) if n}
    index = _sql(dest, "select * from {series_index}")
    assert index.selected.sum() == len(patients)
    assert index.study_key.notna().sum() >= len(series) - series.n_files.eq(0).sum()
    assert _sql(dest, "select count(*) n from {qc} where not success").n[0] == 0
    assert first.objects_read == first.source_objects

    # reruns on the session's dask scheduler: an unchanged archive reads no header
    again = _screen(str(archive), dest, scheduler=dask_cluster.address)
    assert again.screened == 0 and again.already_done == len(patients)
    assert again.objects_read == 0 and again.objects_changed == 0
    assert len(_sql(dest, "select * from {scans}")) == len(scans)
    assert len(_sql(dest, "select * from {series_index}")) == len(index)

    # the index starts before the slow load ends, on the published version (fake-1), and is
    # redone for every study once the workers say fake-2
    v2 = _screen(str(archive), dest, scheduler=dask_cluster.address,
                 analyzer_options={"version": "fake-2", "load_delay_s": 3.0})
    assert v2.screened == len(patients) and v2.model_version == "fake-2"
    both = _sql(dest, "select model_version, count(*) n, count(distinct series_key) k from {scans} group by 1")
    assert sorted(both.model_version) == ["fake-1", "fake-2"] and (both.n == both.k).all()

    # one file changed (new mtime): its study alone is read again and screened again
    chosen = next(r for r in index[index.selected].itertuples() if Path(r.source).is_dir())
    touched = sorted(p for p in Path(chosen.source).iterdir() if p.is_file())[0]
    os.utime(touched, (touched.stat().st_atime, touched.stat().st_mtime + 10))
    manifest = pd.read_parquet(Path(dest) / "_state" / "objects.parquet")
    study_objects = manifest[manifest.study_key == chosen.study_key].object_key.nunique()
    changed = _screen(str(archive), dest, scheduler=dask_cluster.address,
                      analyzer_options={"version": "fake-2"})
    assert changed.objects_changed == 1 and changed.objects_read == study_objects
    assert changed.screened == 1 and changed.already_done == len(patients) - 1
    rows = _sql(dest, f"select * from {{scans}} where series_key = '{chosen.series_key}' "
                      "and model_version = 'fake-2'")
    assert len(rows) == 2 and rows.content_hash.nunique() == 2  # a new content, a new result


CRASH = textwrap.dedent("""
    import os, sys
    sys.path[:0] = [{here!r}, {repo!r}]
    import vertfrac_core.batches as batches
    real = batches.publish
    def publish(store, staged):
        if "scans" in staged.files:
            os._exit(17)  # killed after the batch is staged, before it is published
        return real(store, staged)
    batches.publish = publish
    from flows.screen import screen_flow
    if __name__ == "__main__":
        screen_flow({source!r}, {dest!r}, scheduler={scheduler!r},
                    analyze="fake_analyzer:analyze_volume", load_models="fake_analyzer:load_models")
""")


def test_crash_between_write_and_publish_is_repaired(local_archive, dask_cluster,  # noqa: ANN001
                                                     tmp_path: Path) -> None:
    dest = tmp_path / "tables"
    script = tmp_path / "crash.py"
    script.write_text(CRASH.format(here=str(Path(__file__).parent), repo=str(REPO),
                                   source=local_archive.url, dest=str(dest),
                                   scheduler=dask_cluster.address))
    log = tmp_path / "crash.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(300)
        finally:  # whatever the killed process leaves behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert code == 17, log.read_text()[-3000:]
    staged = list((dest / "_staging").glob("*/_READY.json"))
    assert len(staged) == 1 and not (dest / "scans").exists()

    rerun = _screen(local_archive.url, str(dest), scheduler=dask_cluster.address)
    assert rerun.repaired == [staged[0].parent.name]
    assert rerun.screened == 0  # the repaired batch already holds every study
    scans = _sql(str(dest), "select series_key, count(*) n from {scans} group by 1")
    n_studies = len(pd.read_parquet(local_archive.truth / "patients.parquet"))
    assert len(scans) == n_studies and (scans.n == 1).all()
    assert not list((dest / "_staging").glob("*"))


def test_failing_quality_gate_blocks_the_batch(local_archive, dask_cluster, tmp_path: Path) -> None:  # noqa: ANN001
    dest = tmp_path / "tables"
    summary = _screen(local_archive.url, str(dest), max_failure_rate=0.0,  # the no-spine study fails
                      scheduler=dask_cluster.address)
    assert summary.batches_rejected == 1
    assert not (dest / "scans").exists()
    rejected = list((dest / "_rejected").glob("*/scans.parquet"))
    assert len(rejected) == 1
    qc = _sql(str(dest), "select * from {qc} where \"table\" = 'scans'")
    assert not qc.published.any() and (~qc.success).sum() == 1
    assert qc[~qc.success].expectation.iloc[0] == "expect_column_values_to_be_in_set"
