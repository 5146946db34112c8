"""File names from data and user input: checked or cleaned into one component, joined under a root.

Names that come from outside -- object keys, zip member names, UIDs, keys read back from tables
or typed on the command line, model versions -- can hold ``..``, separators (``/`` and ``\\``),
drive letters, NUL and control characters, or look-alike Unicode (``．．／``). None of them may
choose where a file is written:

* :func:`key_component` accepts only what the pipeline itself makes (lower-case hex keys) and
  refuses anything else: a key that is not hex was forged or corrupted;
* :func:`clean_component` maps free text (a model version) to ``[A-Za-z0-9._=-]`` characters, no
  leading dot, at most ``MAX_COMPONENT_CHARS``;
* :func:`safe_join` joins components under a root after checking each one, and for a local root
  also checks that the resolved result (symlinks followed) stays inside the resolved root.

Refusals are :class:`~vertfrac_core.errors.UnsafePathError`.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import unicodedata

from vertfrac_core.errors import UnsafePathError

MAX_COMPONENT_CHARS = 128
_KEY = re.compile(r"[0-9a-f]{8,64}")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._=-]")
_SAFE = re.compile(r"[A-Za-z0-9_=-][A-Za-z0-9._=-]*")


def key_component(value: str, what: str = "key") -> str:
    """``value`` if it is a key the pipeline makes (8 to 64 lower-case hex characters)."""
    if not isinstance(value, str) or not _KEY.fullmatch(value):
        raise UnsafePathError(f"{what} {value!r:.80} is not a key made by vertfrac (8-64 lower-case "
                              "hex characters), so it cannot name a file; were the tables edited?")
    return value


def clean_component(value: str) -> str:
    """Free text as one harmless path component (characters outside ``[A-Za-z0-9._=-]`` become
    ``_``, leading dots are dropped; a long name keeps a hash of the whole so names stay apart)."""
    text = unicodedata.normalize("NFKC", str(value))
    out = _UNSAFE_CHARS.sub("_", text).lstrip(".")
    if len(out) > MAX_COMPONENT_CHARS:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        out = f"{out[:MAX_COMPONENT_CHARS - 13]}-{digest}"
    if not out:
        raise UnsafePathError(f"{value!r:.80} leaves no usable file name; give letters or digits")
    return out


def check_component(part: str) -> str:
    """``part`` if it is already one harmless component (what :func:`clean_component` returns
    unchanged), else UnsafePathError."""
    if (not isinstance(part, str) or len(part) > MAX_COMPONENT_CHARS or not _SAFE.fullmatch(part)
            or part in {".", ".."}):
        raise UnsafePathError(f"path component {part!r:.80} is not allowed: only letters, digits, "
                              "'.', '_', '=' and '-', not starting with '.', at most "
                              f"{MAX_COMPONENT_CHARS} characters")
    return part


def _is_local(root: str) -> bool:
    return "://" not in root or root.startswith("file://")


def safe_join(root: str, *parts: str) -> str:
    """``root/part/part...`` after :func:`check_component` on each part; for a local root the
    resolved path must lie inside the resolved root (a symlink inside cannot lead out)."""
    for part in parts:
        check_component(part)
    path = posixpath.join(root.rstrip("/") or "/", *parts)
    if _is_local(root):
        base = os.path.realpath(root.removeprefix("file://") or "/")
        real = os.path.realpath(path.removeprefix("file://"))
        if os.path.commonpath([base, real]) != base:
            raise UnsafePathError(f"{path!r} resolves to {real!r}, outside {base!r} "
                                  "(a symbolic link inside the folder points out of it)")
    return path


def check_relative(rel: str) -> str:
    """A relative POSIX path read from data (e.g. a batch manifest): every component checked."""
    if not isinstance(rel, str) or not rel or rel.startswith("/"):
        raise UnsafePathError(f"{rel!r:.80} is not a relative path")
    for part in rel.split("/"):
        check_component(part)
    return rel
