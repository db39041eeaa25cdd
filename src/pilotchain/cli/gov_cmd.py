"""`pilotchain gov ...`: governance proposals — propose, approve, withdraw, list, show.
Mount with ``app.add_typer(gov_app, name="gov")``.

Kinds and their payloads (JSON; bytes as ``{"$bytes": base64}``) are in docs/contracts.md.
Records signed by an org CA (an org certificate, a CA rotation, a revocation) can be given as the
armoured file ``pilotchain identity`` wrote, with ``--record FILE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pilotchain.cli.client_cmd import (
    GenesisOption,
    JsonOption,
    NetworkOption,
    NodeOption,
    TimeoutOption,
    _out,
    _parse_args,
    _print_json,
    _run,
    connect,
)
from pilotchain.cli.contract_cmd import (
    IdentityOption,
    load_signer,
    proposal_outcome,
    proposal_table,
    sign_and_wait,
)
from pilotchain.codec import CodecError, encode
from pilotchain.identity.armor import armor_label, dearmor
from pilotchain.identity.records import CaRotation, OrgCertificate, Revocation

__all__ = ["app"]

app = typer.Typer(help="Consortium governance: proposals and approvals.", no_args_is_help=True)

KINDS = (
    "deploy_contract",
    "freeze_contract",
    "unfreeze_contract",
    "add_org",
    "remove_org",
    "rotate_ca",
    "revoke",
    "add_validator",
    "remove_validator",
    "set_params",
    "set_policy",
)
_RECORD_FIELDS: dict[str, tuple[type[Any], str]] = {
    "PILOTCHAIN ORG CERTIFICATE": (OrgCertificate, "certificate"),
    "PILOTCHAIN CA ROTATION": (CaRotation, "rotation"),
    "PILOTCHAIN REVOCATION": (Revocation, "revocation"),
}


def _record_field(path: Path) -> tuple[str, bytes]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--record") from exc
    label = armor_label(text)
    if label not in _RECORD_FIELDS:
        raise typer.BadParameter(
            f"{path} is not an armoured org certificate, CA rotation or revocation",
            param_hint="--record",
        )
    type_, field = _RECORD_FIELDS[label]
    try:
        return field, encode(dearmor(text, type_))
    except (CodecError, ValueError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--record") from exc


@app.command("propose")
def propose(
    kind: Annotated[str, typer.Argument(metavar="KIND", help=f"One of: {', '.join(KINDS)}.")],
    payload_json: Annotated[
        str | None,
        typer.Argument(metavar="[PAYLOAD_JSON]", help="The kind's payload as JSON (see docs)."),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option("--record", help="An armoured org certificate / CA rotation / revocation."),
    ] = None,
    expires_in_s: Annotated[
        int | None,
        typer.Option(
            "--expires-in", min=1, help="Seconds until the proposal expires (default 7 days)."
        ),
    ] = None,
    identity: IdentityOption = None,
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """File a KIND proposal (your organisation approves it at once)."""
    if kind not in KINDS:
        raise typer.BadParameter(f"choose one of {', '.join(KINDS)}", param_hint="KIND")
    payload = _parse_args(payload_json) if payload_json is not None else {}
    if not isinstance(payload, dict):
        raise typer.BadParameter(
            'the payload is a JSON object, e.g. \'{"name": "token"}\'', param_hint="PAYLOAD_JSON"
        )
    if record is not None:
        field, raw = _record_field(record)
        payload[field] = raw
    signer = load_signer(identity, admin=True)
    args: dict[str, Any] = {"kind": kind, "payload": payload}
    if expires_in_s is not None:
        args["expires_in_ms"] = expires_in_s * 1000
    with connect(node, network, expect_genesis, timeout=min(timeout, 30.0), identity=signer) as client:
        result = sign_and_wait(client, signer, "gov", "propose", args, timeout)
    proposal_outcome(result, as_json, done="applied")


@app.command("approve")
def approve(
    proposal_id: Annotated[
        int, typer.Argument(metavar="ID", min=1, help="Proposal id (gov list).")
    ],
    identity: IdentityOption = None,
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Add your organisation's approval to proposal ID (applied when its policy is met)."""
    signer = load_signer(identity, admin=True)
    with connect(node, network, expect_genesis, timeout=min(timeout, 30.0), identity=signer) as client:
        result = sign_and_wait(client, signer, "gov", "approve", {"id": proposal_id}, timeout)
    proposal_outcome(result, as_json, done="applied")


@app.command("withdraw")
def withdraw(
    proposal_id: Annotated[int, typer.Argument(metavar="ID", min=1, help="Proposal id.")],
    identity: IdentityOption = None,
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Withdraw an open proposal your organisation filed."""
    signer = load_signer(identity, admin=True)
    with connect(node, network, expect_genesis, timeout=min(timeout, 30.0), identity=signer) as client:
        result = sign_and_wait(client, signer, "gov", "withdraw", {"id": proposal_id}, timeout)
    proposal_outcome(result, as_json, done="applied")


@app.command("list")
def list_proposals(
    status: Annotated[
        str, typer.Option("--status", help="open, executed, expired, withdrawn or all.")
    ] = "all",
    limit: Annotated[int, typer.Option("--limit", min=1, max=256, help="Newest N proposals.")] = 64,
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """List proposals, newest first."""
    with connect(node, network, expect_genesis, timeout=timeout) as client:
        documents = _run(lambda: client.query("gov", "list", {"status": status, "limit": limit}))
    if as_json:
        _print_json(documents)
        return
    if not documents:
        _out.print("no proposals" + (f" with status {status}" if status != "all" else ""))
        return
    _out.print(proposal_table(documents, "proposals"))


@app.command("show")
def show(
    proposal_id: Annotated[int, typer.Argument(metavar="ID", min=1, help="Proposal id.")],
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Show one proposal with its policy and approvals."""
    with connect(node, network, expect_genesis, timeout=timeout) as client:
        document = _run(lambda: client.query("gov", "get", {"id": proposal_id}))
    if as_json:
        _print_json(document)
        return
    _out.print(proposal_table([document], f"proposal #{proposal_id}"))
    _out.print(f"policy: {document['policy']}; eligible: {', '.join(document['eligible'])}")


@app.command("members")
def members(
    node: NodeOption = None,
    network: NetworkOption = None,
    expect_genesis: GenesisOption = None,
    timeout: TimeoutOption = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Member organisations as governance left them."""
    with connect(node, network, expect_genesis, timeout=timeout) as client:
        orgs = _run(lambda: client.query("gov", "members", {}))
    if as_json:
        _print_json(orgs)
    else:
        _out.print("\n".join(orgs))
