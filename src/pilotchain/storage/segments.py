"""Append-only segment files of framed block records.

Theory of operation
-------------------
Blocks live in numbered segment files ``<dir>/00000000.seg``, ``00000001.seg``, ... Each record
is framed as::

    magic  4 bytes   b"PCB\\x01"
    height 8 bytes   unsigned big-endian
    length 4 bytes   unsigned big-endian, payload size
    crc    4 bytes   CRC-32 (zlib) over magic || height || length || payload
    payload          the opaque block bytes

A record never spans two files; a new segment starts when the next record would push the current
one past ``segment_bytes_max`` (a single record larger than that still gets a segment of its
own). :meth:`SegmentLog.append` writes the record at the current end with ``pwrite`` and fsyncs
the file (and the directory when it created a new file) before returning its location; on any
error it truncates the file back, so a failed append leaves nothing behind.

This module knows nothing about which records are committed: the LMDB index is authoritative.
On open, :meth:`SegmentLog.recover` is told where the last *indexed* record lives; it deletes
segment files after it, truncates everything past its end (torn writes, or whole records whose
index transaction never committed), and checks that record's frame and CRC.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from pilotchain.codec import Record
from pilotchain.errors import InvariantBroken
from pilotchain.storage.errors import StorageCorrupted, StorageError, StorageFull

__all__ = ["SegmentLog", "BlockLocation", "HEADER_BYTES", "MAGIC", "frame_record"]

MAGIC = b"PCB\x01"
_HEADER = struct.Struct(">4sQII")
HEADER_BYTES = _HEADER.size
#: Segment files kept open for reading at once (besides the one being written).
READ_FDS_MAX = 16
#: Largest payload the 4-byte length field can frame.
PAYLOAD_BYTES_LIMIT = 2**31

FaultHook = Callable[[str], None]


class BlockLocation(Record, frozen=True):
    """Where one block's record lives; stored in the LMDB height index."""

    segment: int
    offset: int
    #: payload length (the record is HEADER_BYTES longer)
    length: int
    block_hash: bytes

    @property
    def end(self) -> int:
        return self.offset + HEADER_BYTES + self.length


def frame_record(height: int, payload: bytes) -> bytes:
    """The framed record for ``payload`` at ``height``."""
    if not (0 <= height < 2**64):
        raise InvariantBroken('invariant broken: 0 <= height < 2**64')
    if not (len(payload) < PAYLOAD_BYTES_LIMIT):
        raise InvariantBroken('invariant broken: len(payload) < PAYLOAD_BYTES_LIMIT')
    prefix = _HEADER.pack(MAGIC, height, len(payload), 0)[:-4]
    crc = zlib.crc32(payload, zlib.crc32(prefix))
    return prefix + struct.pack(">I", crc) + payload


