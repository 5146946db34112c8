"""Data-quality gates: a great-expectations suite per table, results as ``qc`` rows.

:func:`check_batch` validates the tables of one batch (in memory, before anything is published)
and returns the ``qc`` table and whether every suite passed; the caller publishes the batch only
then. The suites check keys (non-null, unique), allowed values, physical ranges (heights, HU,
grades), the scan failure rate against a threshold, and consistency across tables (each scan's
``n_vertebrae`` equals its rows in ``vertebrae``; every vertebra belongs to a scan of the batch).

great_expectations is imported inside the functions (it takes seconds to import).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from vertfrac_core.morphometry import KEYPOINT_NAMES
from vertfrac_core.tables import QC_SCHEMA, RESULT_KEY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityPolicy:
    """Thresholds of the suites."""

    max_failure_rate: float = 0.5  # share of scans with status failed in one batch
    max_height_mm: float = 80.0
    hu_range: tuple[float, float] = (-300.0, 1500.0)
    max_vertebrae: int = 30


def _scalar_frame(table: pa.Table) -> pd.DataFrame:
    keep = [f.name for f in table.schema if not pa.types.is_nested(f.type)]
    return table.select(keep).to_pandas()


def _scans_suite(gxe: Any, policy: QualityPolicy) -> list[Any]:
    return [
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in (*RESULT_KEY, "status", "run_id")),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=list(RESULT_KEY)),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "failed", "skipped"]),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "skipped"],
                                        mostly=round(1.0 - policy.max_failure_rate, 6)),
        gxe.ExpectColumnValuesToNotBeNull(column="error_code", row_condition='status!="ok"',
                                          condition_parser="pandas"),
        gxe.ExpectColumnValuesToBeBetween(column="max_grade", min_value=0, max_value=3),
        gxe.ExpectColumnValuesToBeBetween(column="n_vertebrae", min_value=0,
                                          max_value=policy.max_vertebrae),
        gxe.ExpectColumnValuesToBeBetween(column="l1_hu", min_value=policy.hu_range[0],
                                          max_value=policy.hu_range[1]),
        gxe.ExpectColumnValuesToBeInSet(column="density_flag", value_set=[
            "likely_osteoporosis", "indeterminate", "unlikely_osteoporosis", "unknown"]),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="n_vertebrae", column_B="vertebra_rows"),
    ]


def _vertebrae_suite(gxe: Any, policy: QualityPolicy) -> list[Any]:
    heights = [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0.0, max_value=policy.max_height_mm)
               for c in ("ha_mm", "hm_mm", "hp_mm")]
    return [
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in (*RESULT_KEY, "level", "grade")),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=[*RESULT_KEY, "level"]),
        gxe.ExpectColumnValuesToBeBetween(column="grade", min_value=0, max_value=3),
        gxe.ExpectColumnValuesToBeInSet(column="type", value_set=["normal", "wedge", "biconcave", "crush"]),
        *heights,
        gxe.ExpectColumnValuesToBeBetween(column="height_loss", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnValuesToBeBetween(column="level_confidence", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnValuesToBeBetween(column="trabecular_hu", min_value=policy.hu_range[0],
                                          max_value=policy.hu_range[1]),
        gxe.ExpectColumnValuesToNotBeNull(column=f"{KEYPOINT_NAMES[0]}_x"),
        gxe.ExpectColumnValuesToBeInSet(column="in_scans", value_set=[True]),
    ]


def _series_index_suite(gxe: Any, policy: QualityPolicy) -> list[Any]:
    return [
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("series_key", "content_hash", "source", "selected")),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["series_key", "content_hash"]),
        gxe.ExpectColumnValuesToBeBetween(column="slice_thickness_mm", min_value=0.0, max_value=50.0),
        gxe.ExpectColumnValuesToBeBetween(column="age_years", min_value=0.0, max_value=130.0),
        gxe.ExpectColumnValuesToBeInSet(column="sex", value_set=["M", "F", "O"]),
        gxe.ExpectColumnValuesToBeNull(column="reason", row_condition="selected==True",
                                       condition_parser="pandas"),
    ]


def _frames(tables: dict[str, pa.Table]) -> dict[str, pd.DataFrame]:
    """Scalar columns per table, plus the derived columns of the cross-table checks."""
    frames = {name: _scalar_frame(t) for name, t in tables.items()}
    if "scans" in frames:
        scans = frames["scans"]
        verts = frames.get("vertebrae")
        if verts is not None and len(verts):
            counts = verts.groupby(list(RESULT_KEY)).size()
            idx = pd.MultiIndex.from_frame(scans[list(RESULT_KEY)])
            scans["vertebra_rows"] = counts.reindex(idx).fillna(0).astype("int64").to_numpy()
            keys = set(idx)
            verts["in_scans"] = [k in keys for k in zip(*(verts[c] for c in RESULT_KEY), strict=True)]
        else:
            scans["vertebra_rows"] = 0
            if verts is not None:
                verts["in_scans"] = pd.Series([], dtype=bool)
    return frames


SUITES = {"scans": _scans_suite, "vertebrae": _vertebrae_suite, "series_index": _series_index_suite}


def check_batch(tables: dict[str, pa.Table], *, batch_id: str, run_id: str,
                policy: QualityPolicy = QualityPolicy()) -> tuple[pa.Table, bool]:
    """Validate every table of a batch that has a suite; returns (qc table, all passed)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("vertfrac")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rows: list[dict[str, Any]] = []
    passed = True
    for name, frame in _frames(tables).items():
        if name not in SUITES:
            continue
        suite = gx.ExpectationSuite(name=f"{name}_suite")
        for exp in SUITES[name](gxe, policy):
            suite.add_expectation(exp)
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("batch")
        result = batch.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
        passed &= bool(result.success)
        for r in result.results:
            cfg, res = r.expectation_config, r.result or {}
            kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
            observed = res.get("observed_value")
            if observed is None and r.exception_info and r.exception_info.get("raised_exception"):
                observed = f"error: {r.exception_info.get('exception_message')}"
            rows.append({
                "batch_id": batch_id, "run_id": run_id, "table": name, "expectation": cfg.type,
                "column": kwargs.get("column") or ",".join(kwargs.get("column_list", [])) or
                          ",".join(filter(None, (kwargs.get("column_A"), kwargs.get("column_B")))) or None,
                "kwargs": json.dumps(kwargs, default=str, sort_keys=True),
                "success": bool(r.success),
                "observed_value": None if observed is None else json.dumps(observed, default=str),
                "unexpected_count": res.get("unexpected_count"),
                "element_count": res.get("element_count"),
                "published": False, "checked_at": now,
            })
        if not result.success:
            failed = [r.expectation_config.type for r in result.results if not r.success]
            log.warning("quality gate: %s of batch %s fails %s", name, batch_id, failed)
    for row in rows:
        row["published"] = passed
    return pa.Table.from_pylist(rows, schema=QC_SCHEMA), passed


