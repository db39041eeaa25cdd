"""Side by side on this machine: ``pilotchain bench --mode stress --json``, then the Plenum peer.

``compare(plenum_peer, ...)`` runs the two back to back (never at the same time: they share the
cores), each as a subprocess, and returns one document with both results and the ratios. The
Plenum peer (``/work/shared/peers/plenum``, read-only, works in /tmp) prints exactly one JSON line;
when it fails, the document says exactly why: its exit status, its ``error`` field and the tail
of its stderr.

Both sides commit signed writes from one client process on the same 2 cores, with every replica
on the same machine. They differ in what a transaction is (pilotchain: a kv.put, Ed25519 or SM2;
Plenum: a NYM write, Ed25519 + BLS multi-signature on batches), in how load is offered (pilotchain:
open-loop rate steps, batch HTTP submission; Plenum: closed loop with WINDOW outstanding requests
sent to all nodes over ZeroMQ) and in "committed" (pilotchain: the commit event of one node;
Plenum: f+1 REPLYs). The ratio compares sustained committed writes per second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["compare", "run_pilotchain", "run_plenum"]

STDERR_TAIL_CHARS = 4000


def _last_json_line(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                document: dict[str, Any] = json.loads(line)
                return document
            except ValueError:
                continue
    return None


def run_pilotchain(arguments: list[str], timeout_s: float) -> dict[str, Any]:
    """``pilotchain bench --mode stress --json [arguments]`` in a subprocess."""
    command = [sys.executable, "-m", "pilotchain", "bench", "--mode", "stress", "--json", *arguments]
    try:
        process = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        return {"command": command, "error": f"timed out after {timeout_s:.0f} s",
                "stderr_tail": (exc.stderr or "")[-STDERR_TAIL_CHARS:] if isinstance(exc.stderr, str) else ""}
    document = _last_json_line(process.stdout)
    if process.returncode != 0 or document is None:
        return {"command": command, "exit_status": process.returncode,
                "error": "pilotchain bench failed" if process.returncode else "no JSON on stdout",
                "stderr_tail": process.stderr[-STDERR_TAIL_CHARS:]}
    return {"command": command, "exit_status": 0, "result": document}


def run_plenum(peer: Path, duration_s: int, window: int, timeout_s: float) -> dict[str, Any]:
    """``bash PEER/run.sh DURATION WINDOW``; on failure, exactly why."""
    script = peer / "run.sh"
    command = ["bash", str(script), str(duration_s), str(window)]
    if not script.exists():
        return {"command": command, "error": f"{script} does not exist (set PLENUM_PEER to the peer folder)"}
    try:
        process = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False,
                                 env=dict(os.environ))
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return {"command": command, "error": f"timed out after {timeout_s:.0f} s", "stderr_tail": stderr[-STDERR_TAIL_CHARS:]}
    document = _last_json_line(process.stdout)
    outcome: dict[str, Any] = {"command": command, "exit_status": process.returncode}
    if document is None:
        outcome["error"] = f"run.sh printed no JSON line (exit status {process.returncode})"
    elif document.get("error") or process.returncode != 0:
        outcome["error"] = str(document.get("error") or f"exit status {process.returncode}")
        outcome["result"] = document
    else:
        outcome["result"] = document
    if "error" in outcome:
        outcome["stderr_tail"] = process.stderr[-STDERR_TAIL_CHARS:]
    return outcome


def compare(plenum_peer: Path, *, pilotchain_arguments: list[str] | None = None, plenum_duration_s: int = 30,
            plenum_window: int = 500, timeout_s: float = 3600.0) -> dict[str, Any]:
    """Run both, one after the other; the document has both results and the ratios."""
    ours = run_pilotchain(pilotchain_arguments or [], timeout_s)
    theirs = run_plenum(plenum_peer, plenum_duration_s, plenum_window, timeout_s)
    document: dict[str, Any] = {"pilotchain": ours, "plenum": theirs}
    summary = ours.get("result", {}).get("summary")
    plenum = theirs.get("result") if "error" not in theirs else None
    if summary and plenum and plenum.get("tps"):
        document["side_by_side"] = {
            "pilotchain_committed_tps": summary["committed_tps"],
            "plenum_committed_tps": plenum["tps"],
            "throughput_ratio": round(summary["committed_tps"] / plenum["tps"], 2),
            "pilotchain_latency_ms_p50_p99": [summary["latency_ms"]["p50"], summary["latency_ms"]["p99"]],
            "plenum_latency_ms_p50_p99": [plenum.get("lat_ms_p50"), plenum.get("lat_ms_p99")],
        }
    return document
