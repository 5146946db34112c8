"""Prefect task: list the source and keep a per-folder manifest of what changed since last run."""

from __future__ import annotations

import posixpath
from typing import Any

import pyarrow.parquet as pq
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from vertfrac_core.batches import TableStore
from vertfrac_core.dicom.index import filesystem, list_objects
from vertfrac_core.storage import retry_transient
from vertfrac_core.worklist import changed_folders, manifest_table

MANIFEST = "_state/manifest.parquet"


@task(name="discover", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def discover(source: str, source_options: dict[str, Any] | None, store: TableStore,
             secret: bytes | str) -> dict[str, int]:
    """List every object under ``source``; compare with the manifest of the previous run and
    write the new one (``DEST/_state/manifest.parquet``, folder keys only, no names).
    Returns counts: objects, folders added/changed/removed/unchanged."""
    fs, root = filesystem(source, source_options)
    objects = retry_transient(lambda: list_objects(fs, root), what=f"listing {source}")
    new = manifest_table(objects, secret)
    dfs, droot = store.open()
    path = posixpath.join(droot, MANIFEST)
    old = None
    if dfs.exists(path):
        with dfs.open(path, "rb") as fh:
            old = pq.read_table(fh)
    counts = {"objects": len(objects), **changed_folders(old, new)}
    dfs.makedirs(posixpath.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with dfs.open(tmp, "wb") as fh:
        pq.write_table(new, fh)
    dfs.mv(tmp, path)
    get_run_logger().info("source %s: %s", source, counts)
    return counts
