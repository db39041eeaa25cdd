"""Issuance and offline-verification throughput of diplomas, on a real 4-validator network.

    .venv/bin/python -m pilotchain.apps.credentials.bench [--suite intl|gm] [--rounds 3] [--json]

Per round, on a fresh ``network init`` / ``network up`` (4 validators as separate processes, the
``credentials`` contract activated through governance):

* **issuance** of a class of 500: signing alone (500 SD-JWT VCs, salts and decoys, the Merkle
  tree and every inclusion proof: ``diploma.issue_batch``) and end to end (``IssuerHome.issue``:
  random status indices, signing, the anchoring transaction submitted and committed by the
  validators, the register written) — diplomas per second;
* a **snapshot** of the issuer from a validator (every read proven), its size and time;
* **offline verification**: checking the snapshot against genesis once, then every one of the
  500 presentations (name, degree, year disclosed) against it — verifications per second — and
  the same with the snapshot checked anew for each presentation (what one ``pilotchain
  credential verify`` does, less the interpreter's start).

Medians over the rounds are printed (and the machine's load, which moves them).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pilotchain.apps.credentials.chain import contract_code, export_snapshot
from pilotchain.apps.credentials.diploma import Presentation, disclosure_names, issue_batch
from pilotchain.apps.credentials.issuer import create_issuer
from pilotchain.apps.credentials.network import class_roll, deploy_contract
from pilotchain.apps.credentials.sdjwt import select_disclosures
from pilotchain.apps.credentials.snapshot import verify_snapshot
from pilotchain.apps.credentials.verify import verify_presentation
from pilotchain.network.consortium import init_network, load_genesis, load_manifest, parse_orgs
from pilotchain.network.processes import EPHEMERAL_PORT_MIN, free_port_block
from pilotchain.sdk import Client, Identity
from pilotchain.sdk._network import load_network

CLASS_SIZE = 500
RESNAPSHOT_SAMPLE = 50


class _Quiet:
    def print(self, *args: Any, **kwargs: Any) -> None:
        return None


def _network(directory: Path, suite: str) -> None:
    base = free_port_block(10, start=random.randrange(21_000, 31_000), stop=EPHEMERAL_PORT_MIN)
    init_network(directory, suite_name=suite, orgs=parse_orgs("bank,university,hospital"), validators=4,
                 base_port=base, now_ms=int(time.time() * 1000))
    started = subprocess.run([sys.executable, "-m", "pilotchain", "network", "up", "--dir", str(directory),
                              "--no-services", "--timeout", "120"], capture_output=True, text=True, timeout=300)
    if started.returncode != 0:
        raise RuntimeError(f"network up failed: {started.stdout}{started.stderr}")
    deploy_contract(directory, _Quiet())


def one_round(directory: Path, suite: str) -> dict[str, float]:
    _network(directory, suite)
    try:
        manifest = load_manifest(directory)
        orgs = {entry["org"]: entry for entry in manifest["organizations"]}
        admin = Identity.load(directory / orgs["university"]["admin_identity"])
        registrar = Identity.load(directory / orgs["university"]["client_identity"])
        reader = Identity.load(directory / orgs["bank"]["client_identity"])
        genesis = load_genesis(directory / "genesis.json")
        roll = class_roll(CLASS_SIZE, year=2026)
        with Client(network=load_network(directory), identity=registrar, timeout=60.0) as client:
            home = create_issuer(directory / "issuer", client, admin, iss="https://registrar.bench.example",
                                 name="Bench University", now_ms=int(time.time() * 1000))
            key = home.private_key("k1")
            started = time.perf_counter()
            issue_batch(roll, algorithm=home.algorithm, key=key, iss=home.iss, kid="k1", batch_id="dry",
                        genesis_hash=home.genesis_hash, list_id="l", status_indices=list(range(CLASS_SIZE)),
                        issued_at_s=int(time.time()), rng=random.SystemRandom())
            signing_s = time.perf_counter() - started
            started = time.perf_counter()
            batch = home.issue(client, registrar, roll, batch_id="class-of-2026")
            issue_s = time.perf_counter() - started
        with Client(network=load_network(directory), identity=reader, timeout=60.0) as client:
            started = time.perf_counter()
            snapshot = export_snapshot(client, issuers=[home.iss])
            export_s = time.perf_counter() - started
        names = disclosure_names(["name", "degree", "year"])
        presentations = [Presentation(chain=d.presentation.chain, anchor=d.presentation.anchor,
                                      sd_jwt=select_disclosures(d.presentation.sd_jwt, names))
                         for d in batch.diplomas]
        code = contract_code()
        started = time.perf_counter()
        verified = verify_snapshot(snapshot, genesis, contract_code=code)
        snapshot_verify_s = time.perf_counter() - started
        now_ms = int(time.time() * 1000)
        started = time.perf_counter()
        passed = sum(verify_presentation(p, verified, now_ms=now_ms).ok for p in presentations)
        verify_s = time.perf_counter() - started
        if passed != CLASS_SIZE:
            raise RuntimeError(f"only {passed} of {CLASS_SIZE} verified")
        texts = [p.to_qr_text() for p in presentations[:RESNAPSHOT_SAMPLE]]
        started = time.perf_counter()
        for text in texts:
            verify_presentation(text, verify_snapshot(snapshot, genesis, contract_code=code), now_ms=now_ms)
        full_s = time.perf_counter() - started
        return {
            "signing_diplomas_per_s": CLASS_SIZE / signing_s,
            "issuance_diplomas_per_s": CLASS_SIZE / issue_s,
            "issuance_batch_s": issue_s,
            "snapshot_bytes": float(len(snapshot)),
            "snapshot_export_s": export_s,
            "snapshot_verify_ms": snapshot_verify_s * 1000,
            "verifications_per_s": CLASS_SIZE / verify_s,
            "verifications_with_snapshot_check_per_s": RESNAPSHOT_SAMPLE / full_s,
        }
    finally:
        subprocess.run([sys.executable, "-m", "pilotchain", "network", "down", "--dir", str(directory)],
                       capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--suite", choices=("intl", "gm"), default="intl")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="pilotchain-credentials-bench-") as folder:
        for i in range(options.rounds):
            rounds.append(one_round(Path(folder) / f"round-{i}", options.suite))
    result: dict[str, Any] = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    result.update(suite=options.suite, rounds=options.rounds, class_size=CLASS_SIZE, cpus=os.cpu_count(),
                  load_average=os.getloadavg()[0], python=sys.version.split()[0],
                  ranges={name: [min(r[name] for r in rounds), max(r[name] for r in rounds)] for name in rounds[0]})
    if options.json:
        print(json.dumps(result, indent=2))
        return
    print(f"diplomas, {options.suite}, {options.rounds} round(s) of a class of {CLASS_SIZE} on 4 validators "
          f"({result['cpus']} CPUs, load {result['load_average']:.1f}):")
    for name, (low, high) in result["ranges"].items():
        print(f"  {name:42s} {result[name]:12,.1f}   ({low:,.1f} – {high:,.1f})")


if __name__ == "__main__":
    main()
