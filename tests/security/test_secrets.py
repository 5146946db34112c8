"""Secrets (the pseudonym key, S3 credentials) never reach logs, Prefect records or outputs, and
a run without a proper pseudonym key does not start (``vertfrac_core/privacy.py``).

The successful run of test_leaks.py is also searched for these secrets; here, a run that talks
to an S3 endpoint with credentials (and fails: nothing listens there) is searched with
botocore's DEBUG logs switched on, which print the signed request headers."""

from __future__ import annotations

import logging
import pickle
import socket
from pathlib import Path

import pytest
from leaks import find_leaks, prefect_texts
from typer.testing import CliRunner

from tests.security.conftest import SECRETS
from vertfrac_core.batches import TableStore
from vertfrac_core.cli import app
from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.errors import ConfigError
from vertfrac_core.privacy import Secret, pseudonym_key, redact_secrets_in_logs
from vertfrac_core.redact import Redactor
from vertfrac_core.storage import StorageSettings

KEY = SECRETS["VERTFRAC_PSEUDONYM_KEY"]


def test_the_pseudonym_key_is_required_long_and_not_public_outside_demo() -> None:
    with pytest.raises(ConfigError, match="VERTFRAC_PSEUDONYM_KEY is not set"):
        pseudonym_key({})
    with pytest.raises(ConfigError, match="fewer than 16"):
        pseudonym_key({"VERTFRAC_PSEUDONYM_KEY": "short"})
    with pytest.raises(ConfigError, match="public demo key"):
        pseudonym_key({"VERTFRAC_PSEUDONYM_KEY": DEMO_SECRET.decode()})
    assert pseudonym_key({"VERTFRAC_PSEUDONYM_KEY": KEY}) == KEY
    assert pseudonym_key({"VERTFRAC_SECRET": KEY}) == KEY  # the earlier name still works
    assert pseudonym_key({}, demo=True).encode() == DEMO_SECRET
    assert isinstance(pseudonym_key({"VERTFRAC_PSEUDONYM_KEY": KEY}), Secret)


@pytest.mark.parametrize("key", [None, "short", DEMO_SECRET.decode()])
def test_screen_refuses_to_start_without_a_usable_key(tmp_path: Path, key: str | None) -> None:
    out = tmp_path / "tables"
    env = {"VERTFRAC_PSEUDONYM_KEY": key, "VERTFRAC_SECRET": None}
    res = CliRunner().invoke(app, ["screen", str(tmp_path / "archive"), "--out", str(out)], env=env)
    assert res.exit_code == 2 and "not started" in res.output and "VERTFRAC_PSEUDONYM_KEY" in res.output
    assert not out.exists()


def test_index_writes_a_table_only_under_a_real_key(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    env = {"VERTFRAC_PSEUDONYM_KEY": None, "VERTFRAC_SECRET": None}
    res = CliRunner().invoke(app, ["index", str(tmp_path / "a"), "--out", str(tmp_path / "t")], env=env)
    assert res.exit_code == 2 and not (tmp_path / "t").exists()


def test_secrets_print_masked_wherever_they_are_held() -> None:
    secret = Secret(KEY)
    assert str(secret) == KEY and f"{secret}" == KEY and secret.encode() == KEY.encode()
    assert KEY not in repr(secret) and KEY not in repr({"k": secret}) and KEY not in str([secret])
    assert repr(Secret("a" * 20)) != repr(Secret("b" * 20))  # fsspec's cache tells them apart
    again = pickle.loads(pickle.dumps({"secret": secret}))["secret"]  # to a Dask worker
    assert again == KEY and isinstance(again, Secret)
    storage = StorageSettings(endpoint_url="http://s3", key=SECRETS["AWS_ACCESS_KEY_ID"],
                              secret=SECRETS["AWS_SECRET_ACCESS_KEY"])
    options = storage.options("s3://bucket/x")
    assert options["secret"] == SECRETS["AWS_SECRET_ACCESS_KEY"]  # what s3fs gets
    held = [storage, options, TableStore("s3://bucket/x", options), str(options), f"{options}"]
    for thing in held:
        assert not find_leaks([("repr", repr(thing))], SECRETS.values()), thing
    redactor = Redactor.from_values(KEY, ids=["PID0123456"], names=["Novak^Anna"])
    assert "PID0123456".lower() not in repr(redactor).lower() and "novak" not in repr(redactor).lower()


def test_log_records_never_show_registered_secrets() -> None:
    value = SECRETS["AWS_SECRET_ACCESS_KEY"]
    redact_secrets_in_logs(value, None, "")
    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    log = logging.getLogger("vertfrac.test.secrets")
    handler = Lines()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("options %s", {"secret": str(value)})
        try:
            raise RuntimeError(f"signature for {value} does not match")
        except RuntimeError:
            log.exception("request failed")
    finally:
        log.removeHandler(handler)
    text = "\n".join(lines)
    assert "***" in text and "does not match" in text and value not in text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_run_against_s3_leaks_no_credential_or_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capfd: pytest.CaptureFixture) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    from test_leaks import Records

    records = Records()
    root = logging.getLogger()
    levels = {n: logging.getLogger(n).level for n in ("botocore", "aiobotocore", "s3fs")}
    root.addHandler(records)
    for n in levels:  # botocore prints signed request headers at DEBUG
        logging.getLogger(n).setLevel(logging.DEBUG)
    try:
        from flows.screen import screen_flow

        state = screen_flow("s3://vertfrac-archive/ct", str(tmp_path / "tables"),
                            endpoint_url=f"http://127.0.0.1:{_closed_port()}",
                            retry_delays_s=[0.1], storage_attempts=1, storage_retry_s=0.0,
                            return_state=True)
    finally:
        root.removeHandler(records)
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
    out, err = capfd.readouterr()
    assert state.is_failed()
    log = "\n".join(records.lines)
    assert "Credential=***/" in log  # S3 requests were signed; the access key in them redacted
    texts = [("log records", log), ("stdout", out), ("stderr", err)]
    texts += prefect_texts(str(state.state_details.flow_run_id))
    leaks = find_leaks(texts, SECRETS.values())
    assert not leaks, {k: sorted(v) for k, v in leaks.items()}


def _log_on_worker(message: str) -> None:
    logging.getLogger("vertfrac.test.worker").error(message)


@pytest.mark.slow
def test_dask_workers_redact_secrets_in_their_logs(capfd: pytest.CaptureFixture) -> None:
    """The worker plugin the flow registers: a worker process logging a credential prints it
    masked (worker processes write to this process's stderr)."""
    from distributed import Client, LocalCluster

    from tasks.cluster import redact_secrets_on_workers

    value = SECRETS["AWS_SECRET_ACCESS_KEY"]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
        redact_secrets_on_workers(client, Secret(value), None)
        client.submit(_log_on_worker, f"signing with {value} now", pure=False).result()
        client.run(lambda: [h.flush() for h in logging.getLogger().handlers])
    err = capfd.readouterr().err
    assert "signing with *** now" in err and value not in err
