"""Keyed hashes (HMAC-SHA256) that stand in for patient, study and series identifiers.

No raw name, ID or UID leaves the index: outputs carry these keys. The secret comes in as an
argument, read once at the edge from ``VERTFRAC_PSEUDONYM_KEY`` (``vertfrac_core.privacy``).
"""

from __future__ import annotations

import hashlib
import hmac

DEMO_SECRET = b"vertfrac-demo-key-not-secret"
"""Fixed key for demos and tests only; real runs pass their own secret."""

KEY_HEX_CHARS = 24  # 96 bits: collision-free at archive scale, short enough to read


def keyed_hash(secret: bytes | str, kind: str, *parts: str) -> str:
    """HMAC-SHA256 of ``kind`` and ``parts`` under ``secret``, as ``KEY_HEX_CHARS`` hex chars.

    ``kind`` ("patient", "study", "series") separates the key spaces so equal raw values of
    different kinds never collide.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    msg = "\x1f".join((kind, *parts)).encode("utf-8", "surrogateescape")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:KEY_HEX_CHARS]


def content_hash(parts: list[str]) -> str:
    """Unkeyed SHA-256 (hex, 32 chars) over sorted content descriptors (path, size, etag)."""
    h = hashlib.sha256()
    for p in sorted(parts):
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\n")
    return h.hexdigest()[:32]
