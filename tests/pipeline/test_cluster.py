"""The LocalCluster a run starts: workers compute like a plain process would."""

from __future__ import annotations

import os

import pytest

from tasks.cluster import THREAD_VARIABLES, close_early, dask_client, worker_threads

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _worker_state(dask_worker) -> dict:  # noqa: ANN001
    import dask
    import torch

    return {"env": {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", *THREAD_VARIABLES)},
            "profile": dask.config.get("distributed.worker.profile.enabled"),
            "callbacks": sorted(dask_worker.periodic_callbacks),
            "torch_threads": torch.get_num_threads()}


def test_worker_threads_share_the_cores() -> None:
    from dask.system import cpu_count

    cores = min(len(os.sched_getaffinity(0)), cpu_count())
    assert worker_threads(1) == cores
    assert worker_threads(cores) == 1 and worker_threads(4 * cores) == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_local_workers_have_no_trim_threshold_no_profiler_and_their_share_of_threads(workers: int) -> None:
    with dask_client(workers=workers) as client:
        states = list(client.run(_worker_state).values())
    assert len(states) == workers
    for st in states:
        assert st["env"]["MALLOC_TRIM_THRESHOLD_"] is None  # glibc keeps its dynamic mmap threshold
        assert all(st["env"][v] == str(worker_threads(workers)) for v in THREAD_VARIABLES)
        assert st["torch_threads"] == worker_threads(workers)
        assert st["profile"] is False and "profile" not in st["callbacks"]


def test_this_process_keeps_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # exported by the user: wins, and is kept
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # not passed on to the workers
    with dask_client(workers=1) as client:
        (st,) = client.run(_worker_state).values()
    assert st["env"]["MKL_NUM_THREADS"] == "3" and st["env"]["MALLOC_TRIM_THRESHOLD_"] is None
    assert os.environ.get("OMP_NUM_THREADS") is None and os.environ["MKL_NUM_THREADS"] == "3"
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"


def test_close_early_shuts_the_cluster_down_while_the_run_goes_on() -> None:
    import time

    with dask_client(workers=1) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        cluster = client.cluster
        close_early(client)
        close_early(client)  # a second call starts nothing new
        deadline = time.monotonic() + 30
        while cluster.status.name != "closed" and time.monotonic() < deadline:
            time.sleep(0.05)
        # closed in the background, before the block ends
        assert cluster.status.name == "closed" and client.status == "closed"
    assert client.status == "closed"
    close_early(client)  # unknown (finished) client: nothing happens
