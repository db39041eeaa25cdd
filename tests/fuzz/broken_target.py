"""A fuzz target with a planted bug, so a test can show the runner catches and saves it."""

from __future__ import annotations

from collections.abc import Iterator

CONTRACT = """
(test only) a decoder that raises KeyError, an undocumented error, for any input that starts with
the two bytes PC; the runner must report the crash, exit 1 and save the input as an artifact.
"""


def one_input(data: bytes) -> None:
    if data[:2] == b"PC":
        raise KeyError("planted: an undocumented error for input starting with PC")


def seeds() -> Iterator[bytes]:
    yield b"P"
