"""What a run has to do: studies to screen, minus what is already done; the source manifest.

* :func:`work_items` turns the index into one :class:`WorkItem` per study with a selected
  series, its acceptable series ranked best first (the no-spine fallback candidates).
* :func:`pending` drops the studies whose ``(series_key, content_hash, model_version)`` is
  already published, so a rerun processes only new or changed series and a new model version
  reprocesses everything.
* :func:`manifest_table` summarises the source listing per folder (keyed hash of the folder,
  object count, bytes, digest of names, sizes and ETags/mtimes) -- no object name is stored,
  since archive names often embed UIDs -- and :func:`changed_folders` compares two manifests.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable

import pyarrow as pa

from vertfrac_core.dicom.index import IndexResult, ObjectInfo
from vertfrac_core.dicom.keys import content_hash, keyed_hash
from vertfrac_core.screening import WorkItem

MANIFEST_SCHEMA = pa.schema([
    pa.field("folder_key", pa.string(), nullable=False),
    pa.field("n_objects", pa.int64(), nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("digest", pa.string(), nullable=False),
])


def work_items(index: IndexResult) -> list[WorkItem]:
    """One item per study with a selected series; candidates are the selection's ranked list
    (``IndexResult.candidates``: the chosen series, then the fallbacks)."""
    items = []
    for study_key, study in sorted(index.studies.items()):
        if study.chosen is None:
            continue
        candidates = index.candidates(study_key)
        if candidates:
            items.append(WorkItem(study_key, tuple(candidates)))
    return items


def pending(items: list[WorkItem], done: set[tuple[str, str, str]], model_version: str) -> list[WorkItem]:
    """Items whose result for ``model_version`` is not published yet."""
    return [it for it in items
            if (it.selected.series_key, it.selected.content_hash, model_version) not in done]


def manifest_table(objects: Iterable[ObjectInfo], secret: bytes | str) -> pa.Table:
    """One row per folder of the listing (see the module docstring)."""
    groups: dict[str, list[ObjectInfo]] = defaultdict(list)
    for o in objects:
        groups[posixpath.dirname(o.location)].append(o)
    rows = [{"folder_key": keyed_hash(secret, "folder", folder), "n_objects": len(objs),
             "bytes": sum(o.size for o in objs),
             "digest": content_hash([f"{posixpath.basename(o.location)}|{o.size}|{o.etag}" for o in objs])}
            for folder, objs in sorted(groups.items())]
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def changed_folders(old: pa.Table | None, new: pa.Table) -> dict[str, int]:
    """Counts of folders added, changed, removed and unchanged between two manifests."""
    before = dict(zip(old.column("folder_key").to_pylist(), old.column("digest").to_pylist(), strict=True)) if old is not None else {}
    after = dict(zip(new.column("folder_key").to_pylist(), new.column("digest").to_pylist(), strict=True))
    return {
        "added": sum(k not in before for k in after),
        "changed": sum(k in before and before[k] != v for k, v in after.items()),
        "removed": sum(k not in after for k in before),
        "unchanged": sum(before.get(k) == v for k, v in after.items()),
    }
