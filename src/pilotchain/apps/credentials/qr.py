"""QR codes for presentations (segno): a presentation's QR text (``Presentation.to_qr_text``:
``PC1:`` + Base45 of the compressed credential) in alphanumeric mode, error correction M (15 %
of the symbol may be damaged). A presentation of four claims is about 1,900 characters: a
version 30-31 symbol, scanned from a screen or an A5 print. Verifying reads the text a scanner
gives (``pilotchain credential verify -``)."""

from __future__ import annotations

from pathlib import Path

import segno

__all__ = ["ERROR_LEVEL", "make_qr", "terminal_qr", "write_qr"]

ERROR_LEVEL = "m"


def make_qr(content: str) -> segno.QRCode:
    return segno.make(content, error=ERROR_LEVEL, micro=False, boost_error=False)


def write_qr(content: str, path: Path, *, scale: int = 4) -> int:
    """Write the QR code as PNG or SVG (by the file's extension); its version."""
    if path.suffix.lower() not in (".png", ".svg"):
        raise ValueError("a QR code file ends in .png or .svg")
    code = make_qr(content)
    code.save(str(path), scale=scale, border=4)
    return int(code.version)


def terminal_qr(content: str) -> None:
    """Print the QR code with half-block characters (needs a terminal about 80 columns wide)."""
    make_qr(content).terminal(compact=True)
