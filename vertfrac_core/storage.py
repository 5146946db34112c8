"""Object-storage settings and the line between a storage hiccup and a data error.

``StorageSettings`` turns endpoint and credentials into fsspec storage options (read once at the
edge: CLI or flow, from arguments or the usual ``AWS_*`` variables). ``is_transient`` says whether
an exception is the store being unreachable (retry later) rather than the data being bad (record
a reason); ``retry_transient`` retries the former with exponential backoff (``StorageRetry``
carries its attempts and first delay).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vertfrac_core.privacy import Secret

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT, errno.EPIPE,
                     errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EAGAIN}
# botocore / aiohttp / urllib3 class names that mean "could not talk to the server"
_TRANSIENT_NAMES = ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
                    "ConnectTimeoutError", "ClientConnectorError", "ServerDisconnectedError",
                    "ClientOSError", "ServerTimeoutError", "ClientPayloadError",
                    "ProxyConnectionError", "SlowDown", "ServiceUnavailable", "InternalError")


@dataclass(frozen=True)
class StorageSettings:
    """S3-compatible endpoint and credentials; all None means local files or the AWS defaults."""

    endpoint_url: str | None = None
    key: str | None = field(default=None, repr=False)  # credentials never printed
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, endpoint_url: str | None = None) -> StorageSettings:
        """``endpoint_url`` argument, else ``VERTFRAC_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL``;
        credentials from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``."""
        e = os.environ if env is None else env
        return cls(endpoint_url or e.get("VERTFRAC_S3_ENDPOINT") or e.get("AWS_ENDPOINT_URL") or None,
                   e.get("AWS_ACCESS_KEY_ID") or None, e.get("AWS_SECRET_ACCESS_KEY") or None)

    def options(self, url: str) -> dict[str, Any] | None:
        """fsspec storage options for ``url`` (None for non-S3 URLs)."""
        if not url.startswith(("s3://", "s3a://")):
            return None
        opts: dict[str, Any] = {}
        if self.endpoint_url:
            opts["client_kwargs"] = {"endpoint_url": self.endpoint_url}
        if self.key:  # Secret: the value for s3fs, '***' in any printout of the options
            opts["key"] = Secret(self.key)
        if self.secret:
            opts["secret"] = Secret(self.secret)
        # fail fast instead of botocore's long default retry loop; we retry at our level
        opts["config_kwargs"] = {"connect_timeout": 5, "read_timeout": 30,
                                 "retries": {"max_attempts": 2, "mode": "standard"}}
        return opts


def is_transient(err: BaseException) -> bool:
    """True when ``err`` (or what it was raised from) says the store is unreachable or busy."""
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, TimeoutError | ConnectionError):
            return True
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            return True
        if any(c.__name__ in _TRANSIENT_NAMES for c in type(e).__mro__):
            return True
        text = str(e)
        if "Could not connect to the endpoint" in text or "Connection refused" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


@dataclass(frozen=True)
class StorageRetry:
    """How :func:`retry_transient` retries a storage call: ``attempts`` in all, waiting
    ``base_delay_s`` doubling in between."""

    attempts: int = 4
    base_delay_s: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay_s < 0:
            raise ValueError(f"StorageRetry needs attempts >= 1 and base_delay_s >= 0; got "
                             f"{self.attempts} and {self.base_delay_s}")

    def call(self, fn: Callable[[], T], what: str = "storage call") -> T:
        return retry_transient(fn, attempts=self.attempts, base_delay_s=self.base_delay_s, what=what)


def retry_transient(fn: Callable[[], T], *, attempts: int = 4, base_delay_s: float = 0.5,
                    what: str = "storage call") -> T:
    """Call ``fn``; on a transient error wait ``base_delay_s * 2**k`` and retry (``attempts`` in
    all). Other errors, and the last transient one, propagate unchanged."""
    for k in range(attempts):
        try:
            return fn()
        except Exception as err:
            if k == attempts - 1 or not is_transient(err):
                raise
            delay = base_delay_s * 2**k
            log.warning("%s failed (%s: %s); retry %d/%d in %.1f s", what, type(err).__name__,
                        err, k + 1, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
