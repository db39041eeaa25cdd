"""The QR code of a retirement statement (segno): ``PCGC1:<SHA-256 of the evidence bundle>:<retirement
id>`` — about 90 characters, a version 5-6 symbol at error correction M (15 % of it may be damaged),
printable on a report next to the retirement."""

from __future__ import annotations

from pathlib import Path

import segno

__all__ = ["make_qr", "write_qr"]


def make_qr(content: str) -> segno.QRCode:
    return segno.make(content, error="m", micro=False, boost_error=False)


def write_qr(content: str, path: Path, *, scale: int = 6) -> int:
    """Write the QR code (PNG or SVG, by extension); its version."""
    code = make_qr(content)
    code.save(str(path), scale=scale, border=4)
    return int(code.version)
