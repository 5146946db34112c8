"""The Dask cluster a run uses: a ``LocalCluster`` by default, or a running scheduler; and the
worker plugin that keeps secrets out of the workers' logs."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

log = logging.getLogger(__name__)

# Dask defaults that made the analyser slower in a worker than in a plain process: the
# nanny's MALLOC_TRIM_THRESHOLD_=65536 (an explicit glibc threshold turns off malloc's dynamic
# mmap threshold, so each large numpy array is mmapped and page-faulted anew; None removes a
# pre-spawn variable), the worker's statistical profiler (a callback sampling every thread's
# stack each 10 ms), and one numpy/torch thread per worker even when fewer workers than cores
# run (``worker_threads``). 6 phantom scans, per-scan sums: 26.3-27.6 s in a worker with the
# first two, 20.9-21.9 s without them, 21.3-22.9 s in a loop on one torch thread.
TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"
WORKER_CONFIG = {f"distributed.nanny.pre-spawn-environ.{TRIM_VARIABLE}": None,
                 "distributed.worker.profile.enabled": False}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


_EARLY_CLOSERS: dict[int, threading.Thread] = {}


def close_early(client: Any) -> None:
    """Start closing ``client`` (and the LocalCluster :func:`dask_client` made for it) in the
    background, for a run that needs no worker any more (its last results are in): the close
    (about 0.8 s for a LocalCluster) then overlaps the last batch's quality gates and writes.
    :func:`dask_client` waits for it on exit. Does nothing for another client."""
    closer = _EARLY_CLOSERS.get(id(client))
    if closer is not None and closer.ident is None:
        closer.start()


def _closing(client: Any, close: Callable[[], None]) -> Iterator[Any]:
    """Yield ``client``; on exit close it with ``close``, or wait for the early close."""
    closer = threading.Thread(target=close, name="vertfrac-dask-close", daemon=True)
    _EARLY_CLOSERS[id(client)] = closer
    try:
        yield client
    finally:
        _EARLY_CLOSERS.pop(id(client), None)
        if closer.ident is None:
            close()
        else:
            closer.join()


def worker_threads(workers: int) -> int:
    """numpy/torch threads for each of ``workers`` local worker processes: the cores this
    process may use (CPU affinity and cgroup quota, as Dask counts them), shared out (one worker
    on 2 cores computes like a plain script)."""
    from dask.system import CPU_COUNT

    return max(1, CPU_COUNT // max(1, workers))


def _local_config(workers: int) -> dict[str, Any]:
    threads = str(worker_threads(workers))
    return {**WORKER_CONFIG, **{f"distributed.nanny.pre-spawn-environ.{v}": threads
                                for v in THREAD_VARIABLES}}


@contextmanager
def dask_client(scheduler: str | None = None, *, workers: int = 2, threads_per_worker: int = 1,
                gpu: bool = False) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler`` (``tcp://host:8786``) when given, else
    to a new ``LocalCluster`` of ``workers`` processes (each advertising ``GPU=1`` when ``gpu``,
    each computing on ``worker_threads(workers)`` numpy/torch threads), closed on exit. Workers
    are processes so that models and decoders run in parallel."""
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler, timeout="60s")
        log.info("connected to Dask scheduler %s (%d workers)", scheduler,
                 len(client.scheduler_info().get("workers", {})))
        yield from _closing(client, client.close)
        return
    import dask

    # the nannies run in this process and write their variables into its environment (where
    # they would win over the configuration next time): a thread count the user exported is
    # kept, a trim threshold is not, and this process's environment is put back afterwards
    saved = {k: os.environ[k] for k in (TRIM_VARIABLE, *THREAD_VARIABLES) if k in os.environ}
    os.environ.pop(TRIM_VARIABLE, None)
    try:
        with dask.config.set(_local_config(workers)):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker,
                                   processes=True, dashboard_address=":0",
                                   resources={"GPU": 1} if gpu else None,
                                   silence_logs=logging.WARNING)
    finally:
        for k in (TRIM_VARIABLE, *THREAD_VARIABLES):
            os.environ.pop(k, None)
        os.environ.update(saved)
    client = Client(cluster)
    log.info("started a LocalCluster of %d workers (dashboard %s)", workers, client.dashboard_link)

    def close() -> None:
        client.close()
        cluster.close()

    yield from _closing(client, close)


class RedactSecrets(WorkerPlugin):
    """Dask worker plugin: ``privacy.redact_secrets_in_logs(secrets)`` in each worker process
    (present and future: a worker restarted by its nanny runs ``setup`` again)."""

    name = "vertfrac-redact-secrets"

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = secrets  # privacy.Secret values: masked in any printout

    def setup(self, worker: Any) -> None:
        from vertfrac_core.privacy import redact_secrets_in_logs

        redact_secrets_in_logs(*self.secrets)


def redact_secrets_on_workers(client: Any, *values: str | None) -> None:
    """Keep ``values`` out of every worker's logs too, so that worker-side libraries (botocore
    signing S3 requests at DEBUG) cannot print the credentials."""
    from vertfrac_core.privacy import Secret

    client.register_plugin(RedactSecrets(tuple(Secret(v) for v in values if v)))
