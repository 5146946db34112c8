"""Per-scan resource limits in the worker: a memory cap checked before loading, and a timeout.

* Memory: :func:`volume_bytes` estimates the decoded size of a series from its header index
  (output slices x rows x columns x 2 bytes, the int16 volume ``load_series`` allocates, after
  gap filling and resampling) before a single pixel is read. A series over
  ``ScanLimits.max_volume_bytes`` raises :class:`SeriesTooLargeError`, which the screening step
  records as status ``skipped`` with error code ``series_too_large`` (and moves on to the next
  candidate series of the study). A scan's peak memory is a small multiple of that figure (the
  analyser works on float copies and a coarse resampling), so the cap is set well below the
  memory of a worker.
* Time: :func:`call_with_timeout` runs a step in the calling thread and, if it is still running
  after ``timeout_s``, raises :class:`ScanTimeout` inside it (``PyThreadState_SetAsyncExc``: the
  exception arrives at the next Python bytecode). The step unwinds through its ``finally``
  blocks and the caller gets :class:`ScanTimeoutError`; the worker thread is free for the next
  scan. ``ScanTimeout`` derives from ``BaseException`` so that an analyser's ``except
  Exception`` cannot swallow it. Limitation: a single native call (one decoder call, one torch
  operation) is not interrupted; the timeout takes effect when it returns.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from vertfrac_core.dicom.grouping import Series
from vertfrac_core.errors import ResourceLimitError

T = TypeVar("T")
BYTES_PER_VOXEL = 2  # int16 HU
MB = 1 << 20


@dataclass(frozen=True)
class ScanLimits:
    """Bounds of one scan in a worker. ``None`` switches a bound off.

    ``max_volume_bytes``: decoded int16 volume (default 4 GiB: 512 x 512 x 8,192 slices).
    ``timeout_s``: loading plus analysis of one series (default 30 minutes).
    """

    max_volume_bytes: int | None = 4 << 30
    timeout_s: float | None = 1800.0

    def __post_init__(self) -> None:
        if self.max_volume_bytes is not None and self.max_volume_bytes <= 0:
            raise ValueError(f"max_volume_bytes must be positive or None; got {self.max_volume_bytes}")
        if self.timeout_s is not None and not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise ValueError(f"timeout_s must be a positive number of seconds or None; got {self.timeout_s}")

    @classmethod
    def from_mb(cls, max_volume_mb: float | None, timeout_s: float | None) -> ScanLimits:
        """From flow / CLI parameters: megabytes (MiB) and seconds."""
        return cls(None if max_volume_mb is None else int(max_volume_mb * MB), timeout_s)


class SeriesTooLargeError(ResourceLimitError):
    """The decoded series would exceed ``ScanLimits.max_volume_bytes``."""


class ScanTimeoutError(ResourceLimitError):
    """Loading and analysing one series took longer than ``ScanLimits.timeout_s``."""


class ScanTimeout(BaseException):  # noqa: N818 - raised asynchronously, like KeyboardInterrupt
    """Raised inside the timed thread; :func:`call_with_timeout` turns it into ScanTimeoutError."""


def output_slices(series: Series) -> int:
    """Slices ``load_series`` will produce: the stack after gap filling or resampling to the
    median step (positions span / step + 1), else the slices found."""
    g = series.geometry
    n = len(series.slices)
    if g is not None and g.step_mm > 0 and math.isfinite(g.coverage_mm):
        n = max(g.n_slices, int(round(g.coverage_mm / g.step_mm)) + 1)
    return max(n, 1)


def volume_bytes(series: Series) -> int:
    """Estimated bytes of the decoded int16 volume of ``series`` (from its headers only)."""
    h = series.first
    return output_slices(series) * max(h.rows, 0) * max(h.cols, 0) * BYTES_PER_VOXEL


def check_volume_size(series: Series, max_volume_bytes: int | None) -> int:
    """The estimate of :func:`volume_bytes`; raises SeriesTooLargeError above the cap."""
    size = volume_bytes(series)
    if max_volume_bytes is not None and size > max_volume_bytes:
        h = series.first
        raise SeriesTooLargeError(
            f"series {series.series_key[:8]} would decode to {size / MB:.0f} MiB "
            f"({output_slices(series)} slices of {h.rows}x{h.cols}), over the per-scan cap of "
            f"{max_volume_bytes / MB:.0f} MiB; raise the cap (max_volume_mb) if the workers "
            "have the memory for it")
    return size


def _async_raise(thread_id: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in thread ``thread_id`` at its next bytecode (None clears a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc) if exc is not None else None)


class _Deadline:
    """Arms a timer that raises ScanTimeout in the current thread; ``stop`` disarms it for good."""

    def __init__(self, timeout_s: float) -> None:
        self.thread_id = threading.get_ident()
        self.lock = threading.Lock()
        self.armed, self.fired = True, False
        self.timer = threading.Timer(timeout_s, self._fire)
        self.timer.daemon = True

    def _fire(self) -> None:
        with self.lock:
            if self.armed:
                self.fired = True
                _async_raise(self.thread_id, ScanTimeout)

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        with self.lock:
            self.armed = False
            self.timer.cancel()
            if self.fired:  # raised but perhaps not delivered yet: never let it escape later
                _async_raise(self.thread_id, None)


def call_with_timeout(fn: Callable[[], T], timeout_s: float | None, *, what: str = "the scan") -> T:
    """``fn()``, or ScanTimeoutError when it runs longer than ``timeout_s`` (None: no limit)."""
    if timeout_s is None:
        return fn()
    deadline = _Deadline(timeout_s)
    try:
        try:
            deadline.start()
            return fn()
        finally:
            deadline.stop()
    except ScanTimeout:
        raise ScanTimeoutError(f"{what} was stopped after the per-scan timeout of {timeout_s:g} s; "
                               "raise scan_timeout_s if such scans are expected") from None
