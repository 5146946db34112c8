"""The Dask cluster a run uses: a ``LocalCluster`` by default, or a running scheduler."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


@contextmanager
def dask_client(scheduler: str | None = None, *, workers: int = 2, threads_per_worker: int = 1,
                gpu: bool = False) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler`` (``tcp://host:8786``) when given, else
    to a new ``LocalCluster`` of ``workers`` processes (each advertising ``GPU=1`` when ``gpu``),
    closed on exit. Workers are processes so that models and decoders run in parallel."""
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler, timeout="60s")
        log.info("connected to Dask scheduler %s (%d workers)", scheduler,
                 len(client.scheduler_info().get("workers", {})))
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker,
                           processes=True, dashboard_address=":0",
                           resources={"GPU": 1} if gpu else None,
                           silence_logs=logging.WARNING)
    client = Client(cluster)
    log.info("started a LocalCluster of %d workers (dashboard %s)", workers, client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
