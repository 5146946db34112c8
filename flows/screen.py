"""The nightly screening flow: repair, discover, index, select, infer on Dask, check, publish.

Only wiring: the logic lives in ``vertfrac_core`` (``screening``, ``worklist``, ``batches``,
``quality``) and the thin tasks in ``tasks/``. Parameters are plain JSON values so the flow can
be deployed (``infra/prefect.yaml``); secrets (S3 credentials, the HMAC key) come from the
environment of the process that runs it, never from flow parameters.

Re-running is safe at any point: results are keyed by ``(series_key, content_hash,
model_version)``, so a rerun screens only new or changed series (all of them for a new model
version) and a crash leaves, after the next run's repair, exactly one row per series. A rerun
also reads only the headers it needs: the object manifest (``vertfrac_core.manifest``) says which
objects are unchanged and which series each held, so a finished, unchanged study costs no read.

Retries: each storage task is retried by Prefect after ``retry_delays_s`` (one retry per delay);
inside a task, a storage call is retried ``storage_attempts`` times from ``storage_retry_s``
doubling (``vertfrac_core.storage.retry_transient``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from prefect import flow, get_run_logger
from prefect.utilities.annotations import quote

from tasks.discover import discover, record_manifest
from tasks.index import StorageUnavailableError, count_selected, index_archive, new_series_rows
from tasks.storage import RETRY_DELAYS_S, published_keys, repair_tables, write_batch
from vertfrac_core.batches import TableStore, new_batch_id
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.limits import ScanLimits
from vertfrac_core.manifest import totals, updated_manifest
from vertfrac_core.privacy import Secret, pseudonym_key, redact_secrets_in_logs
from vertfrac_core.quality import QualityPolicy
from vertfrac_core.screening import (
    DEFAULT_ANALYZE,
    DEFAULT_LOAD_MODELS,
    NO_MODEL,
    AnalyzerSpec,
    ScreenSettings,
    skipped_outcome,
)
from vertfrac_core.storage import StorageRetry, StorageSettings
from vertfrac_core.tables import ScanOutcome, outcome_tables
from vertfrac_core.worklist import likely_version, pending, work_items


@dataclass
class RunSummary:
    """What one run did (returned by the flow, printed by the CLI)."""

    run_id: str
    dest: str
    source_objects: int = 0
    objects_changed: int = 0  # new or changed since the last run
    objects_read: int = 0  # whose headers this run read
    series: int = 0
    studies: int = 0
    already_done: int = 0
    screened: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    batches_published: int = 0
    batches_rejected: int = 0
    model_version: str = ""
    repaired: list[str] = field(default_factory=list)
    analyzer_note: str | None = None

    def describe(self) -> str:
        status = ", ".join(f"{k} {v}" for k, v in sorted(self.status_counts.items())) or "none"
        lines = [
            f"run {self.run_id}: {self.source_objects} objects ({self.objects_changed} new or "
            f"changed, {self.objects_read} headers read), {self.series} series, {self.studies} "
            f"studies with a usable series",
            f"screened {self.screened} (status: {status}); {self.already_done} already done "
            f"for model {self.model_version}; {self.deferred} deferred by storage errors",
            f"batches published {self.batches_published}, blocked by quality gates "
            f"{self.batches_rejected}; tables under {self.dest}",
        ]
        if self.repaired:
            lines.append(f"repaired batches left by an earlier crash: {', '.join(self.repaired)}")
        if self.analyzer_note:
            lines.append(f"NOTE: {self.analyzer_note}")
        return "\n".join(lines)


def _secret(demo: bool) -> Secret:
    """The pseudonym key from the environment; outside demo mode none means no run."""
    secret = pseudonym_key(demo=demo)
    if secret.encode() == DEMO_SECRET:
        get_run_logger().warning("demo mode: keys use the public demo key, not a secret")
    return secret


def _run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or uuid.uuid4())


@flow(name="vertfrac-screen", log_prints=False)
def screen_flow(
    source: str,
    dest: str,
    scheduler: str | None = None,
    workers: int = 2,
    endpoint_url: str | None = None,
    analyze: str = DEFAULT_ANALYZE,
    load_models: str = DEFAULT_LOAD_MODELS,
    device: str = "cpu",
    analyzer_options: dict | None = None,
    gpu: bool = False,
    batch_size: int = 200,
    max_failure_rate: float = 0.5,
    max_fallbacks: int = 2,
    run_date: dt.date | None = None,
    progress: bool = False,
    retry_delays_s: list[float] | None = None,
    storage_attempts: int = 4,
    storage_retry_s: float = 0.5,
    max_volume_mb: float | None = 4096,
    scan_timeout_s: float | None = 1800,
    demo: bool = False,
) -> RunSummary:
    """Screen every new or changed study under ``source`` into the tables under ``dest``.

    ``scheduler``: a running Dask scheduler (``tcp://host:8786``), else a LocalCluster of
    ``workers`` processes. ``endpoint_url``: S3 endpoint for both URLs (credentials from
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``). ``analyze``/``load_models``: the analyser
    as ``module:function`` paths, loaded once per worker. ``gpu``: each scan asks for the Dask
    resource ``GPU=1``. ``retry_delays_s`` (default 2, 5, 15 s), ``storage_attempts`` and
    ``storage_retry_s``: how storage errors are retried (module docstring).
    ``max_volume_mb``, ``scan_timeout_s``: per-scan limits in the workers (``limits.py``).
    ``demo``: allow the public demo key when ``VERTFRAC_PSEUDONYM_KEY`` is not set; otherwise
    the run refuses to start without a key (``privacy.py``).
    """
    from tasks.cluster import close_early, dask_client, redact_secrets_on_workers
    from tasks.infer import screen_on_dask, start_model_probe

    logger = get_run_logger()
    secret = _secret(demo)
    storage = StorageSettings.from_env(endpoint_url=endpoint_url)
    redact_secrets_in_logs(secret, storage.key, storage.secret)
    store = TableStore(dest, storage.options(dest), StorageRetry(storage_attempts, storage_retry_s))
    src_opts = storage.options(source)
    day = run_date or dt.date.today()
    summary = RunSummary(run_id=_run_id(), dest=dest)
    policy = QualityPolicy(max_failure_rate=max_failure_rate)
    spec = AnalyzerSpec(analyze=analyze, load_models=load_models, device=device,
                        options=tuple(sorted((analyzer_options or {}).items())))

    delays = list(RETRY_DELAYS_S if retry_delays_s is None else retry_delays_s)
    repair_t, discover_t, keys_t, index_t, write_t, manifest_t = (
        t.with_options(retries=len(delays), retry_delay_seconds=delays or 0)
        for t in (repair_tables, discover, published_keys, index_archive, write_batch, record_manifest))
    settings = ScreenSettings(max_fallbacks=max_fallbacks, storage_attempts=storage_attempts,
                              storage_base_delay_s=storage_retry_s, images=store,
                              limits=ScanLimits.from_mb(max_volume_mb, scan_timeout_s))
    def write(outcomes: list[ScanOutcome]) -> None:
        kept = [o for o in outcomes if not o.transient]
        summary.deferred += len(outcomes) - len(kept)
        for o in kept:
            s = o.result.status.value
            summary.status_counts[s] = summary.status_counts.get(s, 0) + 1
        summary.screened += len(kept)
        if not kept:
            return
        batch_id = new_batch_id(day)
        tables = outcome_tables(kept, run_id=summary.run_id, batch_id=batch_id,
                                redact=redactor.text)
        ok = write_t(store, quote(tables), batch_id=batch_id, run_id=summary.run_id, run_date=day,
                     policy=policy)
        summary.batches_published += ok
        summary.batches_rejected += not ok

    with dask_client(scheduler, workers=workers, gpu=gpu) as client:
        redact_secrets_on_workers(client, secret, storage.key, storage.secret)
        probe = start_model_probe(client, spec, gpu=gpu)  # models load on a worker meanwhile
        summary.repaired = list(repair_t(store).rolled_forward)
        plan = discover_t(source, src_opts, store, secret)
        summary.source_objects = plan.counts["objects"]
        summary.objects_changed = plan.counts["added"] + plan.counts["changed"]
        done = keys_t(store, "scans")
        # unchanged studies are read again only when their result for this model is missing;
        # the index starts while the models still load (seconds on a fresh worker), on the
        # likely version, and is redone for the studies a different version adds
        # quote(): big inputs are not walked by Prefect's dependency tracking (seconds per call)
        guess = (probe.result()[0] or NO_MODEL) if probe.done() else likely_version(done)
        wanted = plan.unfinished(done, guess)
        index = index_t(quote(plan), src_opts, quote(wanted))
        version, why_not = probe.result()
        summary.model_version = version or NO_MODEL
        needed = plan.unfinished(done, summary.model_version)
        if not needed <= wanted:  # the guess was wrong: read what the real version misses too
            index = index_t(quote(plan), src_opts, quote(wanted | needed))
        summary.objects_read = len({h.location for h in index.headers})
        redactor = index.redactor()  # names, IDs and UIDs out of the text columns
        published = keys_t(store, "series_index", ("series_key", "content_hash"))
        new_rows = new_series_rows(quote(index), quote(published))
        items = work_items(index)
        todo = pending(items, done, summary.model_version)
        # scans are submitted now: the workers compute while this process writes the index
        batches = (screen_on_dask(client, todo, spec, version, settings=settings,
                                  storage_options=src_opts, gpu=gpu, batch_size=batch_size,
                                  progress=progress, all_done=lambda: close_early(client))
                   if version is not None else iter(()))
        index_ok = True
        if len(new_rows):
            index_ok = write_t(store, quote({"series_index": new_rows}), batch_id=new_batch_id(day),
                               run_id=summary.run_id, run_date=day, policy=policy)
            summary.batches_published += index_ok
            summary.batches_rejected += not index_ok
        manifest = updated_manifest(plan, index)
        changed = plan.dirty or plan.counts["removed"] or index.headers
        if index_ok and changed:  # if not ok, the next run reads these objects again
            manifest_t(store, quote(manifest))
        summary.series, summary.studies = totals(manifest)
        summary.already_done = summary.studies - len(todo)
        logger.info("%d studies with a usable series, %d read this run (%d selected rows new); "
                    "model %s: %d to screen, %d already done", summary.studies, len(items),
                    count_selected(new_rows), summary.model_version, len(todo), summary.already_done)
        if version is None:
            summary.analyzer_note = f"no analyser installed, studies recorded as skipped: {why_not}"
            logger.warning(summary.analyzer_note)
            if todo:
                write([skipped_outcome(it, "analyzer_unavailable", why_not or "") for it in todo])
        else:
            for outcomes in batches:
                write(outcomes)
    logger.info(summary.describe())
    if summary.deferred:
        raise StorageUnavailableError(
            f"{summary.deferred} studies could not be read from storage and were left for the "
            f"next run (nothing was recorded for them); {summary.screened} were written")
    return summary

