"""The explorers beside a local network: ``network up`` starts one explorer per organisation
(``pilotchain explorer --network DIR --org ORG``, each reading as its organisation's client
identity) in ``<network>/explorers/<org>/`` and prints their URLs; ``network down`` stops them;
``network status`` shows them. Declared in ``pyproject.toml`` under ``pilotchain.network_services``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx

from pilotchain.network.consortium import load_manifest
from pilotchain.network.processes import (
    free_port_block,
    log_error_line,
    pid_of,
    stop_pid_file,
    wait_until,
)
from pilotchain.network.services import ServiceError, ServiceProcess, start_process

__all__ = ["explorer_homes", "service"]

CONFIG_FILE = "explorer.json"
PID_FILE = "explorer.pid"
LOG_FILE = "explorer.log"
#: the first port tried for the explorers (one per organisation, consecutive free ports)
EXPLORER_PORT_BASE = 26900
START_TIMEOUT_S = 60.0


def explorer_homes(directory: Path) -> dict[str, Path]:
    return {org["org"]: directory / "explorers" / org["org"] for org in load_manifest(directory)["organizations"]}


def _url(home: Path) -> str:
    return str(json.loads((home / CONFIG_FILE).read_text())["url"])


def _process(directory: Path, org: str, home: Path) -> ServiceProcess:
    port = int(json.loads((home / CONFIG_FILE).read_text())["port"])
    argv = (sys.executable, "-m", "pilotchain", "explorer", "--network", str(directory.resolve()), "--org", org,
            "--port", str(port))
    return ServiceProcess(home=home, argv=argv, pid_file=PID_FILE, log_file=LOG_FILE)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/healthz", timeout=1.5).status_code == 200
    except httpx.HTTPError:
        return False


def _last_error(home: Path) -> str:
    line = log_error_line(home / LOG_FILE)
    if line is not None:
        return line
    try:
        tail = (home / LOG_FILE).read_text(errors="replace").strip().splitlines()[-1:]
    except OSError:
        return "no log"
    return tail[0] if tail else "no log yet"


class ExplorerService:
    name = "explorer"

    def up(self, directory: Path, console: Any) -> None:
        homes = explorer_homes(directory)
        base = None
        for index, home in enumerate(homes.values()):
            if (home / CONFIG_FILE).is_file():
                continue
            if base is None:
                base = free_port_block(len(homes), start=EXPLORER_PORT_BASE)
            home.mkdir(parents=True, exist_ok=True)
            port = base + index
            (home / CONFIG_FILE).write_text(json.dumps({"port": port, "url": f"http://127.0.0.1:{port}/"}) + "\n")
        for org, home in homes.items():
            if pid_of(home / PID_FILE) is None:
                start_process(_process(directory, org, home))
        with console.status("waiting for every explorer to serve…"):
            ready = wait_until(lambda: all(_healthy(_url(home)) for home in homes.values()),
                               timeout_s=START_TIMEOUT_S, interval_s=0.3)
        if not ready:
            problems = [f"{org}'s explorer " + ("died: " if pid_of(home / PID_FILE) is None else "does not answer: ")
                        + _last_error(home) for org, home in homes.items() if not _healthy(_url(home))]
            raise ServiceError("; ".join(problems) + f"; logs in {directory}/explorers/*/{LOG_FILE}")
        for org, home in homes.items():
            console.print(f"explorer of {org}: {_url(home)} (logs in {home / LOG_FILE})")

    def down(self, directory: Path, console: Any) -> None:
        for org, home in explorer_homes(directory).items():
            if (home / CONFIG_FILE).is_file():
                console.print(f"explorer of {org}: {stop_pid_file(home / PID_FILE)}")

    def status(self, directory: Path) -> list[dict[str, Any]]:
        rows = []
        for org, home in explorer_homes(directory).items():
            if not (home / CONFIG_FILE).is_file():
                continue
            alive = pid_of(home / PID_FILE, forget_stale=False) is not None
            healthy = alive and _healthy(_url(home))
            rows.append({"name": f"explorer {org}", "url": _url(home), "up": healthy,
                         "detail": "serving" if healthy else ("not answering" if alive else "not running")})
        return rows


service = ExplorerService()
