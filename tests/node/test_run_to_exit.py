"""A node's exit code survives a loop that cannot close: at a memory limit, closing the loop joins
its executor, which needs a new thread — the node has already stopped with its code (3 after a
failure), and a supervisor must see that code, not a traceback's 1."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pilotchain.node.daemon import run_to_exit


async def _used_the_executor_then(code: int) -> int:
    await asyncio.get_running_loop().run_in_executor(None, lambda: None)
    return code


def test_the_exit_code_stands_when_no_thread_can_start_at_close(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    async def coroutine() -> int:
        code = await _used_the_executor_then(3)
        monkeypatch.setattr(threading.Thread, "start", no_thread)  # from here on, as at the limit
        return code

    assert run_to_exit(coroutine()) == 3
    monkeypatch.undo()
    assert run_to_exit(_used_the_executor_then(0)) == 0


def test_an_error_in_the_node_still_raises() -> None:
    async def broken() -> int:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        run_to_exit(broken())
