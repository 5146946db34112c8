"""The screening tables: their one Arrow schema each and the rows one scan contributes.

``series_index`` is defined with the index (``dicom/schema.py``) and re-exported here; ``scans``,
``vertebrae`` and ``qc`` are defined below. ``docs/tables.md`` documents every column. All
coordinates are patient LPS millimetres; keys are keyed hashes (``dicom/keys.py``); a result row
is identified by ``(series_key, content_hash, model_version)``.

Keypoints are flat columns ``<name>_x/_y/_z`` in the order of
:data:`~vertfrac_core.morphometry.KEYPOINT_NAMES`, like the phantom ground truth, so dashboards
and SQL need no list handling.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from vertfrac_core.dicom.schema import SERIES_INDEX_SCHEMA
from vertfrac_core.morphometry import KEYPOINT_NAMES
from vertfrac_core.result import ScanResult, ScanStatus

#: the columns that identify a result (and make reruns idempotent)
RESULT_KEY = ("series_key", "content_hash", "model_version")

SCANS_SCHEMA = pa.schema([
    pa.field("series_key", pa.string(), nullable=False),  # the series selected for the study
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("model_version", pa.string(), nullable=False),
    pa.field("study_key", pa.string()),
    pa.field("patient_key", pa.string()),
    pa.field("analyzed_series_key", pa.string()),  # differs after a no-spine fallback
    pa.field("candidates_tried", pa.int32(), nullable=False),
    pa.field("source", pa.string()),  # folder of the analysed series
    pa.field("status", pa.string(), nullable=False),  # ok / failed / skipped
    pa.field("failed_stage", pa.string()),
    pa.field("error_code", pa.string()),
    pa.field("error", pa.string()),
    pa.field("n_vertebrae", pa.int32(), nullable=False),
    pa.field("levels", pa.list_(pa.string())),  # cranial to caudal as reported
    pa.field("max_grade", pa.int8()),
    pa.field("fractured", pa.bool_()),  # max_grade >= 1; null when not analysed
    pa.field("l1_hu", pa.float32()),
    pa.field("l1_hu_level", pa.string()),
    pa.field("density_flag", pa.string()),
    pa.field("contrast", pa.string()),
    pa.field("image_path", pa.string()),
    pa.field("timings_s", pa.map_(pa.string(), pa.float32())),  # per stage, plus "total"
    pa.field("worker", pa.string()),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("batch_id", pa.string(), nullable=False),
    pa.field("processed_at", pa.timestamp("s", tz="UTC"), nullable=False),
])
"""One row per screened study (its selected series)."""

_KEYPOINT_FIELDS = [pa.field(f"{n}_{a}", pa.float32()) for n in KEYPOINT_NAMES for a in "xyz"]

VERTEBRAE_SCHEMA = pa.schema([
    pa.field("series_key", pa.string(), nullable=False),
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("model_version", pa.string(), nullable=False),
    pa.field("study_key", pa.string()),
    pa.field("level", pa.string(), nullable=False),
    pa.field("level_confidence", pa.float32()),
    pa.field("score", pa.float32()),
    pa.field("center_x", pa.float32()),
    pa.field("center_y", pa.float32()),
    pa.field("center_z", pa.float32()),
    *_KEYPOINT_FIELDS,
    pa.field("ha_mm", pa.float32()),
    pa.field("hm_mm", pa.float32()),
    pa.field("hp_mm", pa.float32()),
    pa.field("wedge_ratio", pa.float32()),
    pa.field("biconcave_ratio", pa.float32()),
    pa.field("crush_ratio", pa.float32()),
    pa.field("height_loss", pa.float32()),
    pa.field("grade", pa.int8(), nullable=False),
    pa.field("type", pa.string(), nullable=False),
    pa.field("trabecular_hu", pa.float32()),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("batch_id", pa.string(), nullable=False),
])
"""One row per vertebra found in a scan with status ok."""

QC_SCHEMA = pa.schema([
    pa.field("batch_id", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("table", pa.string(), nullable=False),
    pa.field("expectation", pa.string(), nullable=False),
    pa.field("column", pa.string()),
    pa.field("kwargs", pa.string()),  # JSON of the expectation's arguments
    pa.field("success", pa.bool_(), nullable=False),
    pa.field("observed_value", pa.string()),
    pa.field("unexpected_count", pa.int64()),
    pa.field("element_count", pa.int64()),
    pa.field("published", pa.bool_(), nullable=False),  # false: the batch was blocked
    pa.field("checked_at", pa.timestamp("s", tz="UTC"), nullable=False),
])
"""One row per expectation per table per batch."""

SCHEMAS: dict[str, pa.Schema] = {
    "series_index": SERIES_INDEX_SCHEMA,
    "scans": SCANS_SCHEMA,
    "vertebrae": VERTEBRAE_SCHEMA,
    "qc": QC_SCHEMA,
}



@dataclass(frozen=True)
class ScanOutcome:
    """What screening one study produced: the analyser's result and the keys it is filed under.

    ``series_key``/``content_hash`` are those of the study's selected series (the key a rerun
    looks up); ``analyzed_series_key`` is the series actually analysed (another candidate after a
    no-spine fallback). ``transient`` marks a failure of the storage, not of the data: such an
    outcome is not written, so the next run retries it.
    """

    result: ScanResult
    series_key: str
    content_hash: str
    model_version: str
    study_key: str | None = None
    patient_key: str | None = None
    analyzed_series_key: str | None = None
    candidates_tried: int = 1
    worker: str | None = None
    transient: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.series_key, self.content_hash, self.model_version)


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def scan_row(o: ScanOutcome, *, run_id: str, batch_id: str, processed_at: dt.datetime) -> dict[str, Any]:
    """The ``scans`` row of one outcome (``SCANS_SCHEMA`` columns)."""
    r = o.result
    ok = r.status == ScanStatus.OK
    timings = {k: float(v) for k, v in r.timings_s.items()}
    return {
        "series_key": o.series_key, "content_hash": o.content_hash,
        "model_version": o.model_version, "study_key": o.study_key,
        "patient_key": o.patient_key, "analyzed_series_key": o.analyzed_series_key or o.series_key,
        "candidates_tried": o.candidates_tried, "source": r.source, "status": r.status.value,
        "failed_stage": r.failed_stage.value if r.failed_stage else None,
        "error_code": r.error_code, "error": r.error,
        "n_vertebrae": len(r.vertebrae), "levels": [v.level for v in r.vertebrae],
        "max_grade": r.max_grade if ok else None,
        "fractured": (r.max_grade or 0) >= 1 if ok else None,
        "l1_hu": _f(r.l1_hu), "l1_hu_level": r.l1_hu_level,
        "density_flag": r.density_flag.value if ok else None, "contrast": r.contrast,
        "image_path": r.images.get("sagittal"), "timings_s": list(timings.items()),
        "worker": o.worker, "run_id": run_id, "batch_id": batch_id, "processed_at": processed_at,
    }


def vertebra_rows(o: ScanOutcome, *, run_id: str, batch_id: str) -> list[dict[str, Any]]:
    """The ``vertebrae`` rows of one outcome (none unless its status is ok)."""
    if o.result.status != ScanStatus.OK:
        return []
    rows = []
    for v in o.result.vertebrae:
        row: dict[str, Any] = {
            "series_key": o.series_key, "content_hash": o.content_hash,
            "model_version": o.model_version, "study_key": o.study_key, "level": v.level,
            "level_confidence": _f(v.level_confidence), "score": _f(v.score),
            "center_x": _f(v.center_lps[0]), "center_y": _f(v.center_lps[1]),
            "center_z": _f(v.center_lps[2]),
        }
        for name, p in zip(KEYPOINT_NAMES, v.keypoints_lps, strict=True):
            row[f"{name}_x"], row[f"{name}_y"], row[f"{name}_z"] = (_f(c) for c in p)
        row.update({
            "ha_mm": _f(v.ha_mm), "hm_mm": _f(v.hm_mm), "hp_mm": _f(v.hp_mm),
            "wedge_ratio": _f(v.wedge_ratio), "biconcave_ratio": _f(v.biconcave_ratio),
            "crush_ratio": _f(v.crush_ratio), "height_loss": _f(v.height_loss),
            "grade": int(v.grade), "type": v.type, "trabecular_hu": _f(v.trabecular_hu),
            "run_id": run_id, "batch_id": batch_id,
        })
        rows.append(row)
    return rows


def outcome_tables(outcomes: list[ScanOutcome], *, run_id: str, batch_id: str,
                   processed_at: dt.datetime | None = None,
                   redact: Callable[[str | None], str | None] | None = None) -> dict[str, pa.Table]:
    """``scans`` and ``vertebrae`` tables of a batch of outcomes (transient ones left out).

    ``redact`` (e.g. ``IndexResult.redactor().text``) is applied to the text columns that may
    name archive files or carry header text: ``source`` and ``error``."""
    now = processed_at or dt.datetime.now(dt.UTC).replace(microsecond=0)
    kept = [o for o in outcomes if not o.transient]
    scans = [scan_row(o, run_id=run_id, batch_id=batch_id, processed_at=now) for o in kept]
    if redact is not None:
        for row in scans:
            row["source"], row["error"] = redact(row["source"]), redact(row["error"])
    verts = [r for o in kept for r in vertebra_rows(o, run_id=run_id, batch_id=batch_id)]
    return {"scans": pa.Table.from_pylist(scans, schema=SCANS_SCHEMA),
            "vertebrae": pa.Table.from_pylist(verts, schema=VERTEBRAE_SCHEMA)}
