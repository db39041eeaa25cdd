"""A sans-IO Server-Sent Events decoder: feed it lines, get complete events back."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SseMessage", "SseDecoder", "DATA_BYTES_MAX"]

#: One event's data may not exceed this (a block event is far smaller).
DATA_BYTES_MAX = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SseMessage:
    event: str
    data: str
    id: str | None


class SseDecoder:
    """``decode(line)`` per line (without the newline); returns an :class:`SseMessage` at each blank line."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._id: str | None = None

    def decode(self, line: str) -> SseMessage | None:
        if not line:
            if not self._data and not self._event:
                return None
            message = SseMessage(
                event=self._event or "message", data="\n".join(self._data), id=self._id
            )
            self._event, self._data, self._size, self._id = "", [], 0, None
            return message
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._size += len(value)
            if self._size > DATA_BYTES_MAX:
                raise ValueError(f"an event's data exceeds {DATA_BYTES_MAX} bytes")
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None
