"""Patient identifiers found in free text, archive paths and picture metadata, removed before
anything is written.

Tables carry keyed hashes for patients, studies and series, but a few columns hold text from
outside: the archive folder of a series (``source``), error messages (which name files), series
descriptions and reasons. Archives are often laid out by identifier
(``DOE_JOHN_12345/<Study UID>/<Series UID>/<SOP UID>.dcm``), so that text is redacted first:

* every identifier read from the archive's headers (patient ID, the parts of the patient's name,
  birth date, accession number, study ID, and the study, series, SOP instance and frame of
  reference UIDs) wherever it appears as whole tokens, case-insensitively (a birth date also as
  ``YYYY-MM-DD`` or ``DD.MM.YYYY``);
* every UID-shaped number (``1.2.840.…`` with five or more components, ``2.25.…``), known or not;

each becomes ``~`` plus a keyed hash of the value (10 hex characters), so equal values stay
equal, different ones different, and none can be read back without the key. Tokens are runs of
letters and digits; name parts shorter than 3 characters and other identifiers shorter than 4
are not looked for (they would blank ordinary words and numbers).

Pictures an analyser draws are stored without their PNG text and metadata chunks
(:func:`strip_png_text`); what is drawn into the pixels is the analyser's responsibility.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from vertfrac_core.dicom.header import FileHeader
from vertfrac_core.dicom.keys import keyed_hash

_WORD = re.compile(r"[^\W_]+")
_UID = re.compile(r"(?<![\d.])(?:[0-2](?:\.\d+){4,}|2\.25\.\d{6,})(?!\d)")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_EU_DATE = re.compile(r"(?<!\d)(\d{2})[./](\d{2})[./](\d{4})(?!\d)")
MIN_NAME_PART_CHARS = 3
MIN_ID_CHARS = 4
HASH_CHARS = 10


def _words(value: str) -> tuple[str, ...]:
    return tuple(w.casefold() for w in _WORD.findall(value))


@dataclass(frozen=True)
class Redactor:
    """Replaces identifiers in text (see the module docstring); build it with :meth:`from_headers`.

    ``words``: identifiers that are one token; ``phrases``: those of several tokens (a UID that
    is not UID-shaped, ``123-45-6789``), matched as consecutive tokens whatever separates them.
    """

    secret: bytes | str = field(repr=False)
    words: frozenset[str] = field(default=frozenset(), repr=False)  # identifiers: never printed
    phrases: frozenset[tuple[str, ...]] = field(default=frozenset(), repr=False)
    _lengths: tuple[int, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lengths", tuple(sorted({len(p) for p in self.phrases}, reverse=True)))

    @classmethod
    def from_values(cls, secret: bytes | str, *, ids: Iterable[str] = (),
                    names: Iterable[str] = ()) -> Redactor:
        """From raw identifier values (``ids``) and DICOM person names (``names``)."""
        words: set[str] = set()
        phrases: set[tuple[str, ...]] = set()
        for raw in ids:
            value = (raw or "").strip()
            if len(value) < MIN_ID_CHARS or _UID.fullmatch(value):  # UID-shaped: always caught
                continue
            tokens = _words(value)
            if len(tokens) == 1:
                words.add(tokens[0])
            elif tokens:
                phrases.add(tokens)
        for raw in names:
            for part in _words(raw or ""):
                if len(part) >= MIN_NAME_PART_CHARS:
                    words.add(part)
        return cls(secret, frozenset(words), frozenset(phrases))

    @classmethod
    def from_headers(cls, secret: bytes | str, headers: Iterable[FileHeader]) -> Redactor:
        """Every identifier in ``headers`` (see the module docstring)."""
        ids: set[str] = set()
        names: set[str] = set()
        for h in headers:
            ids.update((h.patient_id, h.accession, h.study_id, h.study_uid, h.series_uid,
                        h.sop_uid, h.frame_of_reference, h.birth_date))
            names.add(h.patient_name)
        return cls.from_values(secret, ids=ids, names=names)

    def _token(self, value: str) -> str:
        return "~" + keyed_hash(self.secret, "redacted", value.casefold())[:HASH_CHARS]

    def text(self, value: str | None) -> str | None:
        """``value`` with every identifier replaced (None and "" unchanged)."""
        if not value:
            return value
        out = _UID.sub(lambda m: self._token(m.group()), value)
        if not (self.words or self.phrases):
            return out
        out = _ISO_DATE.sub(lambda m: self._date(m, m.group(1) + m.group(2) + m.group(3)), out)
        out = _EU_DATE.sub(lambda m: self._date(m, m.group(3) + m.group(2) + m.group(1)), out)
        return self._words_replaced(out)

    def _date(self, m: re.Match[str], yyyymmdd: str) -> str:
        return self._token(yyyymmdd) if yyyymmdd in self.words else m.group()

    def _words_replaced(self, text: str) -> str:
        spans = [(m.start(), m.end(), m.group().casefold()) for m in _WORD.finditer(text)]
        cuts: list[tuple[int, int, str]] = []
        i = 0
        while i < len(spans):
            for n in self._lengths:  # longest phrase first
                seq = tuple(s[2] for s in spans[i:i + n])
                if len(seq) == n and seq in self.phrases:
                    cuts.append((spans[i][0], spans[i + n - 1][1], " ".join(seq)))
                    i += n
                    break
            else:
                if spans[i][2] in self.words:
                    cuts.append(spans[i])
                i += 1
        for start, end, value in reversed(cuts):
            text = text[:start] + self._token(value) + text[end:]
        return text


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: ancillary PNG chunks that carry free text or metadata (tEXt, zTXt, iTXt, eXIf, tIME)
PNG_TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"})


def strip_png_text(data: bytes) -> bytes:
    """A PNG without its text and metadata chunks (the pixels untouched); non-PNG data and
    malformed PNGs are returned as they are. Pictures drawn by an analyser are stored through
    this, so no title, comment or EXIF field it wrote (a path, a name) reaches the outputs."""
    if not data.startswith(PNG_SIGNATURE):
        return data
    out, pos = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, end = data[pos + 4:pos + 8], pos + 12 + length
        if end > len(data):
            return data
        if kind not in PNG_TEXT_CHUNKS:
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            return b"".join(out)
    return data


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its CRC (for tests and tools that build PNGs by hand)."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
