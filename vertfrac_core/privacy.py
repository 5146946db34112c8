"""Secrets at the edge: the pseudonym key, masked secret values, and logs that never show them.

* :func:`pseudonym_key` reads the HMAC key of the keyed hashes (``dicom/keys.py``) once, at the
  edge (CLI, flow), from ``VERTFRAC_PSEUDONYM_KEY`` (``VERTFRAC_SECRET`` is still accepted).
  Outside demo mode a missing, short or public key is a :class:`ConfigError`: a run that would
  write linkable keys under a guessable secret does not start.
* :class:`Secret` is a ``str`` whose ``repr`` is masked. Libraries that need the plain value
  (s3fs, hmac) get it, while every container that holds it (storage options, dataclasses,
  Dask's "kwargs: ..." lines, Prefect state messages) prints ``'***#…'`` instead.
* :func:`redact_secrets_in_logs` wraps the log record factory so that every record created in
  this process has the registered values replaced, in its message and its traceback, before any
  handler (console, file, Prefect's API) sees it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from vertfrac_core.dicom.keys import DEMO_SECRET
from vertfrac_core.errors import ConfigError

PSEUDONYM_KEY_ENV = "VERTFRAC_PSEUDONYM_KEY"
LEGACY_KEY_ENV = "VERTFRAC_SECRET"
MIN_KEY_CHARS = 16
MASK = "***"


_SALT = os.urandom(16)  # per process: reprs of different secrets differ, but reveal nothing


class Secret(str):
    """A string whose ``repr`` is masked; ``str()`` and string use give the value.

    The repr is ``'***#<8 hex>'``: a keyed hash under a random per-process salt, so that two
    different secrets print differently within one process (fsspec caches file systems by the
    printed form of their options) while nothing about the value can be learnt from it.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        tag = hmac.new(_SALT, str.__str__(self).encode("utf-8", "surrogatepass"), hashlib.sha256)
        return repr(f"{MASK}#{tag.hexdigest()[:8]}")

    def __reduce__(self) -> tuple[Any, tuple[str]]:  # pickles (to Dask workers) as a Secret
        return (Secret, (str.__str__(self),))


def pseudonym_key(env: Mapping[str, str] | None = None, *, demo: bool = False) -> Secret:
    """The HMAC key of patient, study and series keys, from ``env`` (default ``os.environ``).

    In demo mode an unset key means the public demo key (``keys.DEMO_SECRET``). Otherwise the
    key must be set, at least ``MIN_KEY_CHARS`` characters long and not the demo key.

    Raises:
        ConfigError: outside demo mode, when the key is missing, short or the demo key.
    """
    e = os.environ if env is None else env
    value = e.get(PSEUDONYM_KEY_ENV) or e.get(LEGACY_KEY_ENV) or ""
    how = (f"Set {PSEUDONYM_KEY_ENV} to a random secret of at least {MIN_KEY_CHARS} characters "
           "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))') and keep it: the "
           "same key every night gives the same keys")
    if not value:
        if demo:
            return Secret(DEMO_SECRET.decode())
        raise ConfigError(f"No pseudonym key: {PSEUDONYM_KEY_ENV} is not set, so patient, study "
                          f"and series keys cannot be computed. {how}. Only `vertfrac demo` runs "
                          "without one (on the public demo key).")
    if demo:
        return Secret(value)
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(f"{PSEUDONYM_KEY_ENV} has {len(value)} characters, fewer than "
                          f"{MIN_KEY_CHARS}: keys under a short secret can be brute-forced. {how}.")
    if value.encode() == DEMO_SECRET:
        raise ConfigError(f"{PSEUDONYM_KEY_ENV} is the public demo key, which anyone can use to "
                          f"recompute the keys. {how}.")
    return Secret(value)


_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_installed = False
MIN_REDACTED_CHARS = 6  # shorter values would blank ordinary words; keys are longer anyway


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret (longest first) replaced by ``***``."""
    for s in sorted(secrets, key=len, reverse=True):
        if s and s in text:
            text = text.replace(s, MASK)
    return text


def redact_secrets_in_logs(*values: str | None) -> None:
    """Never let ``values`` reach a log handler of this process (idempotent; values add up).

    Installed once, at the edge, before the work starts: the log record factory is wrapped so
    that a record's message (arguments merged in) and its traceback are redacted when the record
    is created, before any handler or Prefect's API sees it.
    """
    global _installed
    with _LOCK:
        _SECRETS.update(str.__str__(v) for v in values if v and len(v) >= MIN_REDACTED_CHARS)
        if _installed:
            return
        _installed = True
        previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        secrets = tuple(_SECRETS)
        if not secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the logging module's to report
            return record
        clean = redact(message, secrets)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            clean = redact(text, secrets)
            if clean != text:  # formatters print exc_text; rich handlers would re-render exc_info
                record.exc_text, record.exc_info = clean, None
        return record

    logging.setLogRecordFactory(factory)
