"""Prefect tasks: index the source (headers only), select, and list the work still to do."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from vertfrac_core.dicom.index import IndexResult, IndexSettings, build_index
from vertfrac_core.dicom.reasons import FileReason
from vertfrac_core.errors import VertfracError


class StorageUnavailableError(VertfracError):
    """The object store refused reads: the run stops and the next one resumes."""


@task(name="index", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def index_archive(source: str, source_options: dict[str, Any] | None, secret: bytes | str,
                  workers: int = 8) -> IndexResult:
    """Header index of ``source`` with the selection; read errors (an outage while reading)
    fail the task so Prefect retries it, instead of filing every file as unreadable."""
    result = build_index(source, secret=secret, storage_options=source_options,
                         settings=IndexSettings(workers=workers))
    unreadable = [h for h in result.failed if h.reason == FileReason.READ_ERROR]
    if unreadable:
        raise StorageUnavailableError(
            f"{len(unreadable)} objects under {source} could not be read "
            f"(first: {unreadable[0].message}); is the object store up?")
    get_run_logger().info("indexed %d series in %d files (%d unusable) under %s",
                          len(result.series), len(result.headers), len(result.failed), source)
    return result


@task(name="new-series-index-rows", cache_policy=NO_CACHE)
def new_series_rows(result: IndexResult, published: set[tuple]) -> pa.Table:
    """The ``series_index`` rows whose ``(series_key, content_hash)`` is not published yet."""
    table = result.table()
    keys = zip(table.column("series_key").to_pylist(), table.column("content_hash").to_pylist(),
               strict=True)
    mask = pa.array([k not in published for k in keys], type=pa.bool_())
    return table.filter(mask) if len(table) else table


def count_selected(table: pa.Table) -> int:
    return int(pc.sum(table.column("selected")).as_py() or 0) if len(table) else 0
