"""A pid file names a live process, or nothing: a process that has exited counts as gone even while
it waits to be reaped by a parent that is not us (a node `network up` started is init's child once
`up` exits; an init that reaps lazily made every `network down` wait seconds per process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pilotchain.network.processes import _is_zombie, pid_of, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")

#: forks a child that exits at once and is never reaped by this parent; prints the child's pid
_PARENT = """
import os, sys
child = os.fork()
if child == 0:
    os._exit(0)
print(child, flush=True)
sys.stdin.read()
"""


def test_someone_elses_zombie_is_gone_and_a_live_process_is_not(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert wait_until(lambda: _is_zombie(child), timeout_s=10)
        zombie_file, live_file = tmp_path / "zombie.pid", tmp_path / "live.pid"
        zombie_file.write_text(f"{child}\n")
        live_file.write_text(f"{parent.pid}\n")
        assert pid_of(live_file) == parent.pid and live_file.exists()
        assert not _is_zombie(parent.pid)
        assert pid_of(zombie_file, forget_stale=False) is None and zombie_file.exists()
        assert pid_of(zombie_file) is None and not zombie_file.exists()
    finally:
        parent.kill()
        parent.communicate()


def test_a_process_whose_name_holds_a_parenthesis_and_a_z_is_read_right(tmp_path: Path) -> None:
    # /proc/<pid>/stat puts the command name (the executable's file name) in parentheses; the state
    # follows the last ")". Named "a) Z (b", a live process reads "... (a) Z (b) S ..."
    named = tmp_path / "a) Z (b"
    named.symlink_to(Path(sys.executable).resolve())
    process = subprocess.Popen([str(named), "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert wait_until(lambda: ") Z (" in Path(f"/proc/{process.pid}/stat").read_text(), timeout_s=10)
        assert not _is_zombie(process.pid)
    finally:
        process.kill()
        process.wait()
    assert not _is_zombie(process.pid)  # reaped: no /proc entry at all
