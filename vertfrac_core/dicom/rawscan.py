"""A fast walk over the data elements of a plain DICOM file, for the header index.

pydicom builds a full ``Dataset`` (about 1 ms per file in Python); the index needs some 40
values from files that are almost always plain Part 10 files, so this walker reads element
headers with ``struct``, skips values it does not need (sequences included) and stops at Pixel
Data. It only handles the common case (preamble + meta, native or encapsulated syntaxes, no
deflate, no enhanced functional groups) and raises ``NotSimple`` for anything else, in which
case ``header.py`` falls back to pydicom, which also diagnoses broken files.
"""

from __future__ import annotations

import struct

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
LONG_VRS = {b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"OD", b"OL", b"OV", b"UC", b"UR", b"SV", b"UV"}
FUNCTIONAL_GROUPS = {0x52009229, 0x52009230}  # shared / per-frame: enhanced -> pydicom
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


class NotSimple(Exception):
    """The file needs the full pydicom reader (or more bytes)."""


class Incomplete(NotSimple):
    """The buffer ends before the header does.

    ``end`` is the byte offset the walk needed to reach; ``at_boundary`` is True when the
    buffer ended exactly between two elements (which a dataset without pixel data also does).
    """

    def __init__(self, message: str, end: int, at_boundary: bool = False) -> None:
        super().__init__(message)
        self.end, self.at_boundary = end, at_boundary


def scan(data: bytes, wanted: set[int]) -> tuple[dict[int, bytes], int, bool, str]:
    """(wanted tag -> raw value bytes, Pixel Data offset, little endian?, transfer syntax)."""
    if len(data) < 144 or data[128:132] != b"DICM":
        raise NotSimple("no preamble")
    values: dict[int, bytes] = {}
    pos = 132
    ts = ""
    while pos + 8 <= len(data):  # file meta: always explicit VR little endian
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4:pos + 6]
        if vr in LONG_VRS:
            if pos + 12 > len(data):
                raise Incomplete("file meta ends early", pos + 12)
            (length,) = struct.unpack_from("<I", data, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        tag = (group << 16) | elem
        if tag == 0x00020010:
            ts = data[start:start + length].decode("ascii", "replace").strip("\x00 ")
        elif tag in wanted:
            values[tag] = data[start:start + length]
        pos = start + length
    if not ts or ts == DEFLATED:
        raise NotSimple("deflated or no transfer syntax")
    implicit, little = ts == IMPLICIT_LE, ts != EXPLICIT_BE
    walker = _Walker(data, implicit, "<" if little else ">")
    pixel = walker.walk(pos, wanted, values)
    return values, pixel, little, ts


class _Walker:
    def __init__(self, data: bytes, implicit: bool, endian: str) -> None:
        self.data, self.implicit = data, implicit
        self.hh, self.i4, self.h2 = endian + "HH", endian + "I", endian + "H"

    def element(self, pos: int) -> tuple[int, int, int, bool]:
        """(tag, value start, value length, is sequence) of the element at ``pos``."""
        d = self.data
        if pos + 8 > len(d):
            raise Incomplete("header ends early", pos + 8, at_boundary=pos == len(d))
        group, elem = struct.unpack_from(self.hh, d, pos)
        tag = (group << 16) | elem
        if self.implicit or group == 0xFFFE:
            (length,) = struct.unpack_from(self.i4, d, pos + 4)
            return tag, pos + 8, length, length == 0xFFFFFFFF
        vr = d[pos + 4:pos + 6]
        if vr in LONG_VRS:
            if pos + 12 > len(d):
                raise Incomplete("header ends early", pos + 12)
            (length,) = struct.unpack_from(self.i4, d, pos + 8)
            return tag, pos + 12, length, vr == b"SQ" or length == 0xFFFFFFFF
        if not vr.isalpha():
            raise NotSimple("unexpected VR")
        (length,) = struct.unpack_from(self.h2, d, pos + 6)
        return tag, pos + 8, length, False

    def walk(self, pos: int, wanted: set[int], values: dict[int, bytes]) -> int:
        """Top-level dataset: collect wanted values; return the Pixel Data element offset."""
        while True:
            tag, start, length, is_seq = self.element(pos)
            if tag in PIXEL_TAGS:
                return pos
            if tag in FUNCTIONAL_GROUPS:
                raise NotSimple("enhanced multi-frame")
            if is_seq:
                pos = self.skip_sequence(start, length)
                continue
            end = start + length
            if end > len(self.data):
                raise Incomplete("value ends after the buffer", end)
            if tag in wanted:
                values[tag] = self.data[start:end]
            pos = end

    def skip_sequence(self, start: int, length: int, depth: int = 0) -> int:
        """Offset just after a sequence value (defined or undefined length)."""
        if depth > 16:
            raise NotSimple("sequences nested too deep")
        if length != 0xFFFFFFFF:
            if start + length > len(self.data):
                raise Incomplete("sequence ends after the buffer", start + length)
            return start + length
        pos = start
        while True:
            tag, s, n, _ = self.element(pos)
            if tag == SEQ_END:
                return s
            if tag != ITEM:
                raise NotSimple("malformed sequence")
            pos = self.skip_item(s, n, depth + 1)

    def skip_item(self, start: int, length: int, depth: int) -> int:
        if length != 0xFFFFFFFF:
            return start + length
        pos = start
        while True:
            tag, s, n, is_seq = self.element(pos)
            if tag == ITEM_END:
                return s
            if is_seq:
                pos = self.skip_sequence(s, n, depth)
            else:
                pos = s + n
                if pos > len(self.data):
                    raise Incomplete("item ends after the buffer", pos)
