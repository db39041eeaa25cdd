"""The explorers beside a local network: ``network up`` starts one explorer per organisation
(``pilotchain explorer --network DIR --org ORG``, each reading as its organisation's client
identity) in ``<network>/explorers/<org>/`` and prints their URLs; ``network down`` stops them;
``network status`` shows them. Declared in ``pyproject.toml`` under ``pilotchain.network_services``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pilotchain.network.consortium import load_manifest
from pilotchain.network.services import OrgHttpServices

__all__ = ["explorer_homes", "service"]

CONFIG_FILE = "explorer.json"
PID_FILE = "explorer.pid"
LOG_FILE = "explorer.log"
#: the first port tried for the explorers (one per organisation, consecutive free ports)
EXPLORER_PORT_BASE = 26900
START_TIMEOUT_S = 60.0

_PROCESSES = OrgHttpServices(label="explorer", row_name="explorer", config_file=CONFIG_FILE, pid_file=PID_FILE,
                             log_file=LOG_FILE, port_base=EXPLORER_PORT_BASE, start_timeout_s=START_TIMEOUT_S)


def explorer_homes(directory: Path) -> dict[str, Path]:
    return {org["org"]: directory / "explorers" / org["org"] for org in load_manifest(directory)["organizations"]}


class ExplorerService:
    name = "explorer"

    def up(self, directory: Path, console: Any) -> None:
        network = str(directory.resolve())
        _PROCESSES.up(explorer_homes(directory), lambda org, port: (
            sys.executable, "-m", "pilotchain", "explorer", "--network", network, "--org", org, "--port", str(port)),
            console)

    def down(self, directory: Path, console: Any) -> None:
        _PROCESSES.down(explorer_homes(directory), console)

    def status(self, directory: Path) -> list[dict[str, Any]]:
        return _PROCESSES.status(explorer_homes(directory))


service = ExplorerService()
