"""The catalogue beside a local network, and its demo story (pilot scenario S2).

``network up`` (entry point ``pilotchain.network_services``: catalogue) activates the ``catalogue``
contract through governance when the folder holds every organisation's admin identity, with the
Big-Data Bureau (``bigdata-bureau``, else the first organisation) as its owner. The exchange's
service starts the vaults; each mounts the catalogue's routes (``pilotchain.vault_extensions``).

``pilotchain demo --scenario gov`` (``pilotchain.demo_scenarios``): the demo consortium has no
government departments, so Market Regulation and the Tax Bureau first *join* it — a CA each,
admitted by governance (``add_org``, a majority of the members' admins), a vault each — and
then the story runs as S2 tells it, every step narrated: duties and entries published and
versioned, data stored with its field-level commitment, a request approved, calls that release
only the agreed fields and are verified, calls outside the agreement rejected, the entry
withdrawn, and the bureau's statistics from the anchored receipts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from pilotchain.apps.catalogue.records import CONTRACT
from pilotchain.apps.exchange.server import LOG_FILE, PID_FILE, init_vault, load_config
from pilotchain.codec import encode
from pilotchain.crypto import get_suite
from pilotchain.identity.authority import CertificateAuthority
from pilotchain.identity.files import IdentityBundle, save_ca, save_identity
from pilotchain.network.consortium import load_manifest
from pilotchain.network.processes import free_port_block, wait_until
from pilotchain.network.services import ServiceError, ServiceProcess, start_process
from pilotchain.sdk import Client, Identity, PilotchainError
from pilotchain.sdk._network import load_network

__all__ = ["CONTRACT_SOURCE", "bureau_of", "demo", "deploy_contract", "join_department", "service"]

CONTRACT_SOURCE = Path(__file__).with_name("contracts") / "catalogue.py"
BUREAU_DEFAULT = "bigdata-bureau"
DEPARTMENTS = (("market-regulation", "Market Regulation Administration"), ("tax-bureau", "Tax Bureau"))
START_TIMEOUT_S = 90.0
_DAY_MS = 86_400_000
_YEAR_MS = 365 * _DAY_MS


def _client(directory: Path, identity: Identity) -> Client:
    return Client(network=load_network(directory), identity=identity, timeout=30.0)


def bureau_of(directory: Path) -> str:
    orgs = [org["org"] for org in load_manifest(directory)["organizations"]]
    return BUREAU_DEFAULT if BUREAU_DEFAULT in orgs else orgs[0]


def _pass(client: Client, admins: list[Identity], kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Propose with the first admin and approve with the others until it is executed."""
    document: dict[str, Any] = client.invoke(admins[0], "gov", "propose", {"kind": kind, "payload": payload}).result
    for admin in admins[1:]:
        if document["status"] == "executed":
            break
        document = client.invoke(admin, "gov", "approve", {"id": document["id"]}).result
    if document["status"] != "executed":
        raise ServiceError(f"the {kind} proposal #{document['id']} was not approved by enough organisations")
    return document


def _admins(directory: Path) -> list[Path]:
    return [directory / org["admin_identity"] for org in load_manifest(directory)["organizations"]]


def deploy_contract(directory: Path, console: Any) -> bool:
    """Activate ``catalogue`` through governance with the folder's admin identities; False when it
    cannot (some admin identity is not in this folder: the organisations approve it themselves)."""
    admins = _admins(directory)
    first = Identity.load(admins[0])
    with _client(directory, first) as client:
        if client.query("gov", "contract", {"name": CONTRACT}) is not None:
            return True
        if not all(path.is_file() for path in admins):
            console.print(f"[yellow]{CONTRACT} is not active and this folder lacks some admins' identities[/]: propose "
                          f"it with `pilotchain contract deploy {CONTRACT_SOURCE} --name {CONTRACT} --init "
                          f"'{{\"bureau_org\": \"{bureau_of(directory)}\"}}'` and have the organisations approve it")
            return False
        code = CONTRACT_SOURCE.read_text()
        document = _pass(client, [Identity.load(path) for path in admins], "deploy_contract", {
            "name": CONTRACT, "version": "1", "code": code, "code_hash": first.suite.hash(code.encode()),
            "init": {"bureau_org": bureau_of(directory)}, "permissions": {}})
        console.print(f"activated the government catalogue contract {CONTRACT} through governance (proposal "
                      f"#{document['id']}), owned by {bureau_of(directory)}")
        return True


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/healthz", timeout=1.5).status_code == 200
    except httpx.HTTPError:
        return False


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    path = directory / "network.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(temporary, path)


