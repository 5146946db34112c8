"""Acceptance on real servers on loopback: SeaweedFS (S3), a ``dask scheduler`` and two
``dask worker`` processes. Tables are read back with DuckDB through a registered fsspec
filesystem (DuckDB's own S3 extension cannot be downloaded offline)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from tests.pipeline.conftest import FAKE, FAST_RETRY

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.usefixtures("prefect_api"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
N_STUDIES = 6


@pytest.fixture(scope="module")
def s3_archive(seaweed, tmp_path_factory):  # noqa: ANN001, ANN201
    from archives import stub_archive

    seaweed.fs().mkdir("archive")
    truth = tmp_path_factory.mktemp("truth") / "truth"
    stub_archive("s3://archive/pacs", N_STUDIES, seed=5, truth_url=str(truth),
                 storage_options=seaweed.options())
    return "s3://archive/pacs", truth


@pytest.fixture
def s3_env(seaweed, monkeypatch):  # noqa: ANN001, ANN201
    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)
    return seaweed


def _screen(source: str, dest: str, scheduler: str, **kw: Any):  # noqa: ANN202
    from flows.screen import screen_flow

    return screen_flow(source, dest, scheduler=scheduler, **FAKE, **FAST_RETRY, **kw)


def _scans(seaweed, dest: str) -> pd.DataFrame:  # noqa: ANN001
    con = duckdb.connect()
    con.register_filesystem(seaweed.fs())
    return con.sql(f"select * from read_parquet('{dest}/scans/*/*.parquet', hive_partitioning=true)").df()


def _run_in_thread(fn, *args: Any, **kw: Any) -> tuple[threading.Thread, dict]:  # noqa: ANN001
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = fn(*args, **kw)
        except BaseException as err:  # noqa: BLE001
            box["error"] = err

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def _wait_loads(path: Path, n: int, timeout_s: float = 120) -> None:
    """Until ``n`` model loads are logged. The run loads the models on one worker to learn
    their version before indexing; a second load means the other worker has started screening."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        time.sleep(0.1)
    raise TimeoutError(f"workers did not load models within {timeout_s} s")


def test_s3_dask_counts_match_truth(s3_env, s3_archive, dask_cluster, tmp_path: Path) -> None:  # noqa: ANN001
    source, truth = s3_archive
    dest = "s3://tables/run1"
    s3_env.fs().mkdir("tables")
    loads = tmp_path / "loads.txt"
    summary = _screen(source, dest, dask_cluster.address, analyzer_options={"load_log": str(loads)})
    patients = pd.read_parquet(truth / "patients.parquet")
    scans = _scans(s3_env, dest)
    assert len(scans) == len(patients) == scans.study_key.nunique() == summary.screened
    assert (scans.status == "ok").sum() == patients.has_usable_series.sum()
    assert scans.worker.nunique() == 2  # both dask worker processes took part
    assert loads.read_text().count("\n") <= 2  # models loaded once per worker, not per scan
    con = duckdb.connect()
    con.register_filesystem(s3_env.fs())
    n_index = con.sql(f"select count(*) from read_parquet('{dest}/series_index/*/*.parquet')").fetchall()[0][0]
    assert n_index >= len(pd.read_parquet(truth / "series.parquet"))
    assert _screen(source, dest, dask_cluster.address).screened == 0


def test_worker_killed_mid_run(s3_env, s3_archive, dask_cluster, tmp_path: Path) -> None:  # noqa: ANN001
    source, truth = s3_archive
    dest = "s3://tables/killed"
    loads = tmp_path / "loads.txt"
    t, box = _run_in_thread(_screen, source, dest, dask_cluster.address, batch_size=3,
                            analyzer_options={"load_log": str(loads), "compute_s": 1.0})
    _wait_loads(loads, 2)  # screening has begun on both workers
    time.sleep(1.0)
    dask_cluster.kill_worker(0)
    t.join(300)
    assert "error" not in box, box.get("error")
    scans = _scans(s3_env, dest)
    n = len(pd.read_parquet(truth / "patients.parquet"))
    assert len(scans) == n and scans.series_key.nunique() == n
    assert set(scans.status) <= {"ok", "failed"} and "worker_killed" not in set(scans.error_code.dropna())


def test_s3_stopped_mid_run_then_rerun(s3_env, s3_archive, dask_cluster, tmp_path: Path) -> None:  # noqa: ANN001
    source, truth = s3_archive
    dest = "s3://tables/outage"
    loads = tmp_path / "loads.txt"
    t, box = _run_in_thread(_screen, source, dest, dask_cluster.address, batch_size=2,
                            analyzer_options={"load_log": str(loads), "compute_s": 1.0})
    _wait_loads(loads, 2)
    time.sleep(1.5)
    s3_env.stop()
    t.join(300)
    s3_env.start()
    assert "error" in box  # failed cleanly: an exception, no hang
    rerun = _screen(source, dest, dask_cluster.address, analyzer_options={"load_log": str(loads)})
    assert rerun.deferred == 0
    scans = _scans(s3_env, dest)
    n = len(pd.read_parquet(truth / "patients.parquet"))
    assert len(scans) == n and scans.series_key.nunique() == n, scans.series_key.value_counts()
    assert "storage_unavailable" not in set(scans.error_code.dropna())
