"""Crash safety by experiment: injected crash points, torn segment tails, and a real kill -9.

After every crash the store is reopened and compared with an independent replay of the same
deterministic workload (:mod:`.workload`): height h or h+1, every block, index, certificate,
value and proof, and it must keep committing.
"""

from __future__ import annotations

import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotchain.storage import CRASH_POINTS, CrashInjected, StorageCorrupted, StoreClosed
from pilotchain.storage.segments import HEADER_BYTES, frame_record

from .conftest import SMALL_LIMITS, open_store
from .workload import block_for, check_against_workload, commit_next

WORKLOAD_SCRIPT = Path(__file__).with_name("workload.py")


def first_rollover_height() -> int:
    """The first height whose record starts a new segment file."""
    end = 0
    for height in range(10_000):
        size = HEADER_BYTES + len(block_for(height)[1])
        if end > 0 and end + size > SMALL_LIMITS.segment_bytes_max:
            return height
        end += size
    raise AssertionError("no roll-over within 10,000 blocks")


def segment_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path / "blocks").glob("*.seg"))


@pytest.mark.parametrize("point", CRASH_POINTS)
@pytest.mark.parametrize("where", ["genesis", "same-segment", "new-segment"])
def test_injected_crash_recovers_to_h_or_h_plus_1(tmp_path: Path, point: str, where: str) -> None:
    crash_height = {"genesis": 0, "same-segment": 4, "new-segment": first_rollover_height()}[where]
    store = open_store(tmp_path)
    while store.height < crash_height - 1:
        commit_next(store)
    before = segment_bytes(tmp_path)
    store._crash_at = point
    with pytest.raises(CrashInjected):
        commit_next(store)
    with pytest.raises(StoreClosed):
        store.get_block(0)  # a crashed store is dead until reopened
    if point in ("after_append", "after_segment_fsync", "before_lmdb_commit"):
        assert segment_bytes(tmp_path) > before  # an unindexed record is on disk
    store.close()

    store = open_store(tmp_path)
    expected = crash_height if point == "after_lmdb_commit" else crash_height - 1
    assert store.height == expected
    if point != "after_lmdb_commit":
        assert segment_bytes(tmp_path) == before  # the unindexed tail was cut off
    check_against_workload(store)
    for _ in range(3):
        commit_next(store)
    check_against_workload(store)
    store.close()


@pytest.fixture(scope="module")
def base_store_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="pilotchain-torn-"))
    store = open_store(directory / "node")
    for _ in range(5):
        commit_next(store)
    store.close()
    yield directory / "node"  # type: ignore[misc]
    shutil.rmtree(directory)


def last_segment(path: Path) -> Path:
    return max((path / "blocks").glob("*.seg"))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["garbage", "next-record-prefix"]),
    length=st.integers(min_value=1, max_value=4000),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_torn_tail_after_last_commit_is_truncated(
    base_store_dir: Path, kind: str, length: int, seed: int
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "node"
        shutil.copytree(base_store_dir, path)
        segment = last_segment(path)
        committed_size = segment.stat().st_size
        if kind == "garbage":
            tail = random.Random(seed).randbytes(length)
        else:
            record = frame_record(5, block_for(5)[1])
            tail = record[: min(length, len(record))]  # up to a whole, never-indexed record
        with segment.open("ab") as file:
            file.write(tail)
        store = open_store(path)
        assert store.height == 4
        assert segment.stat().st_size == committed_size
        check_against_workload(store)
        commit_next(store)
        check_against_workload(store)
        store.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damage_inside_the_last_committed_record_is_corruption(
    base_store_dir: Path, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "node"
        shutil.copytree(base_store_dir, path)
        segment = last_segment(path)
        size = segment.stat().st_size
        record_bytes = HEADER_BYTES + len(block_for(4)[1])
        offset = data.draw(st.integers(min_value=size - record_bytes, max_value=size - 1))
        if data.draw(st.booleans()):
            os.truncate(segment, offset)  # fsynced bytes lost
        else:
            with segment.open("r+b") as file:
                file.seek(offset)
                byte = file.read(1)[0]
                file.seek(offset)
                file.write(bytes([byte ^ (1 << data.draw(st.integers(0, 7)))]))
        with pytest.raises(StorageCorrupted):
            open_store(path)


def read_lines_until(
    process: subprocess.Popen[bytes], done: Callable[[list[str]], bool], deadline_s: float
) -> list[str]:
    """Lines the child printed, until ``done(lines)`` (bounded by a deadline, no sleeping)."""
    assert process.stdout is not None
    lines: list[str] = []
    buffer = b""
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + deadline_s
    try:
        while not done(lines):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"child made no progress in {deadline_s}s: {lines[-3:]}"
            if not selector.select(timeout=remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            assert chunk, f"child exited early ({process.wait()}): {lines[-3:]}"
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            lines.extend(line.decode() for line in complete)
    finally:
        selector.close()
    return lines


def kill_condition(heights_min: int, point: str) -> Callable[[list[str]], bool]:
    """Done once ``heights_min`` commits were reported and a later commit passed ``point``."""

    def done(lines: list[str]) -> bool:
        committed = sum(1 for line in lines if line.isdigit())
        return committed >= heights_min and bool(lines) and lines[-1].startswith(point + " ")

    return done


def test_kill_9_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(20261129)
    path = tmp_path / "node"
    last_reported = -1
    points = list(CRASH_POINTS)
    rng.shuffle(points)
    outcomes: list[tuple[str, int]] = []  # (aimed point, reopened height - in-flight height)
    for point in points:
        process = subprocess.Popen(
            [sys.executable, str(WORKLOAD_SCRIPT), str(path), "100000", "trace"],
            stdout=subprocess.PIPE,
        )
        try:
            condition = kill_condition(rng.randrange(0, 12), point)
            lines = read_lines_until(process, condition, deadline_s=60.0)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
            assert process.stdout is not None
            process.stdout.close()
        assert process.returncode == -signal.SIGKILL
        opened_at = int(lines[0].split()[1])
        assert opened_at >= last_reported  # nothing reported committed was ever lost
        reported = [int(line) for line in lines if line.isdigit()]
        last_reported = max(reported, default=opened_at)
        in_flight = int(lines[-1].split()[1])
        store = open_store(path)
        assert store.height >= max(last_reported, in_flight - 1)
        outcomes.append((point, store.height - in_flight))
        check_against_workload(store)
        store.close()
    print("kill -9 outcomes:", outcomes)
    store = open_store(path)
    commit_next(store)
    check_against_workload(store)
    store.close()
