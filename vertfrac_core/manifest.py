"""The source manifest: what each listed object held at the last run, so a rerun reads only the
headers it needs.

One row per (object, series the object contributed to) -- a plain DICOM file has one row, a zip
one per series among its members, an unusable file one row without a series. Only keyed hashes
are stored: ``object_key`` is the HMAC of the object's location and ``version`` the HMAC of
location, size and ETag/mtime, so neither names (which often embed UIDs) nor UIDs are kept.

* :func:`plan_source` compares a listing with the previous manifest: objects that are new or
  changed are *dirty*; the studies of changed or removed objects are *stale*; every other study
  keeps its selected series' ``(series_key, content_hash)`` from the manifest.
* :func:`index_needed` reads the headers of the dirty objects, of every object of the studies
  they touch or that are stale, and of the unchanged studies the caller still needs (e.g. whose
  result for the current model is missing), until every study it read is complete; unchanged,
  finished studies cost no read at all.
* :func:`updated_manifest` is the manifest after that index: the rows of the objects read, plus
  the previous rows of those that were not.
"""

from __future__ import annotations

import logging
import posixpath
import warnings
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vertfrac_core.dicom.grouping import group_series, study_identity
from vertfrac_core.dicom.header import FileHeader
from vertfrac_core.dicom.index import IndexResult, IndexSettings, ObjectInfo, read_object
from vertfrac_core.dicom.keys import keyed_hash
from vertfrac_core.dicom.select import select_series
from vertfrac_core.dicom.zipio import split_location

log = logging.getLogger(__name__)

MANIFEST_PATH = "_state/objects.parquet"  # under the destination URL

MANIFEST_SCHEMA = pa.schema([
    pa.field("object_key", pa.string(), nullable=False),  # HMAC of the location
    pa.field("version", pa.string(), nullable=False),  # HMAC of location, size, ETag/mtime
    pa.field("study_key", pa.string()),  # null: the object holds no usable image
    pa.field("series_key", pa.string()),
    pa.field("content_hash", pa.string()),  # of the whole series, as in series_index
    pa.field("selected", pa.bool_(), nullable=False),  # the series is its study's selection
])


def object_key(secret: bytes | str, obj: ObjectInfo) -> str:
    return keyed_hash(secret, "object", obj.location)


def object_version(secret: bytes | str, obj: ObjectInfo) -> str:
    return keyed_hash(secret, "object-version", obj.location, str(obj.size), obj.etag)


def study_key_of(secret: bytes | str, header: FileHeader) -> str:
    """The study key ``group_series`` gives this header's series."""
    return keyed_hash(secret, "study", study_identity(header))


@dataclass(frozen=True)
class SourcePlan:
    """A listing compared with the previous manifest (see the module docstring).

    ``counts``: objects listed, added, changed, removed and unchanged since the last manifest.
    """

    url: str
    secret: bytes | str = field(repr=False)
    objects: tuple[ObjectInfo, ...]
    dirty: tuple[ObjectInfo, ...]
    unchanged_rows: pa.Table  # previous manifest rows of the unchanged objects
    stale_studies: frozenset[str]
    counts: dict[str, int]

    def unchanged_by_study(self) -> dict[str, list[ObjectInfo]]:
        """Unchanged objects per study key they held a series of."""
        by_key = {object_key(self.secret, o): o for o in self.objects}
        out: dict[str, list[ObjectInfo]] = defaultdict(list)
        for r in self.unchanged_rows.select(["object_key", "study_key"]).to_pylist():
            if r["study_key"] is not None:
                out[r["study_key"]].append(by_key[r["object_key"]])
        return out

    def selected(self) -> dict[str, tuple[str, str]]:
        """Study key -> (series_key, content_hash) of its selected series, for every study the
        previous manifest knew that is not stale (a dirty object may still join it)."""
        t = self.unchanged_rows.filter(pc.field("selected"))
        return {s: (k, h) for s, k, h in zip(t.column("study_key").to_pylist(),
                                             t.column("series_key").to_pylist(),
                                             t.column("content_hash").to_pylist(), strict=True)
                if s not in self.stale_studies}

    def unfinished(self, done: set[tuple[str, ...]], model_version: str) -> set[str]:
        """Known studies whose selected series has no published result for ``model_version``."""
        return {s for s, (k, h) in self.selected().items() if (k, h, model_version) not in done}


def plan_source(url: str, objects: Iterable[ObjectInfo], previous: pa.Table | None,
                secret: bytes | str) -> SourcePlan:
    """Compare a listing with the previous manifest (None: first run, everything is dirty)."""
    objects = tuple(objects)
    prev = previous if previous is not None else MANIFEST_SCHEMA.empty_table()
    prev_version = dict(zip(prev.column("object_key").to_pylist(), prev.column("version").to_pylist(),
                            strict=True))
    clean, dirty, dirty_keys, added = set(), [], set(), 0
    for o in objects:
        key = object_key(secret, o)
        if prev_version.get(key) == object_version(secret, o):
            clean.add(key)
        else:
            dirty.append(o)
            dirty_keys.add(key)
            added += key not in prev_version
    gone = set(prev_version) - clean - dirty_keys
    touched = prev.filter(pc.is_in(prev.column("object_key"), _strings(gone | dirty_keys)))
    stale = frozenset(s for s in touched.column("study_key").to_pylist() if s is not None)
    unchanged = prev.filter(pc.is_in(prev.column("object_key"), _strings(clean)))
    counts = {"objects": len(objects), "added": added, "changed": len(dirty) - added,
              "removed": len(gone), "unchanged": len(objects) - len(dirty)}
    return SourcePlan(url, secret, objects, tuple(dirty), unchanged, stale, counts)