def _segment_name(segment: int) -> str:
    return f"{segment:08d}.seg"


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        if not (written > 0):
            raise InvariantBroken('invariant broken: written > 0')
        data = data[written:]
        offset += written


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentLog:
    """The segment files of one store. Not thread-safe: the owning LedgerStore serialises."""

    def __init__(self, directory: Path, segment_bytes_max: int, *, durable: bool = True) -> None:
        if segment_bytes_max <= HEADER_BYTES:
            raise ValueError(f"segment_bytes_max must exceed the {HEADER_BYTES}-byte record header")
        self.directory = directory
        #: False (the simulator only): appends are not fsynced
        self.durable = durable
        self.segment_bytes_max = segment_bytes_max
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment = 0
        self.end = 0
        self._write_fd: int | None = None
        self._read_fds: dict[int, int] = {}
        # the state before the last append, until confirm_append() or undo_append()
        self._pending: tuple[tuple[int, int, int], bool] | None = None

    # -- opening ---------------------------------------------------------------------------

    def existing_segments(self) -> list[int]:
        found = []
        for path in self.directory.iterdir():
            if path.suffix == ".seg" and path.stem.isdigit() and len(path.stem) == 8:
                found.append(int(path.stem))
        return sorted(found)

    def recover(self, last: BlockLocation | None, last_height: int) -> int:
        """Cut the files back to the end of ``last`` (None: no block). Returns bytes removed."""
        keep_segment = 0 if last is None else last.segment
        keep_end = 0 if last is None else last.end
        removed = 0
        existing = self.existing_segments()
        for segment in existing:
            if segment > keep_segment:
                path = self.directory / _segment_name(segment)
                removed += path.stat().st_size
                path.unlink()
        missing = [s for s in range(keep_segment) if s not in existing]
        if missing:
            raise StorageCorrupted(f"segment files {missing} are missing from {self.directory}")
        path = self.directory / _segment_name(keep_segment)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size < keep_end:
                raise StorageCorrupted(
                    f"{path} has {size} bytes but the index says block {last_height} ends at "
                    f"{keep_end}: fsynced block data was lost"
                )
            if size > keep_end:
                os.ftruncate(fd, keep_end)
                removed += size - keep_end
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        _fsync_directory(self.directory)
        self.segment = keep_segment
        self.end = keep_end
        self._write_fd = fd
        if last is not None:
            self.read(last, last_height)  # checks the frame and CRC of the last record
        return removed

    # -- writing ---------------------------------------------------------------------------

    def append(self, height: int, payload: bytes, fault: FaultHook) -> BlockLocation:
        """Write and fsync one record; return where it is. Leaves nothing behind on error.

        ``fault`` is called at the named crash points (a no-op outside tests).
        """
        if not (self._write_fd is not None):
            raise InvariantBroken("recover() must run before append()")
        record = frame_record(height, payload)
        rolled_over = self.end > 0 and self.end + len(record) > self.segment_bytes_max
        previous = (self.segment, self.end, self._write_fd)
        fault("before_append")
        try:
            if rolled_over:
                self._start_segment(self.segment + 1)
            fd = self._write_fd
            offset = self.end
            view = memoryview(record)
            half = len(record) // 2
            _write_all(fd, view[:half], offset)
            fault("mid_append")
            _write_all(fd, view[half:], offset + half)
            fault("after_append")
            if self.durable:
                os.fsync(fd)
            fault("after_segment_fsync")
        except OSError as exc:
            self._roll_back(previous, rolled_over)
            if exc.errno == errno.ENOSPC:
                raise StorageFull(f"no space left writing block {height}: {exc}") from exc
            raise StorageError(f"cannot write block {height} to {self.directory}: {exc}") from exc
        location = BlockLocation(self.segment, offset, len(payload), b"")
        self._pending = (previous, rolled_over)
        self.end = offset + len(record)
        return location

    def confirm_append(self) -> None:
        """The last :meth:`append` is indexed: forget how to undo it."""
        if not (self._pending is not None):
            raise InvariantBroken('invariant broken: self._pending is not None')
        (segment, _, fd), rolled_over = self._pending
        self._pending = None
        if rolled_over:
            self._cache_read_fd(segment, fd)

    def undo_append(self) -> None:
        """Remove the record written by the last :meth:`append` (its index did not commit)."""
        if not (self._pending is not None):
            raise InvariantBroken('invariant broken: self._pending is not None')
        previous, rolled_over = self._pending
        self._pending = None
        self._roll_back(previous, rolled_over)

    def _start_segment(self, segment: int) -> None:
        path = self.directory / _segment_name(segment)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _fsync_directory(self.directory)
        except BaseException:
            os.close(fd)
            raise
        self.segment = segment
        self.end = 0
        self._write_fd = fd

    def _roll_back(self, previous: tuple[int, int, int], rolled_over: bool) -> None:
        segment, end, fd = previous
        if rolled_over and self._write_fd is not None and self._write_fd != fd:
            os.close(self._write_fd)
            with contextlib.suppress(FileNotFoundError):
                (self.directory / _segment_name(segment + 1)).unlink()
        os.ftruncate(fd, end)
        self.segment, self.end, self._write_fd = segment, end, fd

    # -- reading ---------------------------------------------------------------------------

    def _fd_for(self, segment: int) -> int:
        if segment == self.segment and self._write_fd is not None:
            return self._write_fd
        fd = self._read_fds.get(segment)
        if fd is None:
            try:
                fd = os.open(self.directory / _segment_name(segment), os.O_RDONLY)
            except FileNotFoundError as exc:
                raise StorageCorrupted(f"segment file {segment} is missing") from exc
            self._cache_read_fd(segment, fd)
        return fd

    def _cache_read_fd(self, segment: int, fd: int) -> None:
        if len(self._read_fds) >= READ_FDS_MAX:
            oldest = next(iter(self._read_fds))
            os.close(self._read_fds.pop(oldest))
        self._read_fds[segment] = fd

    def read(self, location: BlockLocation, height: int) -> bytes:
        """The payload at ``location``, after checking its frame and CRC."""
        fd = self._fd_for(location.segment)
        size = HEADER_BYTES + location.length
        data = os.pread(fd, size, location.offset)
        where = f"block {height} (segment {location.segment}, offset {location.offset})"
        if len(data) != size:
            raise StorageCorrupted(f"{where}: record truncated ({len(data)} of {size} bytes)")
        magic, stored_height, length, crc = _HEADER.unpack_from(data)
        if magic != MAGIC or stored_height != height or length != location.length:
            raise StorageCorrupted(
                f"{where}: bad frame (magic {magic!r}, height {stored_height}, length {length})"
            )
        payload = data[HEADER_BYTES:]
        if zlib.crc32(payload, zlib.crc32(data[: HEADER_BYTES - 4])) != crc:
            raise StorageCorrupted(f"{where}: CRC mismatch")
        return payload

    def close(self) -> None:
        for fd in self._read_fds.values():
            os.close(fd)
        self._read_fds.clear()
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
