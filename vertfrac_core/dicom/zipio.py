"""Zip archives of studies, read with bounded memory and time.

A zip member is addressed by the location string ``zip://MEMBER::CONTAINER_URL`` (the fsspec
chained-URL form). Members are never extracted to disk; only the bytes needed are decompressed,
and zip bombs (huge declared sizes, absurd ratios, too many members, nesting) become reasons.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from vertfrac_core.dicom.reasons import FileReason

ZIP_MAGIC = b"PK\x03\x04"
ZIP_PREFIX = "zip://"
_UNESCAPE = re.compile(r"%3A|%25")


@dataclass(frozen=True)
class ZipLimits:
    """Bounds that turn a hostile zip into a reason instead of a memory or time blow-up."""

    max_members: int = 200_000
    max_member_bytes: int = 1 << 30  # declared uncompressed size of one member
    max_total_bytes: int = 64 << 30  # declared uncompressed size of the whole archive
    max_ratio: float = 200.0  # uncompressed / compressed, checked for members over 1 MiB
    ratio_min_bytes: int = 1 << 20


def member_location(container: str, member: str) -> str:
    """Location string of a zip member. The member name is data: ``%`` and ``:`` in it are
    escaped (``%25``, ``%3A``) so that a name such as ``x::/etc/passwd`` cannot move the split
    between member and container (``split_location`` undoes the escape)."""
    escaped = member.replace("%", "%25").replace(":", "%3A")
    return f"{ZIP_PREFIX}{escaped}::{container}"


def split_location(location: str) -> tuple[str, str | None]:
    """(container URL, member name or None) of a location string. Member names only name
    bytes inside their container: they are never extracted, so never become file paths."""
    if location.startswith(ZIP_PREFIX) and "::" in location:
        member, container = location[len(ZIP_PREFIX):].split("::", 1)
        return container, _UNESCAPE.sub(lambda m: ":" if m.group() == "%3A" else "%", member)
    return location, None


def is_zip(prefix: bytes) -> bool:
    """True if the first bytes of an object are a zip local file header."""
    return prefix[:4] == ZIP_MAGIC


def archive_reason(zf: zipfile.ZipFile, limits: ZipLimits) -> tuple[FileReason, str] | None:
    """A reason to refuse the whole archive, or None if its directory is within the limits."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        return FileReason.DECOMPRESSION_BOMB, (
            f"zip lists {len(infos)} members, over the limit of {limits.max_members}")
    total = sum(i.file_size for i in infos)
    if total > limits.max_total_bytes:
        return FileReason.DECOMPRESSION_BOMB, (
            f"zip declares {total} uncompressed bytes, over the limit of {limits.max_total_bytes}")
    return None


def member_reason(info: zipfile.ZipInfo, limits: ZipLimits) -> tuple[FileReason, str] | None:
    """A reason to refuse one member (bomb-like size or ratio, nested zip), or None."""
    if info.file_size > limits.max_member_bytes:
        return FileReason.DECOMPRESSION_BOMB, (
            f"member declares {info.file_size} bytes, over the limit of {limits.max_member_bytes}")
    if info.file_size > limits.ratio_min_bytes:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > limits.max_ratio:
            return FileReason.DECOMPRESSION_BOMB, (
                f"member compresses {ratio:.0f}:1, over the limit of {limits.max_ratio:.0f}:1")
    if info.filename.lower().endswith(".zip"):
        return FileReason.NESTED_ZIP, "zip inside a zip is not followed; unpack it first"
    return None


def iter_members(zf: zipfile.ZipFile) -> Iterator[zipfile.ZipInfo]:
    """File members (no directories), in archive order."""
    for info in zf.infolist():
        if not info.is_dir():
            yield info


def read_member(zf: zipfile.ZipFile, name: str, max_bytes: int) -> bytes:
    """At most ``max_bytes`` decompressed bytes from the start of a member."""
    with zf.open(name) as fh:
        return fh.read(max_bytes)


def open_zip(fileobj: IO[bytes]) -> zipfile.ZipFile:
    """Open a seekable binary file object as a zip (raises ``zipfile.BadZipFile``)."""
    return zipfile.ZipFile(fileobj)
