"""Batches of table rows on any fsspec store: staged, then published whole, repaired after a crash.

Layout under the destination URL::

    <table>/run_date=YYYY-MM-DD/batch-<id>.parquet   published rows (Hive partitions by run date)
    _batches/<id>.json                                commit marker: the batch is complete
    _staging/<id>/<table>.parquet, _READY.json        a batch being written
    _rejected/<id>/<table>.parquet                    rows a quality gate refused (not published)

Protocol: every table of a batch is written under ``_staging/<id>/``; ``_READY.json`` (the list
of files to publish) is written last, so its presence means the staged batch is complete. Publish
moves each file to its final name (one object PUT/rename each, so a reader never sees a partial
file) and then writes the commit marker and removes the staging folder. ``repair`` resumes after
a crash at any point: a staged batch with ``_READY.json`` is rolled forward (publishing is
idempotent: a file already moved is simply moved again or found in place); one without it is
rolled back (deleted). Readers glob ``<table>/run_date=*/*.parquet`` and never see staging.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import posixpath
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vertfrac_core.dicom.index import filesystem
from vertfrac_core.errors import InputError
from vertfrac_core.safepath import check_component, check_relative
from vertfrac_core.storage import StorageRetry

log = logging.getLogger(__name__)

STAGING, BATCHES, REJECTED = "_staging", "_batches", "_rejected"
READY = "_READY.json"


def new_batch_id(run_date: dt.date) -> str:
    """Sortable, unique: ``YYYYMMDDTHHMMSS-<8 hex>``."""
    now = dt.datetime.now(dt.UTC).strftime("%H%M%S")
    return f"{run_date:%Y%m%d}T{now}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class TableStore:
    """Where the tables live: a folder or ``s3://bucket/prefix`` plus fsspec storage options,
    and how a write that meets a storage outage is retried."""

    url: str
    storage_options: dict[str, Any] | None = None
    retry: StorageRetry = field(default_factory=StorageRetry)

    def open(self) -> tuple[Any, str]:
        fs, root = filesystem(self.url, self.storage_options)
        return fs, root.rstrip("/")


@dataclass(frozen=True)
class StagedBatch:
    batch_id: str
    run_date: dt.date
    files: dict[str, str] = field(default_factory=dict)  # table -> final path (fs-relative)


@dataclass(frozen=True)
class RepairReport:
    rolled_forward: tuple[str, ...] = ()
    rolled_back: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rolled_forward or self.rolled_back)


def final_path(root: str, table: str, run_date: dt.date, batch_id: str) -> str:
    return posixpath.join(root, table, f"run_date={run_date.isoformat()}", f"batch-{batch_id}.parquet")


def _write_parquet(fs: Any, path: str, table: pa.Table) -> None:
    with fs.open(path, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")


def stage(store: TableStore, batch_id: str, run_date: dt.date, tables: dict[str, pa.Table],
          *, folder: str = STAGING) -> StagedBatch:
    """Write ``tables`` under ``<folder>/<batch_id>/`` and, last, the ``_READY.json`` manifest."""
    fs, root = store.open()
    base = posixpath.join(root, folder, batch_id)
    fs.makedirs(base, exist_ok=True)
    files = {}
    for name, table in tables.items():
        store.retry.call(lambda n=name, t=table: _write_parquet(fs, posixpath.join(base, f"{n}.parquet"), t))
        files[name] = final_path(root, name, run_date, batch_id)
    manifest = {"batch_id": batch_id, "run_date": run_date.isoformat(),
                "files": {k: posixpath.relpath(v, root) for k, v in files.items()},
                "rows": {k: t.num_rows for k, t in tables.items()}}
    store.retry.call(lambda: fs.pipe_file(posixpath.join(base, READY), json.dumps(manifest).encode()))
    return StagedBatch(batch_id, run_date, files)


def publish(store: TableStore, staged: StagedBatch) -> list[str]:
    """Move a staged batch to its final names, write its commit marker, drop the staging folder.

    Idempotent: safe to call again after a crash at any point. Returns the final locations.
    """
    fs, root = store.open()
    base = posixpath.join(root, STAGING, staged.batch_id)
    out = []
    for table, dest in staged.files.items():
        src = posixpath.join(base, f"{table}.parquet")
        if fs.exists(src):
            fs.makedirs(posixpath.dirname(dest), exist_ok=True)
            store.retry.call(lambda s=src, d=dest: fs.mv(s, d))
        elif not fs.exists(dest):
            raise InputError(f"batch {staged.batch_id}: {table} is neither staged nor published; "
                             f"the staging folder {base} was altered by hand")
        out.append(dest)
    marker = {"batch_id": staged.batch_id, "run_date": staged.run_date.isoformat(),
              "files": [posixpath.relpath(p, root) for p in out],
              "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    fs.makedirs(posixpath.join(root, BATCHES), exist_ok=True)
    store.retry.call(lambda: fs.pipe_file(posixpath.join(root, BATCHES, f"{staged.batch_id}.json"),
                                          json.dumps(marker).encode()))
    if fs.exists(base):
        store.retry.call(lambda: fs.rm(base, recursive=True))
    log.info("published batch %s (%s)", staged.batch_id, ", ".join(staged.files))
    return out


def _staged_from_manifest(root: str, manifest: dict[str, Any]) -> StagedBatch:
    """The batch a ``_READY.json`` describes; its names are data, so each is checked
    (``safepath``) before it can name a file: an edited manifest cannot move a file elsewhere."""
    files = {check_component(k): posixpath.join(root, check_relative(v))
             for k, v in manifest["files"].items()}
    return StagedBatch(check_component(manifest["batch_id"]),
                       dt.date.fromisoformat(manifest["run_date"]), files)


def repair(store: TableStore) -> RepairReport:
    """Finish or undo every batch a crashed run left in staging (see the module docstring)."""
    fs, root = store.open()
    staging = posixpath.join(root, STAGING)
    if not fs.exists(staging):
        return RepairReport()
    forward, back = [], []
    for entry in sorted(fs.ls(staging, detail=False)):
        batch_id = posixpath.basename(entry.rstrip("/"))
        ready = posixpath.join(entry, READY)
        if fs.exists(ready):
            manifest = json.loads(fs.cat_file(ready))
            publish(store, _staged_from_manifest(root, manifest))
            forward.append(batch_id)
        elif not fs.find(entry):  # the empty folder of a published batch (some S3 servers
            fs.rm(entry, recursive=True)  # list folders that hold no object): nothing to undo
        else:
            fs.rm(entry, recursive=True)
            back.append(batch_id)
    if forward or back:
        log.warning("repaired the table store: rolled forward %s, rolled back %s", forward, back)
    return RepairReport(tuple(forward), tuple(back))


def published_files(store: TableStore, table: str) -> list[str]:
    """Every published Parquet file of ``table`` (fs-relative paths), sorted."""
    fs, root = store.open()
    return sorted(fs.glob(posixpath.join(root, table, "run_date=*", "*.parquet")))


def read_table(store: TableStore, table: str, columns: Iterable[str] | None = None) -> pa.Table:
    """All published rows of ``table`` (empty with its schema when there are none)."""
    from vertfrac_core.tables import SCHEMAS

    fs, _ = store.open()
    cols = list(columns) if columns is not None else None
    parts = [pq.read_table(fh, columns=cols) for fh in _open_all(fs, published_files(store, table))]
    schema = SCHEMAS[table]
    if cols is not None:
        schema = pa.schema([schema.field(c) for c in cols])
    if not parts:
        return schema.empty_table()
    return pa.concat_tables([p.cast(schema) for p in parts])


def _open_all(fs: Any, paths: list[str]) -> Iterable[Any]:
    for p in paths:
        with fs.open(p, "rb") as fh:
            yield pa.BufferReader(fh.read())


def done_keys(store: TableStore, table: str, key: tuple[str, ...]) -> set[tuple[Any, ...]]:
    """The distinct ``key`` tuples already published in ``table``."""
    t = read_table(store, table, columns=key)
    return set(zip(*(t.column(k).to_pylist() for k in key), strict=True))
