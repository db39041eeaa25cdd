"""The currency network: its own chain, controlled by the central bank.

``init_currency_network`` is the currency's ``network init`` profile (``pilotchain currency network
init``): organisations are the central bank and the authorised operators; every validator is the
central bank's (in its data centres: BFT against one compromised site); the operators are member
organisations with identities and vaults but no validator. The genesis allows transactions large
enough to carry the currency contract (its code travels in the governance proposal). The folder
gets the central bank's two officers (maker and checker), an auditor identity and ``currency.json``
(the operators' quotas and reserves, the contract's initial configuration).

``network up`` on such a folder (the ``currency`` network service) then, once and idempotently:
hands governance to the central bank — every proposal kind but an organisation's own CA rotation
and revocation is decided by the central bank alone, all operators agreeing once, at the founding —
names the central bank the auditor organisation, activates the ``currency`` contract and
authorises each operator with its quota and reserve by the officers' maker-checker; then it starts
one holder service per operator (:mod:`~pilotchain.apps.currency.holders`, in
``holders/<operator>/``), which ``network status`` shows and ``network down`` stops.

``pilotchain demo --scenario currency`` makes such a network beside the demo's own (``<demo
dir>/currency``), starts it and tells the story; ``network down`` of the demo's folder stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pilotchain.apps.currency import holders
from pilotchain.identity.files import IdentityBundle, load_ca, save_ca, save_identity
from pilotchain.ledger.genesis import ChainParams
from pilotchain.ledger.tx import TxLimits
from pilotchain.network.consortium import OrgSpec, init_network, load_manifest
from pilotchain.network.services import ServiceError
from pilotchain.sdk import Client, Identity
from pilotchain.sdk._network import load_network

__all__ = ["CENTRAL_BANK", "CONTRACT_SOURCE", "CURRENCY_PARAMS", "DEFAULT_OPERATORS", "PROFILE_FILE", "activate",
           "demo", "init_currency_network", "issue_identity", "service"]

CONTRACT = "currency"
CONTRACT_SOURCE = Path(__file__).with_name("contracts") / "currency.py"
PROFILE_FILE = "currency.json"
DEMO_FOLDER = "currency"
CENTRAL_BANK = OrgSpec("central-bank", "People's Bank (digital currency)")
DEFAULT_OPERATORS: tuple[OrgSpec, ...] = (
    OrgSpec("bank-a", "Commercial Bank A (authorised operator)"),
    OrgSpec("bank-b", "Commercial Bank B (authorised operator)"),
)
CNY = 100
#: the contract's code travels in one governance transaction: allow it (and room to grow)
CURRENCY_PARAMS = ChainParams(tx_limits=TxLimits(tx_bytes_max=256 * 1024, args_bytes_max=192 * 1024))
#: governance kinds the central bank alone decides once the network is founded (an organisation
#: still rotates and revokes its own CA's certificates itself)
CENTRAL_KINDS = ("deploy_contract", "freeze_contract", "unfreeze_contract", "add_org", "remove_org",
                 "add_validator", "remove_validator", "set_params", "set_auditors", "set_policy")
OFFICERS = ("officer-1", "officer-2")
DAY_MS = 86_400_000


def issue_identity(directory: Path, org: str, name: str, role: str, *, now_ms: int, valid_days: int = 364) -> Path:
    """A further identity from ``org``'s CA in a network folder (``orgs/<org>/<name>.id``)."""
    from pilotchain.crypto import get_suite

    ca_dir = directory / "orgs" / org / "ca"
    ca = load_ca(ca_dir)
    suite = get_suite(str(load_manifest(directory)["suite"]))
    key = suite.generate_private_key()
    cert = ca.issue(name, (role,), key.public_key().to_der(), now_ms=now_ms, valid_ms=valid_days * DAY_MS)
    save_ca(ca_dir, ca, overwrite=True)
    path = directory / "orgs" / org / f"{name}.id"
    save_identity(path, IdentityBundle(suite, cert, key))
    return path


