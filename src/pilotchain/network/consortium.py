"""Create a consortium on disk: one CA per organisation, identities, genesis, node homes.

``init_network`` is what ``pilotchain network init`` runs. Layout of the folder it writes::

    D/network.json                     the manifest: chain, suite, nodes, organisations
    D/genesis.json                     the genesis document (canonical bytes, base64) + its hash
    D/orgs/<org>/ca/                   the organisation's CA (key 0600, state, org certificate)
    D/orgs/<org>/admin.id              an admin identity (certificate + key, 0600)
    D/orgs/<org>/client.id             a client identity
    D/nodes/<node>/node.json           the node's configuration (addresses, peers, paths)
    D/nodes/<node>/node.id             the node's validator identity
    D/nodes/<node>/genesis.json        a copy of the genesis document
    D/nodes/<node>/data/               the node's ledger (created on first start)

Every address comes from configuration (``--host`` / ``--advertise`` or edits to node.json):
nothing assumes loopback. Private keys are written with mode 0600 and never printed.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from pilotchain.codec import encode
from pilotchain.crypto import SUITE_NAMES, Suite, get_suite
from pilotchain.identity.authority import CertificateAuthority
from pilotchain.identity.files import IdentityBundle, save_ca, save_identity
from pilotchain.ledger.genesis import ChainParams, Genesis, ValidatorInfo, genesis_hash
from pilotchain.network.tls import TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE, TlsAuthority
from pilotchain.node.config import NodeConfig, NodeConfigError, load_genesis, load_node_config

__all__ = [
    "OrgSpec",
    "DEFAULT_ORGS",
    "NetworkError",
    "NodeConfig",
    "parse_orgs",
    "init_network",
    "load_manifest",
    "load_genesis",
    "load_node_config",
    "genesis_hash",
]

DAY_MS = 86_400_000
ORGS_MAX = 64
VALIDATORS_MAX = 64
_ORG_ID_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}\Z")


class NetworkError(NodeConfigError):
    """A network folder or specification that cannot be used (the message says how to fix it)."""


@dataclass(frozen=True, slots=True)
class OrgSpec:
    org_id: str
    display_name: str


#: The pilot's own kinds of organisation.
DEFAULT_ORGS: tuple[OrgSpec, ...] = (
    OrgSpec("bigdata-bureau", "Municipal Big-Data Bureau"),
    OrgSpec("bank", "City Commercial Bank"),
    OrgSpec("hospital", "People's Hospital No. 1"),
    OrgSpec("university", "City University"),
    OrgSpec("carmaker", "Auto Works"),
    OrgSpec("power", "Grid Power Company"),
    OrgSpec("central-bank", "Central Bank (digital currency)"),
)


def parse_orgs(spec: str | None) -> tuple[OrgSpec, ...]:
    """``None``/"default": the seven pilot organisations; a number N: the first N of them;
    otherwise a comma list of ``id`` or ``id=Display Name``."""
    if spec is None or spec.strip() in ("", "default"):
        return DEFAULT_ORGS
    spec = spec.strip()
    if spec.isdigit():
        count = int(spec)
        if not 1 <= count <= len(DEFAULT_ORGS):
            raise NetworkError(f"--orgs N takes 1..{len(DEFAULT_ORGS)}; or list them: bank,hospital=People's Hospital")
        return DEFAULT_ORGS[:count]
    defaults = {org.org_id: org for org in DEFAULT_ORGS}
    orgs: list[OrgSpec] = []
    for item in spec.split(","):
        org_id, _, name = item.strip().partition("=")
        org_id = org_id.strip()
        if not _ORG_ID_RE.match(org_id):
            raise NetworkError(f"organisation id {org_id!r}: use lower-case letters, digits and '-', starting with a letter")
        orgs.append(OrgSpec(org_id, name.strip() or (defaults[org_id].display_name if org_id in defaults else org_id)))
    if len({o.org_id for o in orgs}) != len(orgs):
        raise NetworkError("organisation ids must be unique")
    if len(orgs) > ORGS_MAX:
        raise NetworkError(f"at most {ORGS_MAX} organisations")
    return tuple(orgs)


def _write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)


def _genesis_document(suite: Suite, genesis: Genesis) -> dict[str, Any]:
    return {
        "format": "pilotchain-genesis/1",
        "chain_id": genesis.chain_id,
        "suite": genesis.suite,
        "hash": genesis_hash(suite, genesis).hex(),
        "canonical_base64": base64.b64encode(encode(genesis)).decode("ascii"),
    }


def load_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(directory) / "network.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except OSError as exc:
        raise NetworkError(f"no network at {directory} ({exc.strerror}); create one with `pilotchain network init --dir {directory}`") from exc
    except ValueError as exc:
        raise NetworkError(f"{path} is not valid JSON: {exc}") from exc
    return manifest


def init_network(
    directory: str | os.PathLike[str],
    *,
    orgs: Sequence[OrgSpec] = DEFAULT_ORGS,
    validators: int = 4,
    suite_name: str = "intl",
    chain_id: str = "pilot-city",
    host: str = "127.0.0.1",
    advertise_host: str | None = None,
    base_port: int = 26600,
    now_ms: int,
    identity_valid_days: int = 365,
    ca_valid_days: int = 3650,
    params: ChainParams | None = None,
    overwrite: bool = False,
    tls: bool = False,
    validator_orgs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write a whole consortium under ``directory``; returns the manifest (also network.json).
    ``tls``: a network TLS CA and a gateway certificate per node (:mod:`pilotchain.network.tls`);
    the gateways then serve HTTPS and ``network.json`` names the CA clients trust (``tls_ca``).

    Validators are spread over the organisations in order (node ``<org>-v<k>``), or over
    ``validator_orgs`` only (a network one organisation runs, e.g. a central bank's currency
    network whose member banks run no validator). Node i listens
    for peers on ``host:base_port + 2i`` and serves its gateway on ``host:base_port + 2i + 1``;
    peers dial ``advertise_host`` (default: ``host``, or 127.0.0.1 when host is 0.0.0.0).
    """
    if suite_name not in SUITE_NAMES:
        raise NetworkError(f"--crypto must be one of {', '.join(SUITE_NAMES)}")
    if not 1 <= validators <= VALIDATORS_MAX:
        raise NetworkError(f"--validators takes 1..{VALIDATORS_MAX} (4 tolerate one faulty validator, 7 two)")
    if not orgs:
        raise NetworkError("a consortium needs at least one organisation")
    if not 1024 <= base_port <= 65535 - 2 * validators:
        raise NetworkError("--base-port must leave room for two ports per validator below 65536")
    known = [org.org_id for org in orgs]
    runners = [org for org in orgs if validator_orgs is None or org.org_id in validator_orgs]
    if validator_orgs is not None and (not runners or any(org not in known for org in validator_orgs)):
        raise NetworkError(f"--validator-orgs names organisations of this network ({', '.join(known)})")
    root = Path(directory)
    if (root / "network.json").exists() and not overwrite:
        raise NetworkError(f"{root} already holds a network; choose another --dir or delete it first")
    suite = get_suite(suite_name)
    advertise = advertise_host or ("127.0.0.1" if host in ("0.0.0.0", "::") else host)

    # 1. one CA per organisation, an admin and a client identity each
    authorities: dict[str, CertificateAuthority] = {}
    org_entries: list[dict[str, Any]] = []
    for org in orgs:
        ca = CertificateAuthority.create(
            suite, suite.generate_private_key(), org_id=org.org_id, display_name=org.display_name,
            now_ms=now_ms, valid_ms=ca_valid_days * DAY_MS,
        )
        authorities[org.org_id] = ca
        org_dir = root / "orgs" / org.org_id
        org_dir.mkdir(parents=True, exist_ok=True)
        entry: dict[str, Any] = {"org": org.org_id, "display_name": org.display_name, "ca_dir": f"orgs/{org.org_id}/ca"}
        for role in ("admin", "client"):
            key = suite.generate_private_key()
            cert = ca.issue(f"{org.org_id}-{role}", (role,), key.public_key().to_der(), now_ms=now_ms,
                            valid_ms=identity_valid_days * DAY_MS)
            save_identity(org_dir / f"{role}.id", IdentityBundle(suite, cert, key), overwrite=overwrite)
            entry[f"{role}_identity"] = f"orgs/{org.org_id}/{role}.id"
        org_entries.append(entry)

    # 2. validator nodes, spread over the organisations
    node_keys = []
    per_org: dict[str, int] = {}
    for index in range(validators):
        org = runners[index % len(runners)]
        per_org[org.org_id] = per_org.get(org.org_id, 0) + 1
        name = f"{org.org_id}-v{per_org[org.org_id]}"
        key = suite.generate_private_key()
        cert = authorities[org.org_id].issue(name, ("validator",), key.public_key().to_der(), now_ms=now_ms,
                                             valid_ms=identity_valid_days * DAY_MS)
        node_keys.append((index, name, org, key, cert))

    genesis = Genesis(
        chain_id=chain_id,
        suite=suite_name,
        genesis_time_ms=now_ms,
        organizations=tuple(encode(ca.org_certificate) for ca in authorities.values()),
        validators=tuple(
            ValidatorInfo(name=name, org=org.org_id, public_key=key.public_key().to_der(), power=1)
            for _, name, org, key, _ in node_keys
        ),
        params=params or ChainParams(),
    )
    genesis.check()
    genesis_doc = _genesis_document(suite, genesis)
    _write_json(root / "genesis.json", genesis_doc)

    tls_authority = TlsAuthority.create(chain_id, now=_utc(now_ms)) if tls else None
    p2p_of = {name: f"{advertise}:{base_port + 2 * index}" for index, name, *_ in node_keys}
    node_entries = []
    for index, name, org, key, cert in node_keys:
        home = root / "nodes" / name
        home.mkdir(parents=True, exist_ok=True)
        save_identity(home / "node.id", IdentityBundle(suite, cert, key), overwrite=overwrite)
        _write_json(home / "genesis.json", genesis_doc)
        gateway_port = base_port + 2 * index + 1
        config = NodeConfig(
            name=name,
            org=org.org_id,
            chain_id=chain_id,
            suite=suite_name,
            identity_file="node.id",
            genesis_file="genesis.json",
            data_dir="data",
            p2p_listen=f"{host}:{base_port + 2 * index}",
            p2p_advertise=p2p_of[name],
            peers={peer: addr for peer, addr in p2p_of.items() if peer != name},
            gateway_listen=f"{host}:{gateway_port}",
            gateway_url=f"{'https' if tls else 'http'}://{advertise}:{gateway_port}",
            tls_cert_file=TLS_CERT_FILE if tls else "",
            tls_key_file=TLS_KEY_FILE if tls else "",
        )
        if tls_authority is not None:
            tls_authority.issue_server(name, [advertise, host] if host not in ("0.0.0.0", "::") else [advertise],
                                       home, now=_utc(now_ms))
        (home / "node.json").write_bytes(msgspec.json.format(msgspec.json.encode(config), indent=2) + b"\n")
        node_entries.append({
            "name": name,
            "org": org.org_id,
            "p2p_addr": p2p_of[name],
            "gateway_url": config.gateway_url,
            "home": f"nodes/{name}",
        })

    for ca in authorities.values():
        save_ca(root / "orgs" / ca.org_id / "ca", ca, overwrite=overwrite)

    manifest = {
        "format": "pilotchain-network/1",
        "chain_id": chain_id,
        "suite": suite_name,
        "genesis": "genesis.json",
        "genesis_hash": genesis_doc["hash"],
        "created_ms": now_ms,
        "nodes": node_entries,
        "organizations": org_entries,
    }
    if tls_authority is not None:
        tls_authority.save(root)
        manifest["tls_ca"] = TLS_CA_FILE
    _write_json(root / "network.json", manifest)
    return manifest


