"""Prefect tasks: index what the source plan needs (headers only), list the new index rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.storage import RETRY_DELAYS_S
from vertfrac_core.dicom.index import IndexResult, IndexSettings, filesystem
from vertfrac_core.dicom.reasons import FileReason
from vertfrac_core.errors import VertfracError
from vertfrac_core.manifest import SourcePlan, index_needed


class StorageUnavailableError(VertfracError):
    """The object store refused reads: the run stops and the next one resumes."""


@task(name="index", retries=3, retry_delay_seconds=RETRY_DELAYS_S, cache_policy=NO_CACHE)
def index_archive(plan: SourcePlan, source_options: dict[str, Any] | None, wanted: Iterable[str],
                  workers: int = 8) -> IndexResult:
    """Header index of the new or changed objects and of every study they touch, plus the
    ``wanted`` unchanged studies (see ``vertfrac_core.manifest``), with the selection. Read
    errors (an outage while reading) fail the task so Prefect retries it, instead of filing
    every file as unreadable."""
    fs, _ = filesystem(plan.url, source_options)
    result = index_needed(fs, plan, wanted, settings=IndexSettings(workers=workers))
    unreadable = [h for h in result.failed if h.reason == FileReason.READ_ERROR]
    if unreadable:
        raise StorageUnavailableError(
            f"{len(unreadable)} objects under {plan.url} could not be read "
            f"(first: {unreadable[0].message}); is the object store up?")
    get_run_logger().info("indexed %d series in %d files (%d unusable) under %s",
                          len(result.series), len(result.headers), len(result.failed), plan.url)
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
