"""Prefect tasks: list the source, compare it with the object manifest, record the new one."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.storage import RETRY_DELAYS_S
from vertfrac_core.batches import TableStore
from vertfrac_core.dicom.index import filesystem, list_objects
from vertfrac_core.manifest import SourcePlan, load_manifest, plan_source, save_manifest


@task(name="discover", retries=3, retry_delay_seconds=RETRY_DELAYS_S, cache_policy=NO_CACHE)
def discover(source: str, source_options: dict[str, Any] | None, store: TableStore,
             secret: bytes | str) -> SourcePlan:
    """List every object under ``source`` and compare the listing with the manifest the last
    run left (``DEST/_state/objects.parquet``: keyed hashes only, no names). Storage calls are
    retried as ``store.retry`` says."""
    fs, root = filesystem(source, source_options)
    objects = store.retry.call(lambda: list_objects(fs, root), what=f"listing {source}")
    dfs, droot = store.open()
    previous = store.retry.call(lambda: load_manifest(dfs, droot), what="reading the manifest")
    plan = plan_source(source, objects, previous, secret)
    get_run_logger().info("source %s: %s; %d studies to re-read because an object changed",
                          source, plan.counts, len(plan.stale_studies))
    return plan


@task(name="record-manifest", retries=3, retry_delay_seconds=RETRY_DELAYS_S, cache_policy=NO_CACHE)
def record_manifest(store: TableStore, manifest: pa.Table) -> None:
    """Write the manifest for the next run (after the series index it describes is published)."""
    fs, root = store.open()
    store.retry.call(lambda: save_manifest(fs, root, manifest), what="writing the manifest")
