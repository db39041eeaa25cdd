"""``pilotchain health ...``: every step a hospital, a patient (through a hospital's app or with
their own key file) and the health commission's reviewer take. Mounted through the
``pilotchain.commands`` entry points. ``--json`` for scripts; exit 1 when the contract refuses."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app"]

app = typer.Typer(help="S1: records shared between hospitals with the patient's consent, break-glass, "
                       "review, transparency.", no_args_is_help=True)
consent_app = typer.Typer(help="Consents (FHIR R5 Consent in and out), signed by the patient's own key.",
                          no_args_is_help=True)
app.add_typer(consent_app, name="consent")

_out = Console()
_err = Console(stderr=True)

IdentityOption = Annotated[Path | None, typer.Option("--identity", "-i", envvar="PILOTCHAIN_IDENTITY",
                                                     help="Your member identity (a hospital's client, the reviewer's).")]
NetworkOption = Annotated[Path | None, typer.Option("--network", envvar="PILOTCHAIN_NETWORK",
                                                   help="A `pilotchain network init` folder.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
KeyOption = Annotated[Path, typer.Option("--key", help="The signer's own key file (pilotchain health keygen).")]


def _fail(message: str, code: int = 1) -> None:
    _err.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def _health(identity: Path | None, network: Path | None) -> Any:
    from pilotchain.apps.health.client import HealthClient
    from pilotchain.cli.client_cmd import connect
    from pilotchain.sdk import Identity
    from pilotchain.sdk._network import folder_identity

    path = identity or (folder_identity(network) if network is not None else None)
    if path is None:
        _fail("say who you are: --identity FILE (or PILOTCHAIN_IDENTITY, or --network DIR)", 2)
    who = Identity.load(path)  # type: ignore[arg-type]
    return HealthClient(connect(None, network, None, timeout=30.0, identity=who), who)


def _run(call: Any) -> Any:
    from pilotchain.apps.health.client import HealthError
    from pilotchain.apps.health.consent import ConsentError
    from pilotchain.sdk import PilotchainError

    try:
        return call()
    except (HealthError, ConsentError) as exc:
        _fail(str(exc))
    except PilotchainError as exc:
        _fail(str(exc), 3)


def _suite(network: Path | None, fallback: str = "intl") -> str:
    if network is not None and (network / "network.json").is_file():
        return str(json.loads((network / "network.json").read_text())["suite"])
    return fallback


def _key(path: Path, network: Path | None) -> Any:
    from pilotchain.apps.health.client import PatientKey

    try:
        return PatientKey.load(path, _suite(network))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the key {path}: {exc}", 2)


@app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Where to write the new private key (0600).")],
    suite: Annotated[str, typer.Option(help="intl or gm: the network's suite.")] = "intl",
) -> None:
    """A patient's (guardian's, proxy's) own key pair; the public half is printed (hex) for enrolling."""
    from pilotchain.apps.health.client import PatientKey

    key = PatientKey.generate(suite)
    key.save(out)
    _out.print(f"wrote {out}; public key (give it to your hospital to enroll): {key.public_key.hex()}")


@app.command("enroll")
def enroll(
    patient: Annotated[str, typer.Argument(metavar="PATIENT", help="The patient's pseudonymous reference.")],
    public_key: Annotated[str, typer.Option("--public-key", help="The patient's public key (hex, from keygen).")],
    identity: IdentityOption = None, network: NetworkOption = None,
) -> None:
    """Vouch for a patient's public key (you never hold the private half)."""
    client = _health(identity, network)
    _run(lambda: client.enroll(patient, bytes.fromhex(public_key)))
    _out.print(f"enrolled {patient}")


@consent_app.command("grant")
def consent_grant(
    fhir: Annotated[Path, typer.Argument(metavar="CONSENT.json", help="A FHIR R5 Consent resource.")],
    key: KeyOption, signer: Annotated[str, typer.Option(help="'patient' or the proxy's name.")] = "patient",
    identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False,
) -> None:
    """Validate a FHIR Consent, sign it with the patient's (or proxy's) key, record it."""
    from pilotchain.apps.health.consent import consent_from_fhir

    consent = _run(lambda: consent_from_fhir(fhir.read_text()))
    client = _health(identity, network)
    _run(lambda: client.grant(consent, _key(key, network), signer=signer))
    if as_json:
        typer.echo(json.dumps(consent, indent=2))
    else:
        _out.print(f"consent {consent['id']}: {consent['grantee']} may {consent['action']} for "
                   f"{', '.join(consent['purposes'])} until {time.strftime('%Y-%m-%d', time.gmtime(consent['end_ms'] / 1000))}")


