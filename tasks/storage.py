"""Prefect tasks that move table batches to storage: repair, stage + check + publish."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from vertfrac_core import batches
from vertfrac_core.batches import TableStore
from vertfrac_core.quality import QualityPolicy, gate_and_publish
from vertfrac_core.tables import RESULT_KEY

RETRY_DELAYS_S: list[float] = [2.0, 5.0, 15.0]  # transient storage errors: three retries with backoff


@task(name="repair-tables", retries=3, retry_delay_seconds=RETRY_DELAYS_S, cache_policy=NO_CACHE)
def repair_tables(store: TableStore) -> batches.RepairReport:
    """Roll forward or back whatever a crashed run left in staging."""
    report = batches.repair(store)
    if report:
        get_run_logger().warning("repaired: rolled forward %s, rolled back %s",
                                 list(report.rolled_forward), list(report.rolled_back))
    return report


@task(name="published-keys", retries=3, retry_delay_seconds=RETRY_DELAYS_S, cache_policy=NO_CACHE)
def published_keys(store: TableStore, table: str, key: tuple[str, ...] = RESULT_KEY) -> set[tuple]:
    return batches.done_keys(store, table, key)


@task(name="write-batch", retries=3, retry_delay_seconds=RETRY_DELAYS_S, cache_policy=NO_CACHE)
def write_batch(store: TableStore, tables: dict[str, pa.Table], *, batch_id: str, run_id: str,
                run_date: dt.date, policy: QualityPolicy) -> bool:
    """Check the batch, stage it and publish it; a failing suite publishes only its ``qc`` rows
    and parks the data under ``_rejected/``. Returns whether the data was published."""
    logger = get_run_logger()
    out = gate_and_publish(store, tables, batch_id=batch_id, run_id=run_id, run_date=run_date,
                           policy=policy)
    if not out.passed:
        logger.error("batch %s blocked by the quality gate: %s; data kept under %s/%s",
                     batch_id, list(out.failed), batches.REJECTED, batch_id)
    logger.info("batch %s %s: %s", batch_id, "published" if out.passed else "rejected", out.rows)
    return out.passed
