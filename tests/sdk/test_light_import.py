"""`import pilotchain.sdk` brings no server: no LMDB, FastAPI/Starlette/uvicorn, store, node or
gateway (checked in a fresh interpreter, so no other test's imports can hide a regression)."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_MODULES = ("lmdb", "fastapi", "starlette", "uvicorn", "prometheus_client", "pilotchain.storage",
                  "pilotchain.node", "pilotchain.gateway", "pilotchain.network", "pilotchain.p2p",
                  "pilotchain.contracts", "pilotchain.testing")

_PROBE = (
    "import json, sys\n"
    "import pilotchain.sdk\n"
    "from pilotchain.sdk import Client, AsyncClient, Identity\n"
    "print(json.dumps(sorted(sys.modules)))\n"
)


def _modules_after(code: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_the_sdk_imports_no_server_module() -> None:
    loaded = _modules_after(_PROBE)
    assert "pilotchain.sdk" in loaded and "httpx" in loaded
    leaked = [name for name in loaded if any(name == banned or name.startswith(banned + ".") for banned in SERVER_MODULES)]
    assert leaked == []


def test_the_probe_would_see_a_server_module() -> None:
    loaded = _modules_after(_PROBE.replace("import pilotchain.sdk\n", "import pilotchain.sdk\nimport pilotchain.testing\n"))
    assert {"lmdb", "fastapi", "pilotchain.storage", "pilotchain.node", "pilotchain.gateway"} <= set(loaded)
