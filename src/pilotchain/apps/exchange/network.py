"""The data exchange beside a local network: ``network up`` activates ``dataex`` (through
governance, when the folder holds every organisation's admin identity, as ``network init``'s
one-machine layout does) and starts one vault per organisation — including organisations that
run no validator — in ``<network>/vaults/<org>/``; ``network down`` stops them; ``network status``
shows them. Declared in ``pyproject.toml`` under ``pilotchain.network_services``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx

from pilotchain.apps.exchange.records import CONTRACT
from pilotchain.apps.exchange.server import LOG_FILE, PID_FILE, init_vault, load_config
from pilotchain.network.consortium import load_manifest
from pilotchain.network.processes import (
    free_port_block,
    log_error_line,
    pid_of,
    stop_pid_file,
    wait_until,
)
from pilotchain.network.services import ServiceError, ServiceProcess, start_process
from pilotchain.sdk import Client, Identity, PilotchainError
from pilotchain.sdk._network import load_network

__all__ = ["service", "deploy_contract", "vault_homes"]

CONTRACT_SOURCE = Path(__file__).with_name("contracts") / "dataex.py"
START_TIMEOUT_S = 90.0
VAULT_PORT_BASE = 26700


def vault_homes(directory: Path) -> dict[str, Path]:
    manifest = load_manifest(directory)
    return {org["org"]: directory / "vaults" / org["org"] for org in manifest["organizations"]}


def _client(directory: Path, identity: Identity) -> Client:
    return Client(network=load_network(directory), identity=identity, timeout=30.0)


def deploy_contract(directory: Path, console: Any, *, name: str = CONTRACT, source: Path = CONTRACT_SOURCE,
                    init: Any = None) -> bool:
    """Activate contract ``name`` (default: ``dataex``) through governance with the folder's admin
    identities; False when it cannot (some admin identity is not in this folder: the
    organisations approve it themselves)."""
    manifest = load_manifest(directory)
    admins = [directory / org["admin_identity"] for org in manifest["organizations"]]
    first = Identity.load(admins[0])
    with _client(directory, first) as client:
        if client.query("gov", "contract", {"name": name}) is not None:
            return True
        if not all(path.is_file() for path in admins):
            console.print(f"[yellow]{name} is not active and this folder lacks some admins' identities[/]: "
                          f"propose it with `pilotchain contract deploy {source} --name {name}` "
                          "and have the organisations approve it")
            return False
        code = source.read_text()
        payload: dict[str, Any] = {"name": name, "version": "1", "code": code, "code_hash": first.suite.hash(code.encode()),
                                   "init": init, "permissions": {}}
        result = client.invoke(first, "gov", "propose", {"kind": "deploy_contract", "payload": payload})
        document = result.result
        for path in admins[1:]:
            if document["status"] == "executed":
                break
            admin = Identity.load(path)
            document = client.invoke(admin, "gov", "approve", {"id": document["id"]}).result
        if document["status"] != "executed":
            raise ServiceError(f"{name} was proposed (#{document['id']}) but not approved by enough organisations")
        console.print(f"activated the contract {name} through governance (proposal #{document['id']})")
        return True


def _process(home: Path) -> ServiceProcess:
    return ServiceProcess(home=home, argv=(sys.executable, "-m", "pilotchain", "vault", "serve", str(home)),
                          pid_file=PID_FILE, log_file=LOG_FILE)


def _registered(directory: Path, org: str, url: str, reader: Identity) -> bool:
    try:
        with _client(directory, reader) as client:
            record = client.query(CONTRACT, "org", {"org": org})
    except PilotchainError:
        return False
    return isinstance(record, dict) and record.get("endpoint") == url


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/healthz", timeout=1.5).status_code == 200
    except httpx.HTTPError:
        return False


class ExchangeService:
    name = "exchange"

    def up(self, directory: Path, console: Any) -> None:
        if not deploy_contract(directory, console):
            return
        homes = vault_homes(directory)
        base = None
        for index, (org, home) in enumerate(homes.items()):
            if not (home / "vault.json").is_file():
                if base is None:  # just above the nodes' ports (a network made on free ports stays together)
                    base = free_port_block(len(homes), start=_after_node_ports(directory))
                init_vault(home, network=directory, org=org, port=base + index)
        started = {}
        for org, home in homes.items():
            config = load_config(home)
            if pid_of(home / PID_FILE) is None:
                start_process(_process(home))
                console.print(f"started the vault of {org} at {config.public_url}, logs in {home / LOG_FILE}")
            started[org] = config.public_url
        reader = Identity.load(load_config(next(iter(homes.values()))).identity)
        with console.status("waiting for every vault to serve and to register on chain…"):
            ready = wait_until(lambda: all(_healthy(url) and _registered(directory, org, url, reader)
                                           for org, url in started.items()), timeout_s=START_TIMEOUT_S, interval_s=0.5)
        if not ready:
            problems = []
            for org, home in homes.items():
                if pid_of(home / PID_FILE) is None:
                    problems.append(f"{org}'s vault died: {_last_error(home)}")
                elif not _healthy(started[org]):
                    problems.append(f"{org}'s vault does not answer at {started[org]}")
                elif not _registered(directory, org, started[org], reader):
                    problems.append(f"{org}'s vault is not registered on chain yet ({_last_error(home)})")
            raise ServiceError("; ".join(problems) + f"; logs in {directory}/vaults/*/{LOG_FILE}")

    def story(self, directory: Path, console: Any) -> None:
        """The exchange in `make demo`: a hospital's record goes to another organisation only
        after a PERMIT on chain, with receipts on both sides; then print where to look."""
        from rich.table import Table

        from pilotchain.apps.exchange.client import VaultClient, VaultError

        manifest = load_manifest(directory)
        owner, consumer = (org["org"] for org in manifest["organizations"][:2])
        who = {org: Identity.load(directory / entry["client_identity"])
               for entry in manifest["organizations"][:2] for org in [entry["org"]]}
        record = b'{"resourceType": "Observation", "status": "final", "code": {"text": "HbA1c"}, "valueQuantity": ' \
                 b'{"value": 6.1, "unit": "%"}}'
        console.rule("[bold]data exchange[/] — payloads stay in the vaults; the chain holds commitments and decisions")
        with VaultClient(load_config(directory / "vaults" / owner).public_url, who[owner]) as mine, \
                VaultClient(load_config(directory / "vaults" / consumer).public_url, who[consumer]) as theirs:
            put = mine.put("demo-lab-result-1", record, media_type="application/fhir+json", classification="important",
                           retention_until_ms=int(time.time() * 1000) + 365 * 86_400_000)
            try:
                theirs.fetch("demo-lab-result-1", "TREAT")
                refused = "delivered (unexpected)"
            except VaultError as exc:
                refused = f"refused: {exc.code}"
            with _client(directory, who[owner]) as chain:
                chain.invoke(who[owner], CONTRACT, "decide", {"payload_id": "demo-lab-result-1", "org": consumer,
                                                              "purpose": "TREAT",
                                                              "until_ms": int(time.time() * 1000) + 86_400_000})
            fetched = theirs.fetch("demo-lab-result-1", "TREAT")
            table = Table(title="one record between two organisations", title_justify="left")
            table.add_column("step")
            table.add_column("what happened", overflow="fold")
            table.add_row(f"{owner} stores it", f"{put['size']} bytes in its vault; commitment "
                                                f"{put['commitment'][:16]}… registered in block {put['height']}")
            table.add_row(f"{consumer} asks, no PERMIT", refused)
            table.add_row(f"{owner} grants", f"PERMIT for {consumer}, purpose TREAT, recorded on chain")
            table.add_row(f"{consumer} asks again", f"delivered, decrypted, commitment verified "
                                                    f"({fetched['size']} bytes); both sides sign receipts")
            console.print(table)
        console.print(f"vaults: {', '.join(load_config(home).public_url for home in vault_homes(directory).values())}")
        console.print(f"try: [bold]pilotchain data receipts demo-lab-result-1 --network {directory} "
                      f"-i {directory}/orgs/{consumer}/client.id[/]\n"
                      f"     [bold]pilotchain audit export --payload demo-lab-result-1 --out story.audit --network "
                      f"{directory} -i {directory}/orgs/{owner}/client.id[/] then "
                      f"[bold]pilotchain audit verify story.audit --genesis {directory}/genesis.json[/]")

    def down(self, directory: Path, console: Any) -> None:
        for org, home in vault_homes(directory).items():
            if (home / "vault.json").is_file():
                console.print(f"vault of {org}: {stop_pid_file(home / PID_FILE)}")

    def status(self, directory: Path) -> list[dict[str, Any]]:
        rows = []
        for org, home in vault_homes(directory).items():
            if not (home / "vault.json").is_file():
                continue
            config = load_config(home)
            alive = pid_of(home / PID_FILE, forget_stale=False) is not None
            healthy = alive and _healthy(config.public_url)
            rows.append({"name": f"vault {org}", "url": config.public_url, "up": healthy,
                         "detail": "serving" if healthy else ("not answering" if alive else "not running")})
        return rows


def _after_node_ports(directory: Path) -> int:
    ports = [int(str(n[key]).rstrip("/").rpartition(":")[2]) for n in load_manifest(directory)["nodes"]
             for key in ("p2p_addr", "gateway_url")]
    return max(ports, default=VAULT_PORT_BASE - 1) + 1


def _last_error(home: Path) -> str:
    line = log_error_line(home / LOG_FILE)
    if line is not None:
        return line
    log = home / LOG_FILE
    try:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
    except OSError:
        return "no log"
    return tail[0] if tail else "no log yet"


service = ExchangeService()


def demo(directory: Path, console: Any) -> None:
    """`pilotchain demo --scenario exchange`: one record between two organisations."""
    service.story(directory, console)
