"""`pilotchain ceremony ...`: a genesis made by organisations that each keep their own keys.

The shell around :mod:`pilotchain.network.ceremony` (the steps, the files and who runs what are
described there and in docs/operations.md). Private keys stay in each organisation's folder and
are never printed; only public files travel between the participants.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from pilotchain.cli.identity_cmd import (
    AskPassphraseOption,
    PassphraseFileOption,
    given_passphrase,
    unlocked,
)
from pilotchain.identity.errors import IdentityLayerError
from pilotchain.identity.files import key_passphrase
from pilotchain.network import ceremony
from pilotchain.network.consortium import parse_orgs
from pilotchain.node.config import NodeConfigError

app = typer.Typer(
    help="A genesis ceremony: each organisation keeps its keys; a coordinator assembles genesis.",
    no_args_is_help=True,
)

NowOption = Annotated[int | None, typer.Option("--now-ms", hidden=True, help="Pretend the time is this (Unix ms).")]
DirOption = Annotated[Path, typer.Option("--dir", help="This organisation's folder (its keys stay in it).")]
GenesisOption = Annotated[Path, typer.Option("--genesis", help="The assembled genesis.json.")]
ManifestOption = Annotated[Path, typer.Option("--manifest", help="The public network.json from the coordinator.")]


def _now_ms(now_ms: int | None) -> int:
    return time.time_ns() // 1_000_000 if now_ms is None else now_ms


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=1)


_ERRORS = (NodeConfigError, IdentityLayerError)  # CeremonyError is a NodeConfigError


@app.command("plan")
def plan(
    out: Annotated[Path, typer.Option("--out", help="The plan file to write; send it to every organisation.")],
    orgs: Annotated[str, typer.Option("--orgs", help="Comma list of org ids (id or id=Display Name).")],
    validators: Annotated[
        str, typer.Option("--validators", help="Validators per organisation, comma list in --orgs order (default: 1 each).")
    ] = "",
    chain_id: Annotated[str, typer.Option("--chain-id", help="The chain's id.")] = "pilot-city",
    suite: Annotated[str, typer.Option("--suite", help="Crypto suite: intl or gm.")] = "intl",
    genesis_time: Annotated[
        str | None, typer.Option("--genesis-time", help="ISO 8601 time, e.g. 2026-05-01T00:00:00+08:00 (default: now).")
    ] = None,
    identity_valid_days: Annotated[int, typer.Option("--identity-valid-days", min=1)] = 365,
    ca_valid_days: Annotated[int, typer.Option("--ca-valid-days", min=1)] = 3650,
    now_ms: NowOption = None,
) -> None:
    """Coordinator: write the ceremony plan (chain, suite, genesis time, organisations expected)."""
    try:
        specs = parse_orgs(orgs)
        counts = [int(c) for c in validators.split(",") if c.strip()] if validators else []
        if genesis_time is not None:
            moment = datetime.fromisoformat(genesis_time)
            if moment.tzinfo is None:
                raise ceremony.CeremonyError("--genesis-time needs a UTC offset, e.g. 2026-05-01T00:00:00+00:00")
            time_ms = int(moment.timestamp() * 1000)
        else:
            time_ms = _now_ms(now_ms)
        written = ceremony.write_plan(
            out, chain_id=chain_id, suite_name=suite, genesis_time_ms=time_ms,
            orgs=ceremony.planned_orgs(specs, counts), identity_valid_days=identity_valid_days,
            ca_valid_days=ca_valid_days,
        )
    except ValueError as exc:
        raise _fail(exc) from exc
    except _ERRORS as exc:
        raise _fail(exc) from exc
    typer.echo(f"plan {out}: chain {chain_id} ({suite}), {len(written['orgs'])} organisations")
    typer.echo(f"  plan hash {ceremony.plan_hash(written)}")
    typer.echo("  send it to every organisation; each runs `pilotchain ceremony contribute --plan ...`")


@app.command("contribute")
def contribute(
    org: Annotated[str, typer.Option("--org", help="This organisation's id (as the plan lists it).")],
    directory: DirOption,
    plan_file: Annotated[Path | None, typer.Option("--plan", help="The coordinator's plan.json.")] = None,
    join: Annotated[
        Path | None, typer.Option("--join", help="Instead of --plan: the genesis.json of a running chain to join.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: the plan's).")] = None,
    validators: Annotated[int | None, typer.Option("--validators", min=1, help="Validator nodes (default: the plan's).")] = None,
    host: Annotated[str, typer.Option("--host", help="Interface the node(s) listen on.")] = "127.0.0.1",
    advertise: Annotated[str | None, typer.Option("--advertise", help="Host or IP the other organisations dial.")] = None,
    base_port: Annotated[int, typer.Option("--base-port", help="Node k: p2p base+2(k-1), gateway the next.")] = 26600,
    passphrase_file: PassphraseFileOption = None,
    ask_passphrase: AskPassphraseOption = False,
    node_passphrase_file: Annotated[
        Path | None, typer.Option("--node-passphrase-file", help="Encrypt the validator key(s) with this file's passphrase.")
    ] = None,
    now_ms: NowOption = None,
) -> None:
    """Each organisation, on its own machine: create its CA, admin, client and validator keys in
    --dir and write the public, CA-signed DIR/contribution.json for the coordinator."""
    try:
        passphrase = given_passphrase(passphrase_file, ask_passphrase, new=True)
        node_passphrase = key_passphrase(node_passphrase_file) if node_passphrase_file is not None else None
        signed = ceremony.contribute(
            directory, org=org, display_name=name, plan_path=plan_file, join_genesis=join, validators=validators,
            host=host, advertise_host=advertise, base_port=base_port, now_ms=_now_ms(now_ms),
            passphrase=passphrase, node_passphrase=node_passphrase,
        )
    except _ERRORS as exc:
        raise _fail(exc) from exc
    from pilotchain.crypto import get_suite
    from pilotchain.identity.armor import dearmor
    from pilotchain.identity.records import OrgCertificate

    body = signed["body"]
    org_certificate = dearmor(body["org_certificate"], OrgCertificate)
    fingerprint = get_suite(body["suite"]).hash(org_certificate.public_key_der).hex()
    typer.echo(f"organisation {org}: keys in {directory} (keep it private)")
    for entry in body["validators"]:
        typer.echo(f"  validator {entry['name']}: p2p {entry['p2p_addr']}, gateway {entry['gateway_url']}")
    typer.echo(f"  CA key id {fingerprint}")
    typer.echo("  read this CA key id to the coordinator over a second channel (phone, in person)")
    typer.echo(f"  send {directory / 'contribution.json'} to the coordinator")


@app.command("assemble")
def assemble(
    plan_file: Annotated[Path, typer.Option("--plan", help="The plan.json.")],
    contributions: Annotated[list[Path], typer.Argument(help="Every organisation's contribution.json.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for genesis.json and network.json.")],
) -> None:
    """Coordinator: verify every contribution against the plan and write genesis.json and the
    public manifest network.json."""
    try:
        manifest = ceremony.assemble(plan_file, contributions, out)
    except _ERRORS as exc:
        raise _fail(exc) from exc
    typer.echo(f"genesis {out / 'genesis.json'} hash {manifest['genesis_hash']}")
    for org in manifest["organizations"]:
        typer.echo(f"  {org['org']:<20} CA key id {org['ca_key_id']}  validators {', '.join(org['validators'])}")
    typer.echo("  compare each CA key id with the one its organisation read to you; then send genesis.json and")
    typer.echo("  network.json to every organisation for `pilotchain ceremony acknowledge`")


@app.command("acknowledge")
def acknowledge(
    directory: DirOption,
    genesis: GenesisOption,
    manifest: ManifestOption,
    passphrase_file: PassphraseFileOption = None,
    ask_passphrase: AskPassphraseOption = False,
) -> None:
    """Each organisation: check the genesis holds exactly its contribution and follows the plan,
    then sign its hash (DIR/ack.json, for the coordinator)."""
    try:
        passphrase = given_passphrase(passphrase_file, ask_passphrase)
        ack, _ = unlocked(lambda p: ceremony.acknowledge(directory, genesis, manifest, passphrase=p), passphrase)
    except _ERRORS as exc:
        raise _fail(exc) from exc
    typer.echo(f"genesis hash {ack['body']['genesis_hash']}")
    typer.echo(f"  {ack['body']['org']} acknowledged it: send {directory / 'ack.json'} to the coordinator")


@app.command("check-acks")
def check_acks(
    genesis: GenesisOption,
    acks: Annotated[list[Path], typer.Argument(help="Every organisation's ack.json.")],
) -> None:
    """Anyone: check every organisation acknowledged this very genesis."""
    try:
        digest = ceremony.check_acks(genesis, acks)
    except _ERRORS as exc:
        raise _fail(exc) from exc
    typer.echo(f"all {len(acks)} organisations acknowledged genesis {digest}")


@app.command("finish")
def finish(
    directory: DirOption,
    genesis: GenesisOption,
    manifest: ManifestOption,
    node_passphrase_file: Annotated[
        str, typer.Option("--node-passphrase-file", help="Path node.json names for an encrypted node key (else the env var).")
    ] = "",
) -> None:
    """Each organisation: write its node home(s) (genesis.json, node.json with the peers), ready
    for `pilotchain node start --home DIR/nodes/<node>`."""
    try:
        homes = ceremony.finish(directory, genesis, manifest, passphrase_file=node_passphrase_file)
    except _ERRORS as exc:
        raise _fail(exc) from exc
    for home in homes:
        typer.echo(f"node home {home}: start it with `pilotchain node start --home {home}`")
        if (home / "validator.json").exists():
            typer.echo(f"  after `gov` add_org, propose add_validator with {home / 'validator.json'}")


@app.command("manifest-add")
def manifest_add(
    manifest: ManifestOption,
    genesis: GenesisOption,
    contribution: Annotated[Path, typer.Argument(help="The joining organisation's contribution.json.")],
    now_ms: NowOption = None,
) -> None:
    """Add an organisation that joins a running chain (its `contribute --join` file) to network.json."""
    try:
        updated = ceremony.manifest_add(manifest, genesis, contribution, now_ms=_now_ms(now_ms))
    except _ERRORS as exc:
        raise _fail(exc) from exc
    added = updated["organizations"][-1]
    typer.echo(f"{manifest}: added {added['org']} (CA key id {added['ca_key_id']}), nodes {', '.join(added['validators'])}")
