"""Read the published screening tables into pandas frames, one :class:`Tables` per destination.

Reports read the tables only (``DEST/<table>/run_date=*/batch-*.parquet``, see ``docs/tables.md``)
and never the archive: what a report can show is what the tables hold, and the tables hold keyed
hashes, not names, patient IDs or UIDs. Columns that may carry archive paths or free text from
headers or exceptions (``source``, ``series_description``, ``error``) are dropped on reading, so
no report can show them by accident.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from vertfrac_core.batches import TableStore, read_table

log = logging.getLogger(__name__)

#: free-text or path columns never read into a report
UNSAFE_COLUMNS = frozenset({"source", "series_description", "error", "reason_detail", "worker"})
#: the source manifests a run leaves under the tables: per object (current) or per folder (older runs)
OBJECTS_MANIFEST, FOLDER_MANIFEST = "_state/objects.parquet", "_state/manifest.parquet"


@dataclass(frozen=True)
class Tables:
    """The published tables of one destination (unsafe columns removed)."""

    series_index: pd.DataFrame
    scans: pd.DataFrame
    vertebrae: pd.DataFrame
    qc: pd.DataFrame
    archived_objects: int | None  # objects listed under the source at the last run (None: unknown)


def _frame(store: TableStore, name: str) -> pd.DataFrame:
    table = read_table(store, name)
    keep = [c for c in table.column_names if c not in UNSAFE_COLUMNS]
    return table.select(keep).to_pandas()


def archived_objects(store: TableStore) -> int | None:
    """How many objects the last run listed under the source, from the manifest it left."""
    fs, root = store.open()
    for rel, column in ((OBJECTS_MANIFEST, "object_key"), (FOLDER_MANIFEST, "n_objects")):
        path = posixpath.join(root, rel)
        if not fs.exists(path):
            continue
        with fs.open(path, "rb") as fh:
            table = pq.read_table(fh)
        if column not in table.column_names:
            log.warning("manifest %s has no column %s; archive size unknown", rel, column)
            return None
        values = table.column(column).to_pandas()
        return int(values.nunique()) if column == "object_key" else int(values.sum())
    return None


def load_tables(dest: str, storage_options: dict[str, Any] | None = None) -> Tables:
    """All published rows under ``dest`` (a folder or an fsspec URL)."""
    store = TableStore(dest, storage_options)
    frames = {name: _frame(store, name) for name in ("series_index", "scans", "vertebrae", "qc")}
    log.info("tables under %s: %s", dest, {k: len(v) for k, v in frames.items()})
    return Tables(**frames, archived_objects=archived_objects(store))


def read_image(dest: str, relative_path: str, storage_options: dict[str, Any] | None = None) -> bytes | None:
    """The bytes of a picture stored under ``dest`` (``scans.image_path``), or None if absent.

    Only paths inside ``dest`` are read: an absolute path or one with ``..`` is refused.
    """
    rel = posixpath.normpath(relative_path or "")
    if not relative_path or rel.startswith(("/", "..")) or "://" in rel:
        return None
    fs, root = TableStore(dest, storage_options).open()
    path = posixpath.join(root, rel)
    try:
        return fs.cat_file(path) if fs.exists(path) else None
    except OSError as err:
        log.warning("picture %s could not be read: %s", rel, err)
        return None