def _free_pair_after(start: int, host: str, taken: set[int]) -> int:
    """The first port >= ``start`` such that it and the next one are unused by the network and
    can be bound on ``host`` right now (another program may hold the obvious next ports)."""
    import socket

    bind_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    for port in range(start, min(start + 2000, 65534)):
        if port in taken or port + 1 in taken:
            continue
        sockets = []
        try:
            for candidate in (port, port + 1):
                sock = socket.socket(socket.AF_INET6 if ":" in bind_host else socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((bind_host, candidate))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise NetworkError(f"no two free ports after {start} on {host}; pass the ports explicitly")


def add_node(
    directory: str | os.PathLike[str],
    *,
    org: str,
    now_ms: int,
    host: str = "127.0.0.1",
    advertise_host: str | None = None,
    p2p_port: int | None = None,
    gateway_port: int | None = None,
    identity_valid_days: int = 365,
) -> dict[str, Any]:
    """A new node home for organisation ``org`` (its CA issues the validator identity).

    The node starts as an observer: it connects to the existing nodes, syncs the chain and
    becomes a validator when governance approves an ``add_validator`` proposal for it (its
    public key is in the returned entry and in ``nodes/<name>/validator.json``)."""
    from pilotchain.identity.files import load_ca

    root = Path(directory)
    manifest = load_manifest(root)
    orgs = {entry["org"]: entry for entry in manifest["organizations"]}
    if org not in orgs:
        raise NetworkError(f"no organisation {org!r} in {root}; choose one of {', '.join(orgs)}")
    genesis = load_genesis(root / manifest["genesis"])
    suite = get_suite(genesis.suite)
    taken = {n["name"] for n in manifest["nodes"]}
    index = 1
    while f"{org}-v{index}" in taken:
        index += 1
    name = f"{org}-v{index}"
    used_ports = {int(n["p2p_addr"].rpartition(":")[2]) for n in manifest["nodes"]} | {
        int(n["gateway_url"].rpartition(":")[2]) for n in manifest["nodes"]
    }
    if p2p_port is None:
        p2p_port = _free_pair_after(max(used_ports) + 1, host, used_ports)
    gateway_port = gateway_port or p2p_port + 1
    advertise = advertise_host or ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
    ca = load_ca(root / orgs[org]["ca_dir"])
    key = suite.generate_private_key()
    cert = ca.issue(name, ("validator",), key.public_key().to_der(), now_ms=now_ms,
                    valid_ms=identity_valid_days * DAY_MS)
    from pilotchain.identity.files import save_ca

    save_ca(root / orgs[org]["ca_dir"], ca, overwrite=True)  # the CA's next serial moved on
    tls = bool(manifest.get("tls_ca"))
    home = root / "nodes" / name
    home.mkdir(parents=True, exist_ok=False)
    save_identity(home / "node.id", IdentityBundle(suite, cert, key))
    _write_json(home / "genesis.json", _genesis_document(suite, genesis))
    config = NodeConfig(
        name=name, org=org, chain_id=genesis.chain_id, suite=genesis.suite, identity_file="node.id",
        genesis_file="genesis.json", data_dir="data", p2p_listen=f"{host}:{p2p_port}",
        p2p_advertise=f"{advertise}:{p2p_port}", peers={n["name"]: n["p2p_addr"] for n in manifest["nodes"]},
        gateway_listen=f"{host}:{gateway_port}",
        gateway_url=f"{'https' if tls else 'http'}://{advertise}:{gateway_port}",
        tls_cert_file=TLS_CERT_FILE if tls else "", tls_key_file=TLS_KEY_FILE if tls else "",
    )
    if tls:  # the network's gateways speak TLS: this one too, with a certificate from its CA
        TlsAuthority.load(root).issue_server(name, [advertise], home, now=_utc(now_ms))
    (home / "node.json").write_bytes(msgspec.json.format(msgspec.json.encode(config), indent=2) + b"\n")
    public_key = key.public_key().to_der()
    _write_json(home / "validator.json", {"name": name, "org": org,
                                          "public_key": {"$bytes": base64.b64encode(public_key).decode("ascii")},
                                          "power": 1})
    entry = {"name": name, "org": org, "p2p_addr": config.p2p_advertise, "gateway_url": config.gateway_url,
             "home": f"nodes/{name}"}
    manifest["nodes"].append(entry)
    _write_json(root / "network.json", manifest)
    return entry


def _utc(now_ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now_ms / 1000, tz=datetime.UTC)
