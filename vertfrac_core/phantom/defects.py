"""The mess of real PACS exports, injected on purpose and recorded exactly.

A defect is drawn per study (:class:`DefectRates`) and applied while the files stream to storage:
:func:`plan_corruption` picks the affected slices of one series from a seeded generator and
:func:`apply_corruption` rewrites the ``(name, bytes)`` stream accordingly. Every injected defect
becomes an :class:`InjectedDefect` naming the affected files (paths relative to the archive root),
which the archive writes to its ground truth.

* ``truncated_file`` -- a slice file cut short inside its pixel data (an interrupted transfer);
* ``missing_slice`` -- a slice file absent from the series (its name is recorded, no file exists);
* ``duplicate_slices`` -- one to three slices exported twice, byte-identical (same SOP Instance
  UID) under new file names after the last slice;
* ``zero_byte_file`` -- a slice file of 0 bytes in place of a slice;
* ``non_dicom_file`` -- a README text or a PNG thumbnail among the DICOM files;
* ``no_spine_series`` -- an extra axial series whose field of view misses the column;
* ``no_spine_study`` -- a study whose only axial series misses the column (no usable series).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class DefectKind(StrEnum):
    TRUNCATED_FILE = "truncated_file"
    MISSING_SLICE = "missing_slice"
    DUPLICATE_SLICES = "duplicate_slices"
    ZERO_BYTE_FILE = "zero_byte_file"
    NON_DICOM_FILE = "non_dicom_file"
    NO_SPINE_SERIES = "no_spine_series"
    NO_SPINE_STUDY = "no_spine_study"


#: defects applied to the files of one series (the others add or replace whole series)
FILE_DEFECTS = (
    DefectKind.TRUNCATED_FILE,
    DefectKind.MISSING_SLICE,
    DefectKind.DUPLICATE_SLICES,
    DefectKind.ZERO_BYTE_FILE,
)


@dataclass(frozen=True)
class DefectRates:
    """Probability per study of each defect (independent draws)."""

    truncated_file: float = 0.03
    missing_slice: float = 0.04
    duplicate_slices: float = 0.04
    zero_byte_file: float = 0.02
    non_dicom_file: float = 0.10
    no_spine_series: float = 0.05
    no_spine_study: float = 0.02

    def __post_init__(self) -> None:
        for kind in DefectKind:
            p = self.rate(kind)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"defect rate {kind.value} must be in [0, 1]; got {p}")

    def rate(self, kind: DefectKind) -> float:
        return float(getattr(self, kind.value))


@dataclass(frozen=True)
class InjectedDefect:
    """One defect as written: ``files`` are archive-relative paths (a missing file's intended
    path for ``missing_slice``); ``series_folder`` is None for a study-level file."""

    kind: DefectKind
    study_folder: str
    series_folder: str | None
    files: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class Corruption:
    """What happens to the slices (0-based indices in writing order) of one series."""

    truncate: dict[int, float] = field(default_factory=dict)  # index -> kept fraction of bytes
    drop: frozenset[int] = frozenset()
    zero: frozenset[int] = frozenset()
    duplicate: tuple[int, ...] = ()


def plan_corruption(kinds: Iterable[DefectKind], n_slices: int, rng: np.random.Generator) -> Corruption:
    """Choose distinct interior slices for the file defects in ``kinds`` (others are ignored)."""
    wanted = [k for k in kinds if k in FILE_DEFECTS]
    if not wanted:
        return Corruption()
    if n_slices < 3 + 3 * len(wanted):
        raise ValueError(f"series of {n_slices} slices is too short to corrupt with {wanted}")
    free = list(rng.permutation(np.arange(1, n_slices - 1)))
    truncate: dict[int, float] = {}
    drop: set[int] = set()
    zero: set[int] = set()
    duplicate: list[int] = []
    for kind in wanted:
        if kind == DefectKind.TRUNCATED_FILE:
            truncate[int(free.pop())] = float(rng.uniform(0.3, 0.9))
        elif kind == DefectKind.MISSING_SLICE:
            drop.add(int(free.pop()))
        elif kind == DefectKind.ZERO_BYTE_FILE:
            zero.add(int(free.pop()))
        else:
            start = int(free.pop())
            n = int(rng.integers(1, 4))
            duplicate.extend(i for i in range(start, min(start + n, n_slices - 1)))
    return Corruption(truncate=truncate, drop=frozenset(drop), zero=frozenset(zero),
                      duplicate=tuple(duplicate))


def apply_corruption(
    files: Iterable[tuple[str, bytes]],
    corruption: Corruption,
    duplicate_name: Callable[[int], str],
    record: list[tuple[DefectKind, str, str]],
) -> Iterator[tuple[str, bytes]]:
    """Stream ``files`` with ``corruption`` applied; append ``(kind, file name, detail)`` to
    ``record`` for every affected file. ``duplicate_name(m)`` names the m-th extra file (0-based).
    """
    copies: list[tuple[str, bytes]] = []
    for index, (name, data) in enumerate(files):
        if index in corruption.duplicate:
            copies.append((name, data))
        if index in corruption.drop:
            record.append((DefectKind.MISSING_SLICE, name, f"slice {index + 1} not exported"))
            continue
        if index in corruption.zero:
            record.append((DefectKind.ZERO_BYTE_FILE, name, f"slice {index + 1} written as 0 bytes"))
            data = b""
        elif index in corruption.truncate:
            keep = int(len(data) * corruption.truncate[index])
            record.append((DefectKind.TRUNCATED_FILE, name, f"cut to {keep} of {len(data)} bytes"))
            data = data[:keep]
        yield name, data
    for m, (name, data) in enumerate(copies):
        new = duplicate_name(m)
        record.append((DefectKind.DUPLICATE_SLICES, new, f"byte copy of {name}"))
        yield new, data


def readme_text(study_folder: str) -> bytes:
    """A PACS export note (no patient data)."""
    return (
        "EXPORT NOTE\r\n"
        f"Folder: {study_folder}\r\n"
        "Exported by the image archive for research use. Images are DICOM Part 10 files.\r\n"
        "Do not edit the files in this folder.\r\n"
    ).encode("ascii")


def png_bytes(image: np.ndarray) -> bytes:
    """A minimal 8-bit greyscale PNG of ``image`` ((rows, columns) uint8), for thumbnails."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    rows, cols = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(rows))

    def chunk(tag: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))
