"""Staged batches: publish makes a whole batch visible, repair finishes or undoes a crash."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from vertfrac_core import batches
from vertfrac_core.batches import TableStore
from vertfrac_core.tables import SCANS_SCHEMA

DAY = dt.date(2026, 1, 2)


def _scans(keys: list[str]) -> pa.Table:
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    rows = [{"series_key": k, "content_hash": "h" + k, "model_version": "m1", "status": "ok",
             "candidates_tried": 1, "n_vertebrae": 0, "run_id": "r", "batch_id": "b",
             "processed_at": now} for k in keys]
    return pa.Table.from_pylist(rows, schema=SCANS_SCHEMA)


def test_stage_then_publish(tmp_path: Path) -> None:
    store = TableStore(str(tmp_path))
    staged = batches.stage(store, "b1", DAY, {"scans": _scans(["a", "b"])})
    assert batches.read_table(store, "scans").num_rows == 0  # staged is invisible
    batches.publish(store, staged)
    assert batches.read_table(store, "scans").num_rows == 2
    assert (tmp_path / "scans" / "run_date=2026-01-02" / "batch-b1.parquet").exists()
    assert (tmp_path / "_batches" / "b1.json").exists() and not (tmp_path / "_staging" / "b1").exists()
    assert batches.done_keys(store, "scans", ("series_key",)) == {("a",), ("b",)}


def test_repair_rolls_forward_a_complete_staged_batch(tmp_path: Path) -> None:
    store = TableStore(str(tmp_path))
    batches.stage(store, "b1", DAY, {"scans": _scans(["a"]), "vertebrae": pa.table({"x": [1]})})
    report = batches.repair(store)  # the process died after staging, before publishing
    assert report.rolled_forward == ("b1",) and batches.read_table(store, "scans").num_rows == 1
    assert not batches.repair(store)  # nothing left to do; idempotent


def test_repair_after_a_partial_publish(tmp_path: Path) -> None:
    store = TableStore(str(tmp_path))
    staged = batches.stage(store, "b1", DAY, {"scans": _scans(["a"]), "qc": pa.table({"x": [1]})})
    # died after moving the first file only
    src = tmp_path / "_staging" / "b1" / "scans.parquet"
    dest = Path(staged.files["scans"])
    dest.parent.mkdir(parents=True)
    src.rename(dest)
    batches.repair(store)
    assert batches.read_table(store, "scans").num_rows == 1
    assert Path(staged.files["qc"]).exists() and (tmp_path / "_batches" / "b1.json").exists()


def test_repair_rolls_back_an_incomplete_staged_batch(tmp_path: Path) -> None:
    store = TableStore(str(tmp_path))
    batches.stage(store, "b1", DAY, {"scans": _scans(["a"])})
    (tmp_path / "_staging" / "b1" / batches.READY).unlink()  # died while staging
    assert batches.repair(store).rolled_back == ("b1",)
    assert batches.read_table(store, "scans").num_rows == 0
    assert not (tmp_path / "_staging" / "b1").exists()


def test_publish_refuses_a_vanished_batch(tmp_path: Path) -> None:
    store = TableStore(str(tmp_path))
    staged = batches.stage(store, "b1", DAY, {"scans": _scans(["a"])})
    (tmp_path / "_staging" / "b1" / "scans.parquet").unlink()
    with pytest.raises(Exception, match="neither staged nor published"):
        batches.publish(store, staged)
