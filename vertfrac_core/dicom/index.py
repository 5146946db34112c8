"""Header index over any fsspec URL: list objects, read headers in parallel, group, select.

``build_index(url, secret=...)`` returns every file header (bad files included, each with a
``FileReason``), the series they form and the selection decision for each series;
``IndexResult.table()`` is the ``series_index`` Arrow table (schema in ``schema.py``).

Only a bounded prefix of each object is read (64 KiB first, more only while the header is
incomplete); on S3 these are range requests. Zip files are opened in place and their members
indexed the same way (``zipio.py``). Reads run in a thread pool: the work is I/O plus pydicom
parsing of small buffers, and memory per file is bounded by ``HeaderLimits.max_header_bytes``.
"""

from __future__ import annotations

import datetime as dt
import logging
import posixpath
import uuid
import warnings
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa

from vertfrac_core.dicom import zipio
from vertfrac_core.dicom.geometry import GeometryPolicy
from vertfrac_core.dicom.grouping import Series, folder_of, group_series
from vertfrac_core.dicom.header import FileHeader, HeaderLimits, read_header
from vertfrac_core.dicom.keys import content_hash, keyed_hash
from vertfrac_core.dicom.reasons import FileReason
from vertfrac_core.dicom.schema import SERIES_INDEX_SCHEMA
from vertfrac_core.dicom.select import (
    Decision,
    SelectionPolicy,
    StudySelection,
    fov_center_offset_mm,
    fov_diameter_mm,
    has_contrast,
    select_series,
    slice_thickness,
)
from vertfrac_core.errors import InputError
from vertfrac_core.redact import Redactor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its location string, size in bytes and change marker (ETag/mtime)."""

    location: str
    size: int
    etag: str = ""


@dataclass(frozen=True)
class IndexSettings:
    """How to read an archive: parallelism and byte bounds."""

    workers: int = 8
    header: HeaderLimits = field(default_factory=HeaderLimits)
    zip: zipio.ZipLimits = field(default_factory=zipio.ZipLimits)
    geometry: GeometryPolicy = field(default_factory=GeometryPolicy)
    selection: SelectionPolicy = field(default_factory=SelectionPolicy)


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) for a URL or local path."""
    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except Exception as err:  # noqa: BLE001
        raise InputError(f"Cannot open {url!r}: {err}. Use a local path or s3://bucket/prefix "
                         "with storage options for the endpoint and credentials.") from err


def _is_local(fs: Any) -> bool:
    return "file" in fs.protocol if isinstance(fs.protocol, tuple) else fs.protocol == "file"


def location_of(fs: Any, path: str) -> str:
    """The location string of an object: a plain path locally, a full URL elsewhere."""
    return path if _is_local(fs) else fs.unstrip_protocol(path)


def list_objects(fs: Any, root: str) -> list[ObjectInfo]:
    """Every file object under ``root`` (or ``root`` itself if it is a file), sorted."""
    if not fs.exists(root):
        raise InputError(f"{root!r} does not exist; give a DICOM folder, zip or s3:// prefix")
    infos = {root: fs.info(root)} if fs.isfile(root) else fs.find(root, detail=True, withdirs=False)
    out = []
    for path, info in sorted(infos.items()):
        etag = info.get("ETag") or info.get("etag") or info.get("mtime") or ""
        out.append(ObjectInfo(location_of(fs, path), int(info.get("size") or 0), str(etag)))
    return out


def _prefix_reader(fs: Any, path: str) -> Callable[[int], bytes]:
    if _is_local(fs):
        def read_local(n: int) -> bytes:
            with open(path, "rb") as fh:
                return fh.read(n)
        return read_local

    def read_remote(n: int) -> bytes:
        return fs.cat_file(path, start=0, end=n)
    return read_remote


def _strip(fs: Any, location: str) -> str:
    return location if _is_local(fs) else fs._strip_protocol(location)


def read_object(fs: Any, obj: ObjectInfo, settings: IndexSettings) -> list[FileHeader]:
    """Headers of one object: one for a file, one per member for a zip. Never raises."""
    path = _strip(fs, obj.location)
    reader = _prefix_reader(fs, path)
    try:
        if obj.size >= 4 and zipio.is_zip(reader(4)):
            return _read_zip(fs, path, obj, settings)
        return [_safe_header(reader, obj.location, obj.size, obj.etag, settings)]
    except Exception as err:  # noqa: BLE001 - a storage error is a row, not a crash
        return [FileHeader(obj.location, obj.size, obj.etag, FileReason.READ_ERROR, str(err))]


