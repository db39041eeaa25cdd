"""Where benchmark results go: bench/results/<kind>-<UTC time>-<commit>.json, with the machine."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit(repo: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=repo, timeout=10, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=repo, timeout=10, check=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def results_dir() -> Path:
    """bench/results under the repository when run from a checkout, else ./bench-results."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "bench").is_dir():
            return parent / "bench" / "results"
    return Path.cwd() / "bench-results"


def record(kind: str, payload: dict[str, Any], directory: Path | None = None) -> Path:
    """Write one result file and return its path."""
    directory = directory or results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.UTC)
    commit = git_commit(directory)
    document = {
        "kind": kind,
        "time_utc": now.isoformat(timespec="seconds"),
        "commit": commit,
        "machine": machine_info(),
        "results": payload,
    }
    path = directory / f"{kind}-{now.strftime('%Y%m%dT%H%M%SZ')}-{commit}.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path
