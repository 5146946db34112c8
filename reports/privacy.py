"""A last check before any report is written: no DICOM UID and no raw identifier in the text.

Reports are built from the tables, which hold keyed hashes only; this guard catches a future
change that lets a UID-shaped string (``1.2.840.…``), an archive path or a DICOM person name
(``Family^Given``) slip into a page. It looks at the text and markup, not inside the base64
pictures (base64 has no dots and no carets).
"""

from __future__ import annotations

import re

from vertfrac_core.errors import VertfracError

UID = re.compile(r"(?<![\w.])[0-2](?:\.(?:0|[1-9]\d{0,19})){4,}(?![\w.])")
PERSON_NAME = re.compile(r"\b[A-Z][A-Za-z'-]+\^[A-Z][A-Za-z'-]+")


class PrivacyError(VertfracError):
    """A report would have carried something that looks like a patient or study identifier."""


def check_text(text: str, what: str) -> str:
    """``text`` unchanged, or :class:`PrivacyError` naming the pattern found (not the value)."""
    for name, pattern in (("a DICOM UID", UID), ("a DICOM person name", PERSON_NAME)):
        m = pattern.search(text)
        if m:
            raise PrivacyError(f"{what} contains {name} at character {m.start()}; reports must show "
                               "keyed hashes only. This is a bug in the report builder: please report it")
    return text