def _safe_header(reader: Callable[[int], bytes], location: str, size: int, etag: str,
                 settings: IndexSettings) -> FileHeader:
    try:
        return read_header(reader, location, size, etag=etag, limits=settings.header)
    except Exception as err:  # noqa: BLE001 - last line of defence against odd datasets
        return FileHeader(location, size, etag, FileReason.MALFORMED,
                          f"unexpected {type(err).__name__}: {err}")


def _read_zip(fs: Any, path: str, obj: ObjectInfo, settings: IndexSettings) -> list[FileHeader]:
    try:
        fh = open(path, "rb") if _is_local(fs) else fs.open(path, "rb", block_size=1 << 20)  # noqa: SIM115
    except Exception as err:  # noqa: BLE001
        return [FileHeader(obj.location, obj.size, obj.etag, FileReason.READ_ERROR, str(err))]
    with fh:
        try:
            zf = zipio.open_zip(fh)
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            return [FileHeader(obj.location, obj.size, obj.etag, FileReason.BAD_ZIP, str(err))]
        with zf:
            refused = zipio.archive_reason(zf, settings.zip)
            if refused:
                return [FileHeader(obj.location, obj.size, obj.etag, refused[0], refused[1])]
            out = []
            for info in zipio.iter_members(zf):
                loc = zipio.member_location(obj.location, info.filename)
                etag = f"{obj.etag}:{info.CRC:08x}"
                bad = zipio.member_reason(info, settings.zip)
                if bad:
                    out.append(FileHeader(loc, info.file_size, etag, bad[0], bad[1]))
                    continue

                def reader(n: int, name: str = info.filename) -> bytes:
                    return zipio.read_member(zf, name, n)
                out.append(_safe_header(reader, loc, info.file_size, etag, settings))
            return out


@dataclass(frozen=True)
class IndexResult:
    """Everything the index found under one URL."""

    url: str
    headers: list[FileHeader]
    series: list[Series]
    decisions: list[Decision]
    secret: bytes | str = field(repr=False)
    studies: dict[str, StudySelection] = field(default_factory=dict)

    @property
    def failed(self) -> list[FileHeader]:
        """Headers of files that are not usable images, each with its reason."""
        return [h for h in self.headers if not h.ok]

    def selected(self) -> list[Series]:
        """The selected series, one per study that has an acceptable one."""
        return [d.series for d in self.decisions if d.selected]

    def candidates(self, study_key: str) -> list[Series]:
        """Acceptable series of a study, best first: the selected one, then the fallbacks to
        try when the pipeline finds no spine in it."""
        by_key = {s.series_key: s for s in self.series}
        study = self.studies.get(study_key)
        return [by_key[k] for k in study.ranked] if study is not None else []

    def find(self, series_key: str) -> Series:
        """The series with this key (a unique prefix of it is accepted)."""
        hits = [s for s in self.series if s.series_key.startswith(series_key)]
        if len(hits) != 1:
            raise InputError(f"series key {series_key!r} matches {len(hits)} series under "
                             f"{self.url}; run `vertfrac index` to list the keys")
        return hits[0]

    def redactor(self) -> Redactor:
        """Replaces this index's identifiers (names, IDs, UIDs...) in text (``redact.py``)."""
        return Redactor.from_headers(self.secret, self.headers)

    def table(self, *, redact: bool = True) -> pa.Table:
        """The ``series_index`` table: one row per series, then one per unusable file.

        The text columns that come from the archive (``source``, ``series_description``,
        ``reason_detail``) are redacted unless ``redact`` is False (a local listing for the
        operator, ``vertfrac index --show-paths``)."""
        rows = [_series_row(d) for d in self.decisions]
        rows += [_file_row(h, self.secret) for h in self.failed]
        if redact:
            clean = self.redactor().text
            for r in rows:
                for col in ("source", "series_description", "reason_detail"):
                    r[col] = clean(r.get(col))
        return pa.Table.from_pylist(rows, schema=SERIES_INDEX_SCHEMA)


def build_index(
    url: str,
    *,
    secret: bytes | str,
    storage_options: dict[str, Any] | None = None,
    settings: IndexSettings = IndexSettings(),
) -> IndexResult:
    """Index every object under ``url`` (local path, ``file://``, ``s3://``...).

    Args:
        url: a folder, a single file or a zip, locally or on any fsspec store.
        secret: key of the HMAC that turns patient/study/series identifiers into keys.
        storage_options: passed to fsspec (e.g. ``{"client_kwargs": {"endpoint_url": ...}}``).
    """
    fs, root = filesystem(url, storage_options)
    objects = list_objects(fs, root)
    headers: list[FileHeader] = []
    with warnings.catch_warnings():  # pydicom validation chatter on odd files; once per run
        warnings.simplefilter("ignore")
        with ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
            for hs in pool.map(lambda o: read_object(fs, o, settings), objects, chunksize=64):
                headers.extend(hs)
    series = group_series(headers, secret=secret, policy=settings.geometry)
    selection = select_series(series, policy=settings.selection)
    n_bad = sum(1 for h in headers if not h.ok)
    log.info("indexed %d objects (%d headers, %d unusable) into %d series under %s",
             len(objects), len(headers), n_bad, len(series), url)
    return IndexResult(url, headers, series, selection.decisions, secret, selection.studies)