def join_department(directory: Path, org: str, display_name: str, console: Any) -> bool:
    """Have ``org`` join the consortium of a `network init` folder (False: it is a member already):
    its CA and identities are made in the folder, governance admits it (``add_org``), it is listed
    in network.json (``joined``), and its vault starts and registers on chain."""
    manifest = load_manifest(directory)
    if any(entry["org"] == org for entry in manifest["organizations"]):
        return False
    admins = [Identity.load(path) for path in _admins(directory)]
    suite = get_suite(manifest["suite"])
    now = int(time.time() * 1000)
    ca = CertificateAuthority.create(suite, suite.generate_private_key(), org_id=org, display_name=display_name,
                                     now_ms=now, valid_ms=10 * _YEAR_MS)
    folder = directory / "orgs" / org
    folder.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {"org": org, "display_name": display_name, "ca_dir": f"orgs/{org}/ca", "joined": True}
    for role in ("admin", "client"):
        key = suite.generate_private_key()
        certificate = ca.issue(f"{org}-{role}", (role,), key.public_key().to_der(), now_ms=now, valid_ms=_YEAR_MS)
        save_identity(folder / f"{role}.id", IdentityBundle(suite, certificate, key))
        entry[f"{role}_identity"] = f"orgs/{org}/{role}.id"
    save_ca(folder / "ca", ca)
    with _client(directory, admins[0]) as client:
        document = _pass(client, admins, "add_org", {"certificate": encode(ca.org_certificate)})
    console.print(f"{display_name} ({org}) joined the consortium: its CA was admitted by governance "
                  f"(add_org, proposal #{document['id']})")
    manifest["organizations"].append(entry)
    _write_manifest(directory, manifest)
    home = directory / "vaults" / org
    used = [load_config(h).host_port[1] for h in (directory / "vaults").glob("*") if (h / "vault.json").is_file()]
    config = init_vault(home, network=directory, org=org, port=free_port_block(1, start=max(used, default=26700) + 1))
    start_process(ServiceProcess(home=home, argv=(sys.executable, "-m", "pilotchain", "vault", "serve", str(home)),
                                 pid_file=PID_FILE, log_file=LOG_FILE))
    client_identity = Identity.load(directory / entry["client_identity"])

    def registered() -> bool:
        try:
            with _client(directory, client_identity) as chain:
                record = chain.query("dataex", "org", {"org": org})
        except PilotchainError:
            return False
        return isinstance(record, dict) and record.get("endpoint") == config.public_url and _healthy(config.public_url)

    if not wait_until(registered, timeout_s=START_TIMEOUT_S, interval_s=0.5):
        raise ServiceError(f"{org}'s vault did not start and register on chain; see {home / LOG_FILE}")
    console.print(f"  its vault serves at {config.public_url} and registered its encryption key on chain")
    return True


class CatalogueService:
    name = "catalogue"

    def up(self, directory: Path, console: Any) -> None:
        deploy_contract(directory, console)

    def down(self, directory: Path, console: Any) -> None:
        """Nothing of its own runs: the vaults (the exchange's service) carry the catalogue."""

    def status(self, directory: Path) -> list[dict[str, Any]]:
        return []


service = CatalogueService()


def demo(directory: Path, console: Any) -> None:
    """`pilotchain demo --scenario gov`: the directory chain of S2, narrated."""
    from pilotchain.apps.catalogue.story import run_story

    run_story(directory, console)
