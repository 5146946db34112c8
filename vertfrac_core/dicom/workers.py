"""Worker processes that decode compressed slices into a shared output volume.

JPEG 2000 and the other pylibjpeg decoders hold the GIL, so threads do not scale for them;
processes do. :class:`DecodePool` owns such processes and can be reused across series (a
pipeline worker loads many): the pool starts lazily on first use and ends with ``close()`` or
the ``with`` block. Without a pool, :func:`decode_in_processes` starts one for the call.

Work goes out in small contiguous chunks (about six per process) so that a process slowed by
other jobs on the machine does not hold up the end; each chunk opens the output, a
memory-mapped int16 file in /dev/shm, by path and decodes into it, so pixel data never travels
through pickles and peak memory stays near one volume. Each worker reads its own files.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from vertfrac_core.dicom.grouping import SliceRef
from vertfrac_core.dicom.pixels import decode_into

CHUNKS_PER_WORKER = 6


def start_method() -> str:
    """'fork' on Linux while this process runs a single Python thread (cheap, about 40 ms for
    two workers), else 'spawn' (safe with threads, seconds to import the decoders)."""
    return "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"


class DecodePool:
    """Reusable decoding processes: ``with DecodePool(2) as pool: load_series(s, pool=pool)``."""

    def __init__(self, workers: int = 0) -> None:
        if workers < 0:
            raise ValueError(f"workers must be 0 (one per CPU core) or more; got {workers}")
        self.workers = workers or max(1, os.cpu_count() or 1)
        self._executor: ProcessPoolExecutor | None = None
        self.method = ""

    def executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self.method = start_method()
            self._executor = ProcessPoolExecutor(self.workers, mp_context=mp.get_context(self.method))
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shared_output(shape: tuple[int, int, int]) -> tuple[np.memmap, str]:
    """A zero-filled int16 memmap in /dev/shm (tmpfs) that worker processes can open."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    fd, path = tempfile.mkstemp(prefix="vertfrac-", suffix=".i16", dir=folder)
    os.close(fd)
    return np.memmap(path, dtype=np.int16, mode="w+", shape=shape), path


def decode_chunk(path: str, shape: tuple[int, int, int], jobs: list[tuple[int, SliceRef]],
                 storage_options: dict[str, Any] | None) -> int:
    """Worker entry: decode slices ``(k, ref)`` into the shared memmap; returns clipped count."""
    out = np.memmap(path, dtype=np.int16, mode="r+", shape=shape)
    clipped = sum(decode_into(ref, out[k], storage_options) for k, ref in jobs)
    out.flush()
    del out
    return clipped


def decode_in_processes(jobs: list[tuple[int, SliceRef]], shape: tuple[int, int, int],
                        storage_options: dict[str, Any] | None, pool: DecodePool
                        ) -> tuple[np.ndarray, int, str]:
    """Decode ``jobs`` with ``pool`` into a new (K, rows, cols) int16 array."""
    out, path = shared_output(shape)
    try:
        size = max(4, -(-len(jobs) // (pool.workers * CHUNKS_PER_WORKER)))
        executor = pool.executor()
        futures = [executor.submit(decode_chunk, path, shape, jobs[i:i + size], storage_options)
                   for i in range(0, len(jobs), size)]
        clipped = sum(f.result() for f in futures)
    finally:
        os.unlink(path)  # the parent's mapping stays valid after unlink
    return out.view(np.ndarray), clipped, f"{pool.workers} processes ({pool.method})"
