"""Which transfer syntaxes the installed decoders can handle (pydicom + pylibjpeg plugins).

``require_decoder`` is called before any pixel read so that an unsupported syntax fails with a
message naming it (and what would fix it), instead of a decoder traceback halfway through.
"""

from __future__ import annotations

from functools import lru_cache

from pydicom.uid import UID

from vertfrac_core.errors import UnsupportedTransferSyntaxError


@lru_cache(maxsize=64)
def decoder_status(transfer_syntax_uid: str) -> tuple[bool, str]:
    """(available, detail) for a transfer syntax UID; never raises.

    ``detail`` names the syntax and, when unavailable, the packages that would provide it.
    """
    from pydicom.pixels import get_decoder

    uid = UID(transfer_syntax_uid or "")
    name = f"{uid.name} ({uid})" if uid else "(no transfer syntax)"
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        return False, f"{name}: no pixel data decoder exists for it in pydicom or pylibjpeg"
    except Exception as err:  # noqa: BLE001 - unknown or malformed UID
        return False, f"{name}: not a known transfer syntax ({err})"
    if decoder.is_available:
        return True, f"{name}: decoded by {', '.join(decoder.available_plugins) or 'pydicom'}"
    missing = "; ".join(decoder.missing_dependencies)
    return False, f"{name}: no installed decoder plugin ({missing or 'install pylibjpeg plugins'})"


def is_available(transfer_syntax_uid: str) -> bool:
    """True if an installed decoder handles this transfer syntax."""
    return decoder_status(transfer_syntax_uid)[0]


def require_decoder(transfer_syntax_uid: str, source: str = "") -> None:
    """Raise ``UnsupportedTransferSyntaxError`` (naming the syntax) if nothing can decode it."""
    ok, detail = decoder_status(transfer_syntax_uid)
    if not ok:
        where = f" in {source}" if source else ""
        raise UnsupportedTransferSyntaxError(
            f"Cannot decode pixel data{where}: {detail}. Convert the series to an uncompressed or "
            "JPEG 2000 / JPEG-LS / RLE transfer syntax (e.g. with dcmdjpeg or gdcmconv --raw)."
        )
