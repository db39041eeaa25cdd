"""The genesis ceremony: every organisation keeps its own keys; a coordinator assembles genesis.

``network init`` makes every organisation's keys on one machine (demos, tests). A real consortium
runs these steps instead, each organisation on its own machine; only public files travel::

    coordinator   plan          plan.json: chain id, suite, genesis time, parameters, the orgs
                                expected and how many validators each runs
    each org      contribute    ORG/ (CA, admin, client, node keys: never leave it) and
                                ORG/contribution.json: org certificate, validator names, keys,
                                certificates and addresses, signed by the org's CA key
    coordinator   assemble      genesis.json + network.json (public manifest) from the plan and
                                the contributions (signatures, plan, suite, duplicates, missing)
    each org      acknowledge   checks genesis holds exactly its contribution; ORG/ack.json:
                                the genesis hash signed by the org's CA key
    anyone        check-acks    every org acknowledged the same genesis hash
    each org      finish        ORG/nodes/<node>/{node.json, genesis.json}: ready to start

An organisation that joins later by governance runs ``contribute --join genesis.json`` and
``finish`` against the existing genesis; the chain admits it through ``gov`` ``add_org`` and
``add_validator`` proposals. Layout of an organisation's folder::

    ORG/ceremony.json       this org's ceremony state (what it contributed to; listen addresses)
    ORG/plan.json           the plan it contributed to (a copy)
    ORG/contribution.json   what it sent (public)
    ORG/ack.json            its acknowledgement (public)
    ORG/ca/                 its CA (key 0600, optionally passphrase-encrypted)
    ORG/admin.id, client.id its admin and client identities
    ORG/nodes/<node>/       node.id (the validator key), then node.json and genesis.json

Every step reads only its own folder and the public files it is given.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from pilotchain.codec import CodecError, decode, encode
from pilotchain.crypto import SUITE_NAMES, Suite, get_suite
from pilotchain.identity import Membership
from pilotchain.identity.armor import armor, dearmor
from pilotchain.identity.authority import CertificateAuthority
from pilotchain.identity.errors import IdentityLayerError
from pilotchain.identity.files import IdentityBundle, load_ca, save_ca, save_identity
from pilotchain.identity.records import Certificate, OrgCertificate
from pilotchain.ledger.genesis import (
    ChainParams,
    Genesis,
    GenesisError,
    ValidatorInfo,
    genesis_hash,
)
from pilotchain.network.consortium import (
    DAY_MS,
    VALIDATORS_MAX,
    NetworkError,
    OrgSpec,
    _genesis_document,
    _write_json,
)
from pilotchain.node.config import NodeConfig, load_genesis

__all__ = [
    "CeremonyError",
    "PlannedOrg",
    "acknowledge",
    "assemble",
    "check_acks",
    "contribute",
    "finish",
    "load_plan",
    "manifest_add",
    "plan_hash",
    "write_plan",
]

PLAN_FORMAT = "pilotchain-ceremony-plan/1"
CONTRIBUTION_FORMAT = "pilotchain-ceremony-contribution/1"
ACK_FORMAT = "pilotchain-ceremony-ack/1"
STATE_FORMAT = "pilotchain-ceremony-org/1"
_CONTRIBUTION_DOMAIN = b"pilotchain/ceremony/contribution/v1\x00"
_ACK_DOMAIN = b"pilotchain/ceremony/ack/v1\x00"
_PLAN_DOMAIN = b"pilotchain/ceremony/plan/v1\x00"
#: no plan, contribution, acknowledgement or manifest the ceremony reads is bigger than this
PUBLIC_FILE_BYTES_MAX = 4 * 1024 * 1024
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}\Z")


class CeremonyError(NetworkError):
    """A ceremony file that is wrong, forged, incomplete or does not match the plan (the message
    names the file or organisation and what to do)."""


@dataclass(frozen=True, slots=True)
class PlannedOrg:
    org_id: str
    display_name: str
    validators: int = 1


# -- typed shapes of the public files (strict: unknown fields are refused) ---------------------


class _PlanOrg(msgspec.Struct, forbid_unknown_fields=True):
    org: str
    display_name: str
    validators: int


class _Plan(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    chain_id: str
    suite: str
    genesis_time_ms: int
    params: dict[str, Any]
    orgs: list[_PlanOrg]
    identity_valid_days: int = 365
    ca_valid_days: int = 3650


class _ValidatorEntry(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    public_key: str
    certificate: str
    p2p_addr: str
    gateway_url: str


class _ContributionBody(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    org: str
    display_name: str
    chain_id: str
    suite: str
    #: the plan contributed to (a founding organisation) ...
    plan_hash: str
    #: ... or the genesis joined (an organisation added later by governance)
    joins_genesis: str
    org_certificate: str
    validators: list[_ValidatorEntry]


class _AckBody(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    org: str
    chain_id: str
    genesis_hash: str


class _Signed(msgspec.Struct, forbid_unknown_fields=True):
    body: dict[str, Any]
    signature: str


class _NodeListen(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    p2p_listen: str
    gateway_listen: str


class _OrgState(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    org: str
    nodes: list[_NodeListen]


@dataclass(frozen=True, slots=True)
class _Contribution:
    body: _ContributionBody
    org_certificate: OrgCertificate
    validators: tuple[tuple[_ValidatorEntry, bytes], ...]  # entry, public key DER


# -- helpers ----------------------------------------------------------------------------------


def _canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _read_json(path: Path, what: str) -> Any:
    try:
        with open(path, "rb") as handle:
            data = handle.read(PUBLIC_FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise CeremonyError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    if len(data) > PUBLIC_FILE_BYTES_MAX:
        raise CeremonyError(f"{path} is larger than {PUBLIC_FILE_BYTES_MAX} bytes; it is not a {what}")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise CeremonyError(f"{path} is not valid JSON: {exc}") from exc


def _typed(document: Any, type_: type[Any], path: Path | str, what: str) -> Any:
    try:
        return msgspec.convert(document, type_)
    except msgspec.ValidationError as exc:
        raise CeremonyError(f"{path} is not a {what}: {exc}") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise CeremonyError(f"{where}: not valid base64") from exc


def _sign(ca: CertificateAuthority, domain: bytes, body: dict[str, Any]) -> dict[str, Any]:
    return {"body": body, "signature": _b64(ca.private_key.sign(domain + _canonical(body)))}


def _signature_ok(suite: Suite, org_certificate: OrgCertificate, domain: bytes, signed: _Signed, where: str) -> bool:
    return suite.verify(org_certificate.public_key_der, domain + _canonical(signed.body), _unb64(signed.signature, where))


def _split_address(address: str, what: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise CeremonyError(f"{what} {address!r} is not host:port")
    return host, int(port)


# -- the plan ---------------------------------------------------------------------------------


def _named(value: Any) -> Any:
    """A record (array-like on the wire) as a JSON object with field names, for people to read."""
    if isinstance(value, msgspec.Struct):
        return {name: _named(getattr(value, name)) for name in value.__struct_fields__}
    return msgspec.to_builtins(value)


def _positional(value: Any, default: msgspec.Struct) -> list[Any]:
    """The reverse of :func:`_named` for a record whose fields all have defaults (missing names
    take the default; unknown names are refused)."""
    if not isinstance(value, dict):
        raise msgspec.ValidationError(f"expected an object of {type(default).__name__} fields")
    unknown = set(value) - set(default.__struct_fields__)
    if unknown:
        raise msgspec.ValidationError(f"unknown parameter(s) {', '.join(sorted(unknown))}")
    items = []
    for name in default.__struct_fields__:
        fallback = getattr(default, name)
        given = value.get(name, _named(fallback))
        items.append(_positional(given, fallback) if isinstance(fallback, msgspec.Struct) else given)
    return items


def write_plan(
    path: str | os.PathLike[str],
    *,
    chain_id: str,
    suite_name: str,
    genesis_time_ms: int,
    orgs: Sequence[PlannedOrg],
    params: ChainParams | None = None,
    identity_valid_days: int = 365,
    ca_valid_days: int = 3650,
) -> dict[str, Any]:
    """Write the ceremony plan (the coordinator's first step); returns it."""
    plan = {
        "format": PLAN_FORMAT,
        "chain_id": chain_id,
        "suite": suite_name,
        "genesis_time_ms": genesis_time_ms,
        "params": _named(params or ChainParams()),
        "orgs": [{"org": o.org_id, "display_name": o.display_name, "validators": o.validators} for o in orgs],
        "identity_valid_days": identity_valid_days,
        "ca_valid_days": ca_valid_days,
    }
    _check_plan(_typed(plan, _Plan, "the plan", "ceremony plan"), "the plan")
    target = Path(path)
    if target.exists():
        raise CeremonyError(f"{target} already exists; choose another path or remove it first")
    _write_json(target, plan)
    return plan


def _check_plan(plan: _Plan, where: Path | str) -> ChainParams:
    if plan.format != PLAN_FORMAT:
        raise CeremonyError(f"{where} has format {plan.format!r}; this build reads {PLAN_FORMAT!r}")
    if plan.suite not in SUITE_NAMES:
        raise CeremonyError(f"{where}: suite must be one of {', '.join(SUITE_NAMES)}")
    if not plan.orgs:
        raise CeremonyError(f"{where}: a plan lists at least one organisation")
    ids = [o.org for o in plan.orgs]
    if len(set(ids)) != len(ids):
        raise CeremonyError(f"{where}: an organisation is listed twice")
    for org in plan.orgs:
        if not _NAME_RE.match(org.org):
            raise CeremonyError(f"{where}: organisation id {org.org!r}: use lower-case letters, digits and '-'")
        if not 1 <= org.validators <= VALIDATORS_MAX:
            raise CeremonyError(f"{where}: {org.org} runs 1..{VALIDATORS_MAX} validators")
    if sum(o.validators for o in plan.orgs) > VALIDATORS_MAX:
        raise CeremonyError(f"{where}: at most {VALIDATORS_MAX} validators in all")
    if plan.identity_valid_days < 1 or plan.ca_valid_days < 1:
        raise CeremonyError(f"{where}: validity periods are at least one day")
    try:
        params: ChainParams = msgspec.convert(_positional(plan.params, ChainParams()), ChainParams)
        placeholder = (ValidatorInfo(name="placeholder", org="placeholder", public_key=b"-"),)
        Genesis(plan.chain_id, plan.suite, plan.genesis_time_ms, (), placeholder, params).check()
    except msgspec.ValidationError as exc:
        raise CeremonyError(f"{where}: the chain parameters are invalid: {exc}") from exc
    except GenesisError as exc:
        raise CeremonyError(f"{where}: {exc}") from exc
    return params


def load_plan(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a plan; returns it as written."""
    file_path = Path(path)
    document = _read_json(file_path, "ceremony plan")
    _check_plan(_typed(document, _Plan, file_path, "ceremony plan"), file_path)
    plan: dict[str, Any] = document
    return plan


def plan_hash(plan: dict[str, Any]) -> str:
    """The plan's id, which every contribution names: the suite hash of its canonical JSON."""
    return get_suite(plan["suite"]).hash(_PLAN_DOMAIN + _canonical(plan)).hex()


# -- an organisation's contribution -----------------------------------------------------------


def contribute(
    org_dir: str | os.PathLike[str],
    *,
    org: str,
    display_name: str | None = None,
    plan_path: str | os.PathLike[str] | None = None,
    join_genesis: str | os.PathLike[str] | None = None,
    validators: int | None = None,
    host: str = "127.0.0.1",
    advertise_host: str | None = None,
    base_port: int = 26600,
    now_ms: int,
    passphrase: bytes | None = None,
    node_passphrase: bytes | None = None,
) -> dict[str, Any]:
    """Create ``org``'s CA, admin and client identities and validator key(s) in ``org_dir``
    and write ``org_dir/contribution.json`` (public, signed by the CA key); returns it.

    Founding organisations give ``plan_path``; an organisation joining a running chain gives
    ``join_genesis`` (the chain's genesis file) instead. Validator k (from 1) listens for peers
    on ``host:base_port + 2(k-1)`` and serves its gateway on the next port; peers dial
    ``advertise_host`` (default: ``host``). ``passphrase`` encrypts the CA, admin and client
    keys; ``node_passphrase`` the validator keys (a node reads it unattended)."""
    if (plan_path is None) == (join_genesis is None):
        raise CeremonyError("give the ceremony plan (--plan) or, to join a running chain, its genesis (--join)")
    root = Path(org_dir)
    if (root / "contribution.json").exists() or (root / "ca").exists():
        raise CeremonyError(f"{root} already holds an organisation; choose another --dir")
    plan: dict[str, Any] | None = None
    if plan_path is not None:
        plan = load_plan(plan_path)
        planned = {o["org"]: o for o in plan["orgs"]}
        if org not in planned:
            raise CeremonyError(f"the plan does not list organisation {org!r}; it lists {', '.join(planned)}")
        if validators is not None and validators != planned[org]["validators"]:
            raise CeremonyError(f"the plan says {org} runs {planned[org]['validators']} validator(s), not {validators}")
        chain_id, suite_name, basis = plan["chain_id"], plan["suite"], plan_hash(plan)
        count, name = planned[org]["validators"], display_name or planned[org]["display_name"]
        identity_days, ca_days = plan["identity_valid_days"], plan["ca_valid_days"]
        joins = ""
        # valid from genesis on when the genesis time is already past (a certificate that starts
        # after genesis would be refused at it)
        issue_ms = min(now_ms, plan["genesis_time_ms"])
    elif join_genesis is not None:
        genesis = load_genesis(join_genesis)
        issue_ms = now_ms
        chain_id, suite_name, basis = genesis.chain_id, genesis.suite, ""
        joins = genesis_hash(get_suite(genesis.suite), genesis).hex()
        count, name = validators or 1, display_name or org
        identity_days, ca_days = 365, 3650
        if not _NAME_RE.match(org):
            raise CeremonyError(f"organisation id {org!r}: use lower-case letters, digits and '-'")
    if not 1 <= count <= VALIDATORS_MAX or not 1024 <= base_port <= 65535 - 2 * count:
        raise CeremonyError("--base-port must leave room for two ports per validator below 65536")
    suite = get_suite(suite_name)
    advertise = advertise_host or ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
    try:
        ca = CertificateAuthority.create(suite, suite.generate_private_key(), org_id=org, display_name=name,
                                         now_ms=issue_ms, valid_ms=ca_days * DAY_MS)
    except (IdentityLayerError, ValueError) as exc:
        raise CeremonyError(f"cannot create the CA of {org!r}: {exc}") from exc
    root.mkdir(parents=True, exist_ok=True)
    issued: list[tuple[Path, IdentityBundle, bytes | None]] = []
    for role in ("admin", "client"):
        key = suite.generate_private_key()
        cert = ca.issue(f"{org}-{role}", (role,), key.public_key().to_der(), now_ms=issue_ms,
                        valid_ms=identity_days * DAY_MS)
        issued.append((root / f"{role}.id", IdentityBundle(suite, cert, key), passphrase))
    entries: list[dict[str, Any]] = []
    listens: list[dict[str, str]] = []
    for k in range(count):
        node = f"{org}-v{k + 1}"
        key = suite.generate_private_key()
        cert = ca.issue(node, ("validator",), key.public_key().to_der(), now_ms=issue_ms,
                        valid_ms=identity_days * DAY_MS)
        issued.append((root / "nodes" / node / "node.id", IdentityBundle(suite, cert, key), node_passphrase))
        p2p_port, gateway_port = base_port + 2 * k, base_port + 2 * k + 1
        entries.append({"name": node, "public_key": _b64(key.public_key().to_der()), "certificate": armor(cert),
                        "p2p_addr": f"{advertise}:{p2p_port}", "gateway_url": f"http://{advertise}:{gateway_port}"})
        listens.append({"name": node, "p2p_listen": f"{host}:{p2p_port}", "gateway_listen": f"{host}:{gateway_port}"})
    save_ca(root / "ca", ca, passphrase=passphrase)  # the serials handed out are recorded first
    for path, bundle, key_passphrase in issued:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_identity(path, bundle, passphrase=key_passphrase)
    body = {
        "format": CONTRIBUTION_FORMAT, "org": org, "display_name": name, "chain_id": chain_id,
        "suite": suite_name, "plan_hash": basis, "joins_genesis": joins,
        "org_certificate": armor(ca.org_certificate), "validators": entries,
    }
    contribution = _sign(ca, _CONTRIBUTION_DOMAIN, body)
    if plan is not None:
        _write_json(root / "plan.json", plan)
    _write_json(root / "ceremony.json", {"format": STATE_FORMAT, "org": org, "nodes": listens})
    _write_json(root / "contribution.json", contribution)
    return contribution


def _verify_contribution(
    document: Any, where: Path | str, *, chain_id: str, suite_name: str, plan_hash_hex: str = "",
    joins_genesis: str = "", at_ms: int,
) -> _Contribution:
    signed: _Signed = _typed(document, _Signed, where, "ceremony contribution")
    body: _ContributionBody = _typed(signed.body, _ContributionBody, where, "ceremony contribution")
    if body.format != CONTRIBUTION_FORMAT:
        raise CeremonyError(f"{where} has format {body.format!r}; this build reads {CONTRIBUTION_FORMAT!r}")
    if body.suite != suite_name:
        raise CeremonyError(f"{where}: {body.org} contributed for suite {body.suite!r}, the chain uses {suite_name!r}")
    if body.chain_id != chain_id:
        raise CeremonyError(f"{where}: {body.org} contributed for chain {body.chain_id!r}, not {chain_id!r}")
    if body.plan_hash != plan_hash_hex or body.joins_genesis != joins_genesis:
        raise CeremonyError(
            f"{where}: {body.org} contributed to another plan or genesis; send it this one and ask for a new contribution")
    suite = get_suite(suite_name)
    try:
        org_certificate = dearmor(body.org_certificate, OrgCertificate)
        membership = Membership(suite, [org_certificate])  # checks the self-signature
    except (CodecError, ValueError, IdentityLayerError) as exc:
        raise CeremonyError(f"{where}: the org certificate of {body.org} is invalid: {exc}") from exc
    if org_certificate.org_id != body.org:
        raise CeremonyError(f"{where}: the org certificate is for {org_certificate.org_id!r}, the contribution says {body.org!r}")
    if not _signature_ok(suite, org_certificate, _CONTRIBUTION_DOMAIN, signed, str(where)):
        raise CeremonyError(
            f"{where}: the signature of {body.org}'s contribution does not verify under its CA key "
            "(altered in transit or forged); ask the organisation to send it again")
    if not body.validators:
        raise CeremonyError(f"{where}: {body.org} contributes no validator")
    validators = []
    for entry in body.validators:
        public_key = _unb64(entry.public_key, f"{where}: {entry.name}")
        try:
            certificate = dearmor(entry.certificate, Certificate)
            membership.authenticate(certificate, at_ms, "validator")
            suite.public_key(public_key)
        except (CodecError, ValueError, IdentityLayerError) as exc:
            raise CeremonyError(f"{where}: validator {entry.name!r} of {body.org}: {exc}") from exc
        if certificate.subject != entry.name or certificate.public_key_der != public_key:
            raise CeremonyError(f"{where}: validator {entry.name!r}: its certificate names another subject or key")
        if not _NAME_RE.match(entry.name):
            raise CeremonyError(f"{where}: validator name {entry.name!r}: lower-case letters, digits and '-'")
        _split_address(entry.p2p_addr, f"{where}: {entry.name} p2p_addr")
        if not entry.gateway_url.startswith(("http://", "https://")):
            raise CeremonyError(f"{where}: {entry.name} gateway_url must be an http(s) URL")
        validators.append((entry, public_key))
    return _Contribution(body, org_certificate, tuple(validators))


def verify_contribution_file(path: str | os.PathLike[str], plan: dict[str, Any]) -> dict[str, Any]:
    """Check one contribution against ``plan`` (signature, suite, chain, plan); a summary."""
    contribution = _verify_contribution(
        _read_json(Path(path), "ceremony contribution"), Path(path), chain_id=plan["chain_id"],
        suite_name=plan["suite"], plan_hash_hex=plan_hash(plan), at_ms=plan["genesis_time_ms"])
    return _summary(contribution)


def _summary(contribution: _Contribution) -> dict[str, Any]:
    suite = get_suite(contribution.org_certificate.suite)
    return {"org": contribution.body.org, "display_name": contribution.body.display_name,
            "ca_key_id": suite.hash(contribution.org_certificate.public_key_der).hex(),
            "validators": [entry.name for entry, _ in contribution.validators]}


# -- assembly ---------------------------------------------------------------------------------


def assemble(
    plan_path: str | os.PathLike[str],
    contribution_paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Verify every contribution against the plan and write ``out_dir/genesis.json`` and the
    public manifest ``out_dir/network.json``; returns the manifest."""
    plan = load_plan(plan_path)
    params = _check_plan(msgspec.convert(plan, _Plan), Path(plan_path))
    suite = get_suite(plan["suite"])
    expected = {o["org"]: o for o in plan["orgs"]}
    contributions: dict[str, _Contribution] = {}
    for path in contribution_paths:
        contribution = _verify_contribution(
            _read_json(Path(path), "ceremony contribution"), Path(path), chain_id=plan["chain_id"],
            suite_name=plan["suite"], plan_hash_hex=plan_hash(plan), at_ms=plan["genesis_time_ms"])
        org = contribution.body.org
        if org not in expected:
            raise CeremonyError(f"{path}: organisation {org!r} is not in the plan")
        if org in contributions:
            raise CeremonyError(f"{path}: a second contribution from {org!r}; keep the one the organisation confirms")
        if len(contribution.validators) != expected[org]["validators"]:
            raise CeremonyError(f"{path}: {org} contributes {len(contribution.validators)} validator(s); "
                                f"the plan says {expected[org]['validators']}")
        contributions[org] = contribution
    missing = [org for org in expected if org not in contributions]
    if missing:
        raise CeremonyError(f"no contribution from {', '.join(missing)}; wait for it (or re-plan without them)")
    seen: dict[str | bytes, str] = {}
    for contribution in contributions.values():
        for entry, public_key in contribution.validators:
            for value, what in ((entry.name, f"validator name {entry.name}"),
                                (public_key, f"the key of validator {entry.name}"),
                                ("addr:" + entry.p2p_addr, f"p2p address {entry.p2p_addr}")):
                if value in seen:
                    raise CeremonyError(f"{contribution.body.org}: {what} is also used by {seen[value]}; "
                                        "names, keys and addresses are unique in a consortium")
                seen[value] = contribution.body.org
    ordered = [contributions[o["org"]] for o in plan["orgs"]]
    genesis = Genesis(
        chain_id=plan["chain_id"], suite=plan["suite"], genesis_time_ms=plan["genesis_time_ms"],
        organizations=tuple(encode(c.org_certificate) for c in ordered),
        validators=tuple(ValidatorInfo(name=entry.name, org=c.body.org, public_key=public_key, power=1)
                         for c in ordered for entry, public_key in c.validators),
        params=params,
    )
    try:
        genesis.check()
    except GenesisError as exc:
        raise CeremonyError(f"the assembled genesis is invalid: {exc}") from exc
    document = _genesis_document(suite, genesis)
    manifest = {
        "format": "pilotchain-network/1",
        "chain_id": genesis.chain_id,
        "suite": genesis.suite,
        "genesis": "genesis.json",
        "genesis_hash": document["hash"],
        "created_ms": genesis.genesis_time_ms,
        "nodes": [{"name": entry.name, "org": c.body.org, "p2p_addr": entry.p2p_addr, "gateway_url": entry.gateway_url}
                  for c in ordered for entry, _ in c.validators],
        "organizations": [{**_summary(c), "validators": [e.name for e, _ in c.validators]} for c in ordered],
    }
    out = Path(out_dir)
    for name in ("genesis.json", "network.json"):
        if (out / name).exists():
            raise CeremonyError(f"{out / name} already exists; assemble into an empty folder")
    _write_json(out / "genesis.json", document)
    _write_json(out / "network.json", manifest)
    return manifest


# -- verification and acknowledgement by each organisation --------------------------------------


def _org_state(root: Path) -> tuple[_OrgState, _Contribution, dict[str, Any] | None]:
    state: _OrgState = _typed(_read_json(root / "ceremony.json", "organisation state"), _OrgState,
                              root / "ceremony.json", "ceremony organisation state")
    document = _read_json(root / "contribution.json", "ceremony contribution")
    signed: _Signed = _typed(document, _Signed, root / "contribution.json", "ceremony contribution")
    body: _ContributionBody = _typed(signed.body, _ContributionBody, root / "contribution.json", "ceremony contribution")
    plan = load_plan(root / "plan.json") if body.plan_hash else None
    try:
        at_ms = plan["genesis_time_ms"] if plan is not None else dearmor(body.org_certificate, OrgCertificate).not_before_ms
    except (CodecError, ValueError) as exc:
        raise CeremonyError(f"{root / 'contribution.json'}: the org certificate is damaged: {exc}") from exc
    own = _verify_contribution(document, root / "contribution.json", chain_id=body.chain_id, suite_name=body.suite,
                               plan_hash_hex=body.plan_hash, joins_genesis=body.joins_genesis, at_ms=at_ms)
    return state, own, plan


def _load_manifest_file(path: Path) -> dict[str, Any]:
    manifest = _read_json(path, "network manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != "pilotchain-network/1":
        raise CeremonyError(f"{path} is not a pilotchain network manifest")
    return manifest


def verify_genesis(
    org_dir: str | os.PathLike[str], genesis_path: str | os.PathLike[str], manifest_path: str | os.PathLike[str],
) -> tuple[Genesis, str, dict[str, Any]]:
    """Check, from this organisation's own records, that the genesis holds exactly its
    contribution and follows the plan, and that the manifest lists its nodes as contributed;
    returns the genesis, its hash and the manifest."""
    root = Path(org_dir)
    _, own, plan = _org_state(root)
    genesis = load_genesis(genesis_path)
    suite = get_suite(genesis.suite)
    digest = genesis_hash(suite, genesis).hex()
    manifest = _load_manifest_file(Path(manifest_path))
    org = own.body.org
    if manifest.get("genesis_hash") != digest or manifest.get("chain_id") != genesis.chain_id:
        raise CeremonyError(f"{manifest_path} names another genesis than {genesis_path}")
    if genesis.chain_id != own.body.chain_id or genesis.suite != own.body.suite:
        raise CeremonyError(f"{genesis_path} is for chain {genesis.chain_id!r} ({genesis.suite}), "
                            f"{org} contributed to {own.body.chain_id!r} ({own.body.suite})")
    mine = [(entry.name, public_key) for entry, public_key in own.validators]
    if plan is None:  # joining a running chain: the genesis is the one this org joined
        if digest != own.body.joins_genesis:
            raise CeremonyError(f"{genesis_path} is not the genesis {org} joined ({own.body.joins_genesis[:16]}...)")
        return genesis, digest, manifest
    if (genesis.genesis_time_ms, _named(genesis.params)) != (plan["genesis_time_ms"], plan["params"]):
        raise CeremonyError(f"{genesis_path}: the genesis time or chain parameters differ from the plan")
    try:
        org_certificates = [decode(raw, OrgCertificate) for raw in genesis.organizations]
    except CodecError as exc:
        raise CeremonyError(f"{genesis_path}: an org certificate is damaged: {exc}") from exc
    planned = {o["org"]: o["validators"] for o in plan["orgs"]}
    listed = [c.org_id for c in org_certificates]
    if sorted(listed) != sorted(planned):
        raise CeremonyError(f"{genesis_path} lists organisations {', '.join(listed)}; the plan {', '.join(planned)}")
    if encode(org_certificates[listed.index(org)]) != encode(own.org_certificate):
        raise CeremonyError(f"{genesis_path} carries another org certificate for {org} than {org} contributed: "
                            "do not acknowledge it; ask the coordinator which contribution was used")
    in_genesis = [(v.name, v.public_key) for v in genesis.validators if v.org == org]
    if in_genesis != mine or any(v.power != 1 for v in genesis.validators if v.org == org):
        raise CeremonyError(f"{genesis_path}: the validators of {org} differ from its contribution: do not acknowledge it")
    for other, count in planned.items():
        if sum(1 for v in genesis.validators if v.org == other) != count:
            raise CeremonyError(f"{genesis_path}: {other} has another number of validators than the plan's {count}")
    nodes = {n.get("name"): n for n in manifest.get("nodes", [])}
    for entry, _ in own.validators:
        node = nodes.get(entry.name, {})
        if (node.get("org"), node.get("p2p_addr"), node.get("gateway_url")) != (org, entry.p2p_addr, entry.gateway_url):
            raise CeremonyError(f"{manifest_path}: node {entry.name} is not listed as {org} contributed it")
    if sorted(nodes) != sorted(v.name for v in genesis.validators):
        raise CeremonyError(f"{manifest_path}: its nodes are not the genesis validators")
    return genesis, digest, manifest


def acknowledge(
    org_dir: str | os.PathLike[str], genesis_path: str | os.PathLike[str], manifest_path: str | os.PathLike[str],
    *, passphrase: bytes | None = None,
) -> dict[str, Any]:
    """Verify the genesis (:func:`verify_genesis`) and write ``org_dir/ack.json``: the genesis
    hash signed by this organisation's CA key; returns it."""
    root = Path(org_dir)
    genesis, digest, _ = verify_genesis(root, genesis_path, manifest_path)
    ca = load_ca(root / "ca", passphrase=passphrase)
    body = {"format": ACK_FORMAT, "org": ca.org_id, "chain_id": genesis.chain_id, "genesis_hash": digest}
    ack = _sign(ca, _ACK_DOMAIN, body)
    _write_json(root / "ack.json", ack)
    return ack


def check_acks(genesis_path: str | os.PathLike[str], ack_paths: Sequence[str | os.PathLike[str]]) -> str:
    """Check that every organisation in the genesis acknowledged exactly this genesis, with a
    signature of its CA key (as the genesis lists it); returns the genesis hash."""
    genesis = load_genesis(genesis_path)
    suite = get_suite(genesis.suite)
    digest = genesis_hash(suite, genesis).hex()
    orgs = {c.org_id: c for c in (decode(raw, OrgCertificate) for raw in genesis.organizations)}
    acknowledged: set[str] = set()
    for ack_path in ack_paths:
        path = Path(ack_path)
        signed: _Signed = _typed(_read_json(Path(path), "acknowledgement"), _Signed, path, "ceremony acknowledgement")
        body: _AckBody = _typed(signed.body, _AckBody, path, "ceremony acknowledgement")
        if body.format != ACK_FORMAT:
            raise CeremonyError(f"{path} has format {body.format!r}; this build reads {ACK_FORMAT!r}")
        if body.org not in orgs:
            raise CeremonyError(f"{path}: {body.org!r} is not an organisation of this genesis")
        if body.org in acknowledged:
            raise CeremonyError(f"{path}: a second acknowledgement from {body.org}")
        if not _signature_ok(suite, orgs[body.org], _ACK_DOMAIN, signed, str(path)):
            raise CeremonyError(f"{path}: the signature does not verify under {body.org}'s CA key in the genesis")
        if body.genesis_hash != digest or body.chain_id != genesis.chain_id:
            raise CeremonyError(
                f"{path}: {body.org} acknowledged genesis {body.genesis_hash}, not {digest}: the organisations do not "
                "agree on the genesis; compare the files and assemble again")
        acknowledged.add(body.org)
    missing = sorted(set(orgs) - acknowledged)
    if missing:
        raise CeremonyError(f"no acknowledgement from {', '.join(missing)}; the genesis is not agreed yet")
    return digest


# -- finishing the node homes -----------------------------------------------------------------


def finish(
    org_dir: str | os.PathLike[str], genesis_path: str | os.PathLike[str], manifest_path: str | os.PathLike[str],
    *, passphrase_file: str = "",
) -> list[Path]:
    """Verify the genesis again and write each of this organisation's node homes' genesis.json
    and node.json (peers: every other node of the manifest); returns the homes.
    ``passphrase_file`` goes into node.json for an encrypted node key (absolute, or relative to
    the home)."""
    root = Path(org_dir)
    genesis, _, manifest = verify_genesis(root, genesis_path, manifest_path)
    state, own, _ = _org_state(root)
    document = _genesis_document(get_suite(genesis.suite), genesis)
    listen = {n.name: n for n in state.nodes}
    peers = {n["name"]: n["p2p_addr"] for n in manifest["nodes"]}
    homes = []
    for entry, _ in own.validators:
        home = root / "nodes" / entry.name
        config = NodeConfig(
            name=entry.name, org=own.body.org, chain_id=genesis.chain_id, suite=genesis.suite,
            identity_file="node.id", genesis_file="genesis.json", data_dir="data",
            p2p_listen=listen[entry.name].p2p_listen, p2p_advertise=entry.p2p_addr,
            peers={name: address for name, address in peers.items() if name != entry.name},
            gateway_listen=listen[entry.name].gateway_listen, gateway_url=entry.gateway_url,
            passphrase_file=passphrase_file,
        )
        _write_json(home / "genesis.json", document)
        (home / "node.json").write_bytes(msgspec.json.format(msgspec.json.encode(config), indent=2) + b"\n")
        if own.body.joins_genesis:  # what the add_validator proposal carries
            _write_json(home / "validator.json", {"name": entry.name, "org": own.body.org,
                                                  "public_key": {"$bytes": entry.public_key}, "power": 1})
        homes.append(home)
    return homes


def manifest_add(
    manifest_path: str | os.PathLike[str], genesis_path: str | os.PathLike[str],
    contribution_path: str | os.PathLike[str], *, now_ms: int,
) -> dict[str, Any]:
    """Add a joining organisation's nodes to the public manifest (after checking its
    contribution against the genesis it joins); returns the manifest."""
    genesis = load_genesis(genesis_path)
    digest = genesis_hash(get_suite(genesis.suite), genesis).hex()
    manifest = _load_manifest_file(Path(manifest_path))
    if manifest.get("genesis_hash") != digest:
        raise CeremonyError(f"{manifest_path} names another genesis than {genesis_path}")
    contribution = _verify_contribution(
        _read_json(Path(contribution_path), "ceremony contribution"), Path(contribution_path),
        chain_id=genesis.chain_id, suite_name=genesis.suite, joins_genesis=digest, at_ms=now_ms)
    org = contribution.body.org
    if any(o.get("org") == org for o in manifest["organizations"]):
        raise CeremonyError(f"{manifest_path} already lists {org}")
    names = {n["name"] for n in manifest["nodes"]}
    if any(entry.name in names for entry, _ in contribution.validators):
        raise CeremonyError(f"{contribution_path}: a node name of {org} is already in the manifest")
    manifest["nodes"].extend({"name": e.name, "org": org, "p2p_addr": e.p2p_addr, "gateway_url": e.gateway_url}
                             for e, _ in contribution.validators)
    manifest["organizations"].append({**_summary(contribution), "joined": True})
    _write_json(Path(manifest_path), manifest)
    return manifest


def planned_orgs(specs: Sequence[OrgSpec], validators: Sequence[int]) -> list[PlannedOrg]:
    """Pair organisation specs with their validator counts (1 each when ``validators`` is empty)."""
    counts = list(validators) or [1] * len(specs)
    if len(counts) != len(specs):
        raise CeremonyError("give one validator count per organisation (or none: one each)")
    return [PlannedOrg(spec.org_id, spec.display_name, count) for spec, count in zip(specs, counts, strict=True)]