@dataclass(frozen=True)
class GateOutcome:
    """What :func:`gate_and_publish` did with a batch."""

    passed: bool
    failed: tuple[str, ...]  # "table.expectation(column)" of each failed check
    rows: dict[str, int]


def gate_and_publish(store: Any, tables: dict[str, pa.Table], *, batch_id: str, run_id: str,
                     run_date: dt.date, policy: QualityPolicy = QualityPolicy()) -> GateOutcome:
    """Check a batch, stage it and publish it (``batches.stage`` then ``batches.publish``).

    A failing suite publishes only the batch's ``qc`` rows and parks the data under
    ``_rejected/`` (``batches.REJECTED``), so nothing that failed a gate becomes visible."""
    from vertfrac_core import batches

    qc, passed = check_batch(tables, batch_id=batch_id, run_id=run_id, policy=policy)
    failed: tuple[str, ...] = ()
    if passed:
        staged = batches.stage(store, batch_id, run_date, {**tables, "qc": qc})
    else:
        batches.stage(store, batch_id, run_date, tables, folder=batches.REJECTED)
        staged = batches.stage(store, batch_id, run_date, {"qc": qc})
        failed = tuple(sorted({f"{r['table']}.{r['expectation']}({r['column']})"
                               for r in qc.to_pylist() if not r["success"]}))
    batches.publish(store, staged)
    return GateOutcome(passed, failed, {k: t.num_rows for k, t in tables.items()})