def orientation_label(series: Series) -> str | None:
    """AXIAL / CORONAL / SAGITTAL when the normal is within 35 deg of an axis, else OBLIQUE."""
    g = series.geometry
    if g is None:
        return None
    a = np.abs(g.normal)
    axis = int(np.argmax(a))
    if a[axis] < np.cos(np.radians(35)):
        return "OBLIQUE"
    return ("SAGITTAL", "CORONAL", "AXIAL")[axis]


def age_years(age: str) -> float | None:
    """DICOM Age String ("065Y", "006M", "010W", "003D") in years."""
    if len(age) != 4 or not age[:3].isdigit():
        return None
    per_year = {"Y": 1.0, "M": 12.0, "W": 52.1775, "D": 365.25}.get(age[3].upper())
    return round(int(age[:3]) / per_year, 2) if per_year else None


def parse_date(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _none_if_nan(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _series_row(d: Decision) -> dict[str, Any]:
    s, h = d.series, d.series.first
    g = s.geometry
    return {
        "source": s.source,
        "series_key": s.series_key,
        "content_hash": s.content_hash,
        "study_key": s.study_key,
        "patient_key": s.patient_key,
        "modality": h.modality or None,
        "image_type": "\\".join(h.image_type) or None,
        "orientation": orientation_label(s),
        "slice_thickness_mm": _none_if_nan(slice_thickness(s)),
        "slice_spacing_mm": float(g.step_mm) if g is not None and s.n_slices > 1 else None,
        "pixel_spacing_mm": h.pixel_spacing[0] if h.pixel_spacing else None,
        "rows": h.rows,
        "columns": h.cols,
        "fov_diameter_mm": fov_diameter_mm(s),
        "fov_offset_mm": fov_center_offset_mm(s),
        "targeted": d.targeted if d.rank is not None else None,
        "n_files": s.n_files,
        "n_slices": s.n_slices,
        "missing_slices": sum(n for _, n in g.gaps) if g is not None else None,
        "duplicate_slices": g.duplicates if g is not None else None,
        "coverage_mm": g.coverage_mm if g is not None else None,
        "gantry_tilt_deg": g.tilt_deg if g is not None and s.n_slices > 1 else h.gantry_tilt,
        "kernel": h.kernel or None,
        "contrast": has_contrast(s),
        "manufacturer": h.manufacturer or None,
        "transfer_syntax": h.transfer_syntax or None,
        "series_description": h.series_description or None,
        "age_years": age_years(h.patient_age),
        "sex": h.patient_sex if h.patient_sex in {"M", "F", "O"} else None,
        "study_date": parse_date(h.study_date),
        "selected": d.selected,
        "rank": d.rank,
        "reason": d.reason.value if d.reason else None,
        "reason_detail": d.detail,
    }


def _file_row(h: FileHeader, secret: bytes | str) -> dict[str, Any]:
    return {
        "source": folder_of(h.location),
        "series_key": keyed_hash(secret, "file", h.location),
        "content_hash": content_hash([f"{h.location}|{h.size}|{h.etag}"]),
        "modality": h.modality or None,
        "n_files": 1,
        "n_slices": 0,
        "selected": False,
        "reason": h.reason.value if h.reason else None,
        "reason_detail": h.message,
    }


def write_series_index(
    table: pa.Table,
    dest: str,
    *,
    run_date: dt.date | None = None,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Write ``table`` as ``DEST/series_index/run_date=YYYY-MM-DD/part-<uuid>.parquet``.

    The file is written under a temporary name and renamed when complete, so readers never
    see a partial batch. Returns the final URL.
    """
    import pyarrow.parquet as pq

    fs, root = filesystem(dest, storage_options)
    day = (run_date or dt.date.today()).isoformat()
    folder = posixpath.join(root, "series_index", f"run_date={day}")
    fs.makedirs(folder, exist_ok=True)
    name = f"part-{uuid.uuid4().hex[:12]}.parquet"
    tmp = posixpath.join(folder, "_tmp-" + name)
    with fs.open(tmp, "wb") as fh:
        pq.write_table(table, fh)
    final = posixpath.join(folder, name)
    fs.mv(tmp, final)
    return location_of(fs, final)
