"""Inference on Dask: one Dask task per study, results handed back in batches as they finish.

Per-study progress lives in the Dask dashboard and, once written, in the ``scans`` table; the
Prefect run shows one task run per batch write (thousands of per-scan Prefect task runs a night
would each need the Prefect API from every Dask worker and would flood its database).

Models load once per worker process (``vertfrac_core.screening.loaded`` caches them); GPU
workers advertise the Dask resource ``GPU=1`` and, with ``gpu=True``, each scan asks for it, so
a worker runs one scan on its GPU at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from vertfrac_core.result import ScanResult, ScanStatus
from vertfrac_core.screening import (
    AnalyzerSpec,
    ScreenSettings,
    WorkItem,
    screen_study,
    unavailable_reason,
)
from vertfrac_core.storage import is_transient
from vertfrac_core.tables import ScanOutcome

log = logging.getLogger(__name__)


def _resources(gpu: bool) -> dict[str, float] | None:
    return {"GPU": 1} if gpu else None


def _probe(spec: AnalyzerSpec) -> tuple[str | None, str | None]:
    """On a worker: (model version, None) once the models are loaded (and cached there), or
    (None, why the analyser is unavailable)."""
    from vertfrac_core.screening import model_version

    reason = unavailable_reason(spec)
    if reason is not None:
        return None, reason
    try:
        return model_version(spec), None
    except Exception as err:  # noqa: BLE001 - e.g. weights not trained/installed yet
        return None, f"{spec.load_models} failed on a worker ({type(err).__name__}: {err})"


def start_model_probe(client: Any, spec: AnalyzerSpec, *, gpu: bool = False) -> Any:
    """A future of :func:`_probe`: the models start loading on a worker (seconds: torch import,
    weights) while the flow lists and indexes the archive."""
    return client.submit(_probe, spec, pure=False, resources=_resources(gpu))


def _lost(item: WorkItem, version: str, err: BaseException) -> ScanOutcome:
    """The outcome of a Dask task that did not return (worker died repeatedly, or a bug)."""
    from distributed import KilledWorker

    transient = is_transient(err)
    code = ("worker_killed" if isinstance(err, KilledWorker)
            else "storage_unavailable" if transient else "task_error")
    sel = item.selected
    result = ScanResult(source=sel.source, status=ScanStatus.FAILED, model_version=version,
                        error_code=code, error=f"{type(err).__name__}: {err}")
    return ScanOutcome(result=result, series_key=sel.series_key, content_hash=sel.content_hash,
                       model_version=version, study_key=item.study_key,
                       patient_key=sel.patient_key, candidates_tried=0, transient=transient)


def screen_on_dask(client: Any, items: list[WorkItem], spec: AnalyzerSpec, version: str, *,
                   settings: ScreenSettings = ScreenSettings(),
                   storage_options: dict[str, Any] | None = None, gpu: bool = False,
                   batch_size: int = 200, progress: bool = False,
                   all_done: Callable[[], None] | None = None) -> Iterator[list[ScanOutcome]]:
    """Submit one task per item now; the returned iterator yields outcomes in lists of up to
    ``batch_size`` as they finish (the caller can do other work while the workers compute).
    ``all_done`` is called once every outcome is in, before the last list is yielded (the
    cluster can close while that list is written).

    Every item yields exactly one outcome, whatever happens to the workers."""
    if not items:
        return iter(())
    keys = [f"screen-{it.study_key[:16]}-{it.selected.content_hash[:8]}" for it in items]
    futures = client.map(screen_study, items, key=keys, spec=spec, settings=settings,
                         storage_options=storage_options, pure=False, resources=_resources(gpu))
    return _collect(client, futures, items, version, batch_size, progress, all_done)


def _collect(client: Any, futures: list[Any], items: list[WorkItem], version: str, batch_size: int,
             progress: bool, all_done: Callable[[], None] | None = None) -> Iterator[list[ScanOutcome]]:
    from distributed import as_completed

    by_key = {f.key: it for f, it in zip(futures, items, strict=True)}
    bar = _progress_bar(len(items)) if progress else None
    done, pending_batch = 0, []
    try:
        for fut in as_completed(futures):
            item = by_key[fut.key]
            try:
                outcome = fut.result()
            except Exception as err:  # noqa: BLE001 - a lost task is a row, not a crash
                log.warning("study %s: task %s did not finish: %r", item.study_key[:8], fut.key, err)
                outcome = _lost(item, version, err)
            fut.release()
            pending_batch.append(outcome)
            done += 1
            if bar is not None:
                bar[0].update(bar[1], advance=1, description=f"screening ({outcome.result.status.value})")
            if done % max(1, len(items) // 10) == 0 or done == len(items):
                log.info("screened %d/%d studies", done, len(items))
            if done == len(items):
                if bar is not None:
                    bar[0].stop()
                    bar = None
                if all_done is not None:
                    all_done()
            if len(pending_batch) >= batch_size:
                yield pending_batch
                pending_batch = []
        if pending_batch:
            yield pending_batch
    finally:
        if bar is not None:
            bar[0].stop()
        unfinished = [f for f in futures if not f.done()]
        if unfinished:  # a caller that stopped early; after all_done the client may be closing
            client.cancel(unfinished)


def _progress_bar(total: int) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                 TimeElapsedColumn(), transient=False)
    p.start()
    return p, p.add_task("screening", total=total)
