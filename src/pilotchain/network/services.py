"""Services that applications run beside a local network (a data-exchange vault per organisation,
an explorer), found through the ``pilotchain.network_services`` entry-point group.

The platform never imports an application: ``network up`` / ``down`` / ``status`` and the demo
call whatever installed applications declare. A service is an object with::

    name: str
    up(directory: Path, console: Console) -> None      start after the chain commits; raise
                                                      ServiceError with what to do if it cannot
    down(directory: Path, console: Console) -> None    stop
    status(directory: Path) -> list[dict]              rows: name, url, up (bool), detail

Demo stories are separate (``pilotchain.demo_scenarios``: name -> ``callable(directory, console)``):
``pilotchain demo --scenario NAME`` runs one after the services are up; by default all run.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pilotchain.errors import CoreError

__all__ = ["NetworkService", "ServiceError", "ServiceProcess", "demo_scenarios", "network_services", "start_process"]

ENTRY_POINT_GROUP = "pilotchain.network_services"
#: applications' stories for `pilotchain demo` (name -> callable(directory, console)), run after
#: the services are up: `--scenario NAME` picks one, by default every one runs
SCENARIO_GROUP = "pilotchain.demo_scenarios"


class ServiceError(CoreError):
    """A service could not start (the message says what to do)."""


class NetworkService(Protocol):
    name: str

    def up(self, directory: Path, console: Any) -> None: ...

    def down(self, directory: Path, console: Any) -> None: ...

    def status(self, directory: Path) -> list[dict[str, Any]]: ...


def network_services() -> list[NetworkService]:
    """The installed applications' services, by name; one that fails to load is skipped with a
    warning on stderr (the network itself keeps working)."""
    from importlib.metadata import entry_points

    found = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            found.append(entry.load())
        except Exception as exc:  # noqa: BLE001 - a broken application must not stop the network
            print(f"warning: the {entry.name!r} service did not load ({exc})", file=sys.stderr)
    return found


def demo_scenarios() -> dict[str, Any]:
    """The installed applications' demo stories by name (one that fails to load is skipped)."""
    from importlib.metadata import entry_points

    found: dict[str, Any] = {}
    for entry in sorted(entry_points(group=SCENARIO_GROUP), key=lambda e: e.name):
        try:
            found[entry.name] = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken application must not stop the demo
            print(f"warning: the {entry.name!r} demo scenario did not load ({exc})", file=sys.stderr)
    return found


@dataclass(frozen=True, slots=True)
class ServiceProcess:
    """A background process with a pid file and a log in ``home``."""

    home: Path
    argv: tuple[str, ...]
    pid_file: str
    log_file: str


def start_process(service: ServiceProcess, *, extra_env: dict[str, str] | None = None) -> int:
    """Start ``service`` in its own session (Ctrl-C in the terminal does not reach it); its pid."""
    log = open(service.home / service.log_file, "ab")  # noqa: SIM115 - handed to the child
    env = dict(os.environ)
    env.update(extra_env or {})
    try:
        process = subprocess.Popen(list(service.argv), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    finally:
        log.close()
    with contextlib.suppress(OSError):
        (service.home / service.pid_file).write_text(f"{process.pid}\n")
    return process.pid
