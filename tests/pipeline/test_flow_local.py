"""The screen flow end to end on a local archive and a LocalCluster: counts against the truth,
idempotent reruns, a new model version, a crash between writing and publishing, quality gates."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import FAKE, REPO

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _screen(source: str, dest: str, **kw):  # noqa: ANN003, ANN202
    from flows.screen import screen_flow

    kw.setdefault("workers", 2)
    return screen_flow(source, dest, **FAKE, **kw)


def _sql(dest: str, query: str) -> pd.DataFrame:
    q = query.replace("{scans}", f"read_parquet('{dest}/scans/*/*.parquet', hive_partitioning=true)")
    for t in ("vertebrae", "series_index", "qc"):
        q = q.replace("{" + t + "}", f"read_parquet('{dest}/{t}/*/*.parquet', hive_partitioning=true)")
    return duckdb.sql(q).df()


def test_counts_match_truth_rerun_is_a_no_op_new_model_reprocesses(local_archive, tmp_path: Path) -> None:  # noqa: ANN001
    dest = str(tmp_path / "tables")
    first = _screen(local_archive.url, dest)
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

    again = _screen(local_archive.url, dest)
    assert again.screened == 0 and again.already_done == len(patients)
    assert len(_sql(dest, "select * from {scans}")) == len(scans)
    assert len(_sql(dest, "select * from {series_index}")) == len(index)

    v2 = _screen(local_archive.url, dest, analyzer_options={"version": "fake-2"})
    assert v2.screened == len(patients) and v2.model_version == "fake-2"
    both = _sql(dest, "select model_version, count(*) n, count(distinct series_key) k from {scans} group by 1")
    assert sorted(both.model_version) == ["fake-1", "fake-2"] and (both.n == both.k).all()


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
        screen_flow({source!r}, {dest!r}, workers=1, analyze="fake_analyzer:analyze_volume",
                    load_models="fake_analyzer:load_models")
""")


def test_crash_between_write_and_publish_is_repaired(local_archive, tmp_path: Path) -> None:  # noqa: ANN001
    dest = tmp_path / "tables"
    script = tmp_path / "crash.py"
    script.write_text(CRASH.format(here=str(Path(__file__).parent), repo=str(REPO),
                                   source=local_archive.url, dest=str(dest)))
    log = tmp_path / "crash.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(300)
        finally:  # what the killed process leaves behind (its Prefect server, Dask workers)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert code == 17, log.read_text()[-3000:]
    staged = list((dest / "_staging").glob("*/_READY.json"))
    assert len(staged) == 1 and not (dest / "scans").exists()

    rerun = _screen(local_archive.url, str(dest))
    assert rerun.repaired == [staged[0].parent.name]
    assert rerun.screened == 0  # the repaired batch already holds every study
    scans = _sql(str(dest), "select series_key, count(*) n from {scans} group by 1")
    n_studies = len(pd.read_parquet(local_archive.truth / "patients.parquet"))
    assert len(scans) == n_studies and (scans.n == 1).all()
    assert not list((dest / "_staging").glob("*"))


def test_failing_quality_gate_blocks_the_batch(local_archive, tmp_path: Path) -> None:  # noqa: ANN001
    dest = tmp_path / "tables"
    summary = _screen(local_archive.url, str(dest), max_failure_rate=0.0)  # the no-spine study fails
    assert summary.batches_rejected == 1
    assert not (dest / "scans").exists()
    rejected = list((dest / "_rejected").glob("*/scans.parquet"))
    assert len(rejected) == 1
    qc = _sql(str(dest), "select * from {qc} where \"table\" = 'scans'")
    assert not qc.published.any() and (~qc.success).sum() == 1
    assert qc[~qc.success].expectation.iloc[0] == "expect_column_values_to_be_in_set"
