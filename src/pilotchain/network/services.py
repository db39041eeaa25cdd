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

__all__ = ["NetworkService", "OrgHttpServices", "ServiceError", "ServiceProcess", "demo_scenarios", "network_services", "start_process"]

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


@dataclass(frozen=True, slots=True)
class OrgHttpServices:
    """One HTTP service process per organisation beside a network — an explorer each, an operator's
    holder service each: in ``<home>/`` a config file (port and URL, kept across restarts), a pid
    file and a log. ``up`` gives new homes a block of consecutive free ports from ``port_base``,
    starts what is not running, waits until every ``/healthz`` answers (ServiceError naming each
    one that died or does not answer, with its log's last error) and prints the URLs; ``down``
    stops them; ``status`` gives ``network status`` rows."""

    label: str  # "explorer", "holder service"
    row_name: str  # status rows: "<row_name> <org>"
    config_file: str
    pid_file: str
    log_file: str
    port_base: int
    start_timeout_s: float = 60.0

    def url(self, home: Path) -> str:
        import json

        return str(json.loads((home / self.config_file).read_text())["url"])

    def port(self, home: Path) -> int:
        import json

        return int(json.loads((home / self.config_file).read_text())["port"])

    @staticmethod
    def answers(url: str) -> bool:
        import httpx

        try:
            return httpx.get(url.rstrip("/") + "/healthz", timeout=1.5).status_code == 200
        except httpx.HTTPError:
            return False

    def last_error(self, home: Path) -> str:
        from pilotchain.network.processes import log_error_line

        line = log_error_line(home / self.log_file)
        if line is not None:
            return line
        try:
            tail = (home / self.log_file).read_text(errors="replace").strip().splitlines()[-1:]
        except OSError:
            return "no log"
        return tail[0] if tail else "no log yet"

    def up(self, homes: dict[str, Path], argv: Any, console: Any) -> None:
        """``argv(org, port)``: the command line of ``org``'s service."""
        import json

        from pilotchain.network.processes import free_port_block, pid_of, wait_until

        base = None
        for index, home in enumerate(homes.values()):
            if (home / self.config_file).is_file():
                continue
            if base is None:
                base = free_port_block(len(homes), start=self.port_base)
            home.mkdir(parents=True, exist_ok=True)
            port = base + index
            (home / self.config_file).write_text(json.dumps({"port": port, "url": f"http://127.0.0.1:{port}/"}) + "\n")
        for org, home in homes.items():
            if pid_of(home / self.pid_file) is None:
                start_process(ServiceProcess(home=home, argv=tuple(argv(org, self.port(home))),
                                             pid_file=self.pid_file, log_file=self.log_file))
        with console.status(f"waiting for every {self.label} to serve…"):
            ready = wait_until(lambda: all(self.answers(self.url(home)) for home in homes.values()),
                               timeout_s=self.start_timeout_s, interval_s=0.3)
        if not ready:
            problems = [f"{org}'s {self.label} " + ("died: " if pid_of(home / self.pid_file) is None
                                                    else "does not answer: ") + self.last_error(home)
                        for org, home in homes.items() if not self.answers(self.url(home))]
            folders = sorted({str(home.parent) for home in homes.values()})
            raise ServiceError("; ".join(problems) + f"; logs in {', '.join(folders)}/*/{self.log_file}")
        for org, home in homes.items():
            console.print(f"{self.label} of {org}: {self.url(home)} (logs in {home / self.log_file})")

    def down(self, homes: dict[str, Path], console: Any) -> None:
        from pilotchain.network.processes import stop_pid_file

        for org, home in homes.items():
            if (home / self.config_file).is_file():
                console.print(f"{self.label} of {org}: {stop_pid_file(home / self.pid_file)}")

    def status(self, homes: dict[str, Path]) -> list[dict[str, Any]]:
        from pilotchain.network.processes import pid_of

        rows = []
        for org, home in homes.items():
            if not (home / self.config_file).is_file():
                continue
            alive = pid_of(home / self.pid_file, forget_stale=False) is not None
            serving = alive and self.answers(self.url(home))
            rows.append({"name": f"{self.row_name} {org}", "url": self.url(home), "up": serving,
                         "detail": "serving" if serving else ("not answering" if alive else "not running")})
        return rows