def _strings(values: Iterable[str]) -> pa.Array:
    return pa.array(sorted(values), pa.string())


def read_headers(fs: Any, objects: list[ObjectInfo], settings: IndexSettings) -> dict[str, list[FileHeader]]:
    """Location -> headers of each object (``read_object``: never raises), read in a thread pool."""
    with warnings.catch_warnings():  # pydicom validation chatter on odd files; once per call
        warnings.simplefilter("ignore")
        with ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
            found = pool.map(lambda o: read_object(fs, o, settings), objects, chunksize=64)
            return {o.location: hs for o, hs in zip(objects, found, strict=True)}


def index_needed(fs: Any, plan: SourcePlan, wanted: Iterable[str], *,
                 settings: IndexSettings = IndexSettings()) -> IndexResult:
    """The index of every study that needs reading (see the module docstring): the studies of
    the dirty objects, the stale ones and ``wanted`` (study keys), each with all its objects."""
    by_study = plan.unchanged_by_study()
    want = set(plan.stale_studies) | set(wanted)
    read: dict[str, list[FileHeader]] = {}
    queue = list(plan.dirty) + [o for s in sorted(want) for o in by_study.get(s, [])]
    while queue:
        queue = list({o.location: o for o in queue if o.location not in read}.values())
        got = read_headers(fs, queue, settings)
        read.update(got)
        seen = {study_key_of(plan.secret, h) for hs in got.values() for h in hs if h.ok}
        new = seen - want
        want |= new
        queue = [o for s in sorted(new) for o in by_study.get(s, []) if o.location not in read]
    headers = [h for o in plan.objects if o.location in read for h in read[o.location]]
    series = group_series(headers, secret=plan.secret, policy=settings.geometry)
    selection = select_series(series, policy=settings.selection)
    log.info("read %d of %d objects (%d new or changed) into %d series of %d studies",
             len(read), len(plan.objects), len(plan.dirty), len(series), len(selection.studies))
    return IndexResult(plan.url, headers, series, selection.decisions, plan.secret,
                       selection.studies)


def updated_manifest(plan: SourcePlan, index: IndexResult) -> pa.Table:
    """The manifest after ``index``: rows of the objects it read, previous rows of the others."""
    by_location = {o.location: o for o in plan.objects}
    series_of: dict[str, Any] = {}
    for d in index.decisions:
        for sl in d.series.slices:
            series_of[sl.header.location] = (d.series, d.selected)
    rows: dict[tuple[str, str | None], dict[str, Any]] = {}
    for h in index.headers:
        obj = by_location[split_location(h.location)[0]]
        key = object_key(plan.secret, obj)
        s, selected = series_of.get(h.location, (None, False))
        rows[(key, s.series_key if s else None)] = {
            "object_key": key, "version": object_version(plan.secret, obj),
            "study_key": s.study_key if s else None, "series_key": s.series_key if s else None,
            "content_hash": s.content_hash if s else None, "selected": bool(selected)}
    read = _strings({k for k, _ in rows})
    kept = plan.unchanged_rows.filter(pc.invert(pc.is_in(plan.unchanged_rows.column("object_key"), read)))
    fresh = pa.Table.from_pylist(list(rows.values()), schema=MANIFEST_SCHEMA)
    return pa.concat_tables([kept.cast(MANIFEST_SCHEMA), fresh])


def totals(manifest: pa.Table) -> tuple[int, int]:
    """(series, studies with a selected series) that a manifest describes."""
    series = pc.count_distinct(manifest.column("series_key")).as_py()
    studies = pc.count_distinct(manifest.filter(pc.field("selected")).column("study_key")).as_py()
    return int(series), int(studies)


def load_manifest(fs: Any, root: str) -> pa.Table | None:
    """The manifest under the destination root, None when absent or of another layout."""
    path = posixpath.join(root, MANIFEST_PATH)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as fh:
        table = pq.read_table(fh)
    if table.schema.names != MANIFEST_SCHEMA.names:
        log.warning("ignoring %s: columns %s, expected %s", path, table.schema.names, MANIFEST_SCHEMA.names)
        return None
    return table.cast(MANIFEST_SCHEMA)


def save_manifest(fs: Any, root: str, table: pa.Table) -> None:
    """Write the manifest under a temporary name, then move it in place."""
    path = posixpath.join(root, MANIFEST_PATH)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with fs.open(tmp, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
    fs.mv(tmp, path)