@consent_app.command("withdraw")
def consent_withdraw(
    consent_id: Annotated[str, typer.Argument(metavar="ID")],
    patient: Annotated[str, typer.Option(help="The patient's reference.")],
    key: KeyOption, signer: Annotated[str, typer.Option(help="'patient' or the proxy's name.")] = "patient",
    identity: IdentityOption = None, network: NetworkOption = None,
) -> None:
    """Withdraw a consent: every access it allowed ends now."""
    client = _health(identity, network)
    _run(lambda: client.withdraw(patient, consent_id, _key(key, network), signer=signer))
    _out.print(f"consent {consent_id} withdrawn")


@consent_app.command("export")
def consent_export(
    consent_id: Annotated[str, typer.Argument(metavar="ID")],
    identity: IdentityOption = None, network: NetworkOption = None,
) -> None:
    """The consent as recorded, as a FHIR R5 Consent (status inactive once withdrawn)."""
    from pilotchain.apps.health.consent import consent_to_fhir

    client = _health(identity, network)
    stored = _run(lambda: client.client.query("health", "consent", {"consent_id": consent_id}))
    if stored is None:
        _fail(f"no consent {consent_id}")
    canonical = {k: stored[k] for k in ("id", "patient", "grantee", "actor_role", "purposes", "start_ms", "end_ms",
                                        "action", "data")}
    typer.echo(json.dumps(consent_to_fhir(canonical, status="active" if stored["status"] == "active" else "inactive"),
                          indent=2))


@app.command("request")
def request(
    payload_id: Annotated[str, typer.Argument(metavar="PAYLOAD")],
    purpose: Annotated[str, typer.Option(help="v3-ActReason code: TREAT, ETREAT, HPAYMT, HRESCH, PUBHLTH, ...")],
    break_glass: Annotated[bool, typer.Option("--break-glass", help="Emergency access (purpose ETREAT).")] = False,
    reason: Annotated[str, typer.Option(help="Why (shown to the reviewer).")] = "",
    identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False,
) -> None:
    """Ask for a patient's record: PERMIT (then `pilotchain data fetch`) or DENY, with the rule."""
    client = _health(identity, network)
    result = _run(lambda: client.request(payload_id, purpose, break_glass=break_glass, reason=reason))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    flag = " [bold red](break-glass: queued for review)[/]" if result["break_glass"] else ""
    _out.print(f"{result['decision']} by {result['rule']}{flag}; request {result['request_id']}")
    if result["decision"] != "PERMIT":
        raise typer.Exit(1)


@app.command("end-break-glass")
def end_break_glass(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST")],
    identity: IdentityOption = None, network: NetworkOption = None,
) -> None:
    """End an emergency access (its stop is recorded for the review)."""
    client = _health(identity, network)
    _run(lambda: client.end_break_glass(request_id))
    _out.print(f"break-glass access {request_id} ended")


@app.command("reviews")
def reviews(identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False) -> None:
    """The break-glass accesses waiting for the commission's review."""
    client = _health(identity, network)
    rows = _run(client.review_queue)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="break-glass review queue", title_justify="left")
    for column in ("request", "record", "by", "reason", "started", "stopped"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["request_id"][:12] + "…", row["payload_id"], row["requester"], row["reason"],
                      _when(row["ms"]), _when(row["stopped_ms"]))
    _out.print(table)


@app.command("review")
def review(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST")],
    finding: Annotated[str, typer.Option(help="The reviewer's finding.")],
    identity: IdentityOption = None, network: NetworkOption = None,
) -> None:
    """Close a break-glass review with a finding (reviewer organisations only)."""
    client = _health(identity, network)
    _run(lambda: client.review(request_id, finding))
    _out.print(f"review of {request_id} closed")


@app.command("disclosures")
def disclosures(
    patient: Annotated[str, typer.Argument(metavar="PATIENT")],
    identity: IdentityOption = None, network: NetworkOption = None, as_json: JsonOption = False,
) -> None:
    """Every request for a patient's records: who, when, purpose, decision, break-glass."""
    client = _health(identity, network)
    rows = _run(lambda: client.disclosures(patient))
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    _out.print(disclosure_table(rows, patient))


def disclosure_table(rows: list[dict[str, Any]], patient: str) -> Table:
    table = Table(title=f"who asked for {patient}'s records", title_justify="left")
    for column in ("when", "who", "record", "purpose", "decision", "rule"):
        table.add_column(column, overflow="fold")
    for row in rows:
        decision = ("[green]" if row["decision"] == "PERMIT" else "[red]") + row["decision"] + "[/]"
        if row["break_glass"]:
            decision += " [bold red]break-glass[/]"
        table.add_row(_when(row["ms"]), f"{row['requester']} ({row['org']})", row["payload_id"], row["purpose"],
                      decision, row["rule"])
    return table


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z"