def init_currency_network(directory: Path, *, operators: Sequence[OrgSpec] = DEFAULT_OPERATORS,
                          validators: int = 4, suite_name: str = "intl", chain_id: str = "e-cny",
                          base_port: int = 27600, now_ms: int, quota: int = 100_000_000 * CNY,
                          config: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    """The currency network's folder (what ``network init`` writes, the central bank running
    every validator), the officers' and auditor's identities and ``currency.json``."""
    manifest = init_network(directory, orgs=(CENTRAL_BANK, *operators), validators=validators, suite_name=suite_name,
                            chain_id=chain_id, base_port=base_port, now_ms=now_ms, params=CURRENCY_PARAMS,
                            validator_orgs=[CENTRAL_BANK.org_id], **options)
    officers = [issue_identity(directory, CENTRAL_BANK.org_id, name, "client", now_ms=now_ms) for name in OFFICERS]
    auditor = issue_identity(directory, CENTRAL_BANK.org_id, "auditor", "auditor", now_ms=now_ms)
    profile = {
        "format": "pilotchain-currency/1",
        "central_bank": CENTRAL_BANK.org_id,
        "officers": [str(p.relative_to(directory)) for p in officers],
        "auditor": str(auditor.relative_to(directory)),
        "operators": {org.org_id: {"quota": quota, "reserve": quota} for org in operators},
        "config": {"central_bank": CENTRAL_BANK.org_id, "regulators": [CENTRAL_BANK.org_id],
                   "officers": list(OFFICERS), **(config or {})},
    }
    (directory / PROFILE_FILE).write_text(json.dumps(profile, indent=2) + "\n")
    return manifest


def load_profile(directory: Path) -> dict[str, Any]:
    try:
        profile: dict[str, Any] = json.loads((directory / PROFILE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ServiceError(f"{directory} is no currency network ({PROFILE_FILE}: {exc}); "
                           "make one with `pilotchain currency network init`") from exc
    return profile


def _client(directory: Path, identity: Identity) -> Client:
    return Client(network=load_network(directory), identity=identity, timeout=60.0)


def _pass(client: Client, admins: list[Identity], kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Propose with the first admin, approve with the others until the policy is met."""
    document: dict[str, Any] = client.invoke(admins[0], "gov", "propose", {"kind": kind, "payload": payload}).result
    for admin in admins[1:]:
        if document["status"] == "executed":
            break
        document = client.invoke(admin, "gov", "approve", {"id": document["id"]}).result
    if document["status"] != "executed":
        raise ServiceError(f"{kind} was proposed (#{document['id']}) but not approved by enough organisations")
    return document


def officers_of(directory: Path) -> list[Identity]:
    return [Identity.load(directory / path) for path in load_profile(directory)["officers"]]


def activate(directory: Path, console: Any) -> None:
    """Founding steps of a currency network (each skipped when already done)."""
    from pilotchain.apps.currency.client import CurrencyClient, CurrencyError

    profile = load_profile(directory)
    manifest = load_manifest(directory)
    central = profile["central_bank"]
    admin_paths = [directory / org["admin_identity"] for org in manifest["organizations"]]
    if not all(path.is_file() for path in admin_paths):
        console.print("[yellow]the currency network's founding needs every organisation's admin[/]: "
                      "run `network up` where the founding organisations' admins are, or pass the proposals by hand")
        return
    admins = [Identity.load(path) for path in admin_paths]
    admins.sort(key=lambda who: who.org != central)  # the central bank proposes
    with _client(directory, admins[0]) as client:
        wanted = {"rule": "ALL", "k": 0, "orgs": [central], "role": "admin"}
        for kind in CENTRAL_KINDS:
            policy = client.query("gov", "policy", {"kind": kind})
            if policy["orgs"] != [central] or policy["rule"] != "ALL":
                _pass(client, admins, "set_policy", {"kind": kind, "policy": wanted})
        if central not in client.query("gov", "auditors"):
            _pass(client, admins, "set_auditors", {"orgs": [central]})
        if client.query("gov", "contract", {"name": CONTRACT}) is None:
            code = CONTRACT_SOURCE.read_text()
            _pass(client, admins, "deploy_contract", {
                "name": CONTRACT, "version": "1", "code": code, "code_hash": admins[0].suite.hash(code.encode()),
                "init": {"args": profile["config"]}, "permissions": {}})
            console.print(f"governance handed to {central}; the currency contract is active")
        maker, checker = (CurrencyClient(client, who) for who in officers_of(directory)[:2])
        for org, terms in profile["operators"].items():
            if maker.operator(org) is not None:
                continue
            try:
                proposed = maker.propose("add_operator", {"operator": org, "quota": terms["quota"],
                                                          "reserve": terms["reserve"]}, f"add-{org}")
                checker.approve(proposed["id"])
            except CurrencyError as exc:
                raise ServiceError(f"authorising operator {org} failed: {exc}") from exc
            console.print(f"{org} is an authorised operator (quota {terms['quota'] // CNY:,} CNY)")


class CurrencyService:
    """``network up`` of a currency network founds it and starts its operators' holder services;
    ``down``/``status`` cover those, and the currency network the demo makes inside another
    network's folder."""

    name = "currency"

    def up(self, directory: Path, console: Any) -> None:
        if (directory / PROFILE_FILE).is_file():
            activate(directory, console)
            holders.start_services(directory, console)

    def down(self, directory: Path, console: Any) -> None:
        if (directory / PROFILE_FILE).is_file():
            holders.stop_services(directory, console)
        nested = directory / DEMO_FOLDER
        if (nested / PROFILE_FILE).is_file():
            done = subprocess.run([sys.executable, "-m", "pilotchain", "network", "down", "--dir", str(nested)],
                                  capture_output=True, text=True, timeout=180, check=False)
            console.print(f"the demo's currency network: {'stopped' if done.returncode == 0 else done.stderr.strip()}")

    def status(self, directory: Path) -> list[dict[str, Any]]:
        from pilotchain.network.processes import node_pid, nodes_of

        own = holders.service_rows(directory) if (directory / PROFILE_FILE).is_file() else []
        nested = directory / DEMO_FOLDER
        if not (nested / PROFILE_FILE).is_file():
            return own
        return own + [{"name": f"currency {node.name}", "url": node.gateway_url,
                       "up": node_pid(node.home) is not None,
                       "detail": "running" if node_pid(node.home) is not None else "not running"}
                      for node in nodes_of(nested)]


service = CurrencyService()


def demo(directory: Path, console: Any) -> None:
    """``pilotchain demo --scenario currency``: a currency network beside the demo's, and the story."""
    from pilotchain.network.processes import EPHEMERAL_PORT_MIN, free_port_block

    nested = directory / DEMO_FOLDER
    if not (nested / PROFILE_FILE).is_file():
        suite = str(load_manifest(directory)["suite"])
        base = free_port_block(8, start=_after_ports(directory), stop=EPHEMERAL_PORT_MIN)
        init_currency_network(nested, suite_name=suite, base_port=base, now_ms=int(time.time() * 1000))
    console.rule("[bold]digital currency[/] — the central bank's own network (its validators), two operators")
    with console.status("starting the currency network (4 central-bank validators, a vault per organisation)…"):
        started = subprocess.run([sys.executable, "-m", "pilotchain", "network", "up", "--dir", str(nested),
                                  "--timeout", "180"], capture_output=True, text=True, timeout=900, check=False)
    if started.returncode != 0:
        raise ServiceError(f"the currency network did not start: {started.stdout[-800:]} {started.stderr[-800:]}")
    from pilotchain.apps.currency.story import run_story

    run_story(nested, console)


def _after_ports(directory: Path) -> int:
    """Above every port the demo's network and its services use."""
    ports = [int(str(n[key]).rstrip("/").rpartition(":")[2]) for n in load_manifest(directory)["nodes"]
             for key in ("p2p_addr", "gateway_url")]
    return max(ports, default=27000) + 200
