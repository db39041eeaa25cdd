"""S1 in `pilotchain demo --scenario health` (and `make demo`): the story across the organisations'
processes, narrated — what each hospital, the patient and the commission do and see."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pilotchain.apps.exchange.client import VaultClient, VaultError
from pilotchain.apps.exchange.network import deploy_contract
from pilotchain.apps.exchange.server import load_config
from pilotchain.apps.health.client import HealthClient, PatientKey
from pilotchain.apps.health.consent import consent_from_fhir, consent_to_fhir
from pilotchain.network.consortium import load_manifest
from pilotchain.sdk import Client, Identity
from pilotchain.sdk._network import load_network

__all__ = ["CONTRACT_SOURCE", "activate", "demo", "roles_of", "run_story"]

CONTRACT_SOURCE = Path(__file__).with_name("contracts") / "health.py"
SUMMARY = (b"Discharge summary. Patient pt-42, 67 y. Admitted 2026-11-30 with community-acquired pneumonia; "
           b"amoxicillin 7 days; discharged 2026-12-05 in good condition. Follow-up chest X-ray in 6 weeks.")


def roles_of(directory: Path) -> tuple[str, str, str]:
    """(the hospital that holds the record, the one that asks, the commission that reviews)."""
    orgs = [o["org"] for o in load_manifest(directory)["organizations"]]
    holder = "hospital" if "hospital" in orgs else orgs[0]
    asker = "university" if "university" in orgs else next(o for o in orgs if o != holder)
    others = [o for o in orgs if o not in (holder, asker)]
    commission = "bigdata-bureau" if "bigdata-bureau" in others else others[0]
    return holder, asker, commission


def activate(directory: Path, console: Any) -> bool:
    _, _, commission = roles_of(directory)
    return deploy_contract(directory, console, name="health", source=CONTRACT_SOURCE,
                           init={"args": {"reviewer_orgs": [commission]}})


def demo(directory: Path, console: Any) -> None:
    """`pilotchain demo --scenario health`."""
    run_story(directory, console)


def run_story(directory: Path, console: Any) -> dict[str, str]:
    """The story; what it created (patient, record, consent, break-glass request)."""
    from rich.table import Table

    from pilotchain.apps.health.cli import disclosure_table

    console.rule("[bold]S1 hospitals[/] — a patient decides who sees their record; break-glass is reviewed")
    if not activate(directory, console):
        return {}
    manifest = load_manifest(directory)
    holder, asker, commission = roles_of(directory)
    who = {entry["org"]: Identity.load(directory / entry["client_identity"]) for entry in manifest["organizations"]}
    pin = load_network(directory)
    with Client(network=pin, identity=who[holder]) as chain_a, Client(network=pin, identity=who[asker]) as chain_b, \
            Client(network=pin, identity=who[commission]) as chain_c, \
            VaultClient(load_config(directory / "vaults" / holder).public_url, who[holder]) as vault_a, \
            VaultClient(load_config(directory / "vaults" / asker).public_url, who[asker]) as vault_b:
        a, b, c = HealthClient(chain_a, who[holder]), HealthClient(chain_b, who[asker]), HealthClient(chain_c, who[commission])
        suffix = str(int(time.time()))[-6:]
        patient_ref, record_id = f"pt-42-{suffix}", f"discharge-{suffix}"
        patient = PatientKey.generate(pin_suite(directory))
        steps = Table(title="what each party does and sees", title_justify="left")
        steps.add_column("who")
        steps.add_column("does")
        steps.add_column("sees", overflow="fold")
        a.enroll(patient_ref, patient)
        steps.add_row("the patient", "makes a key on their phone; shows the public half", "nobody else holds the private key")
        steps.add_row(holder, f"enrolls {patient_ref}'s public key", "vouches for the patient, cannot sign for them")
        vault_a.put(record_id, SUMMARY, media_type="text/plain", classification="important",
                    retention_until_ms=int(time.time() * 1000) + 365 * 86_400_000, policy="health",
                    subjects=[patient_ref])
        steps.add_row(holder, f"stores {record_id} in its vault", "the chain holds a salted commitment, not the text")
        denied = b.request(record_id, "TREAT")
        steps.add_row(asker, "asks for it (purpose TREAT)", f"{denied['decision']}: {denied['rule']}")
        start = int(time.time()) - 60
        fhir = {"resourceType": "Consent", "id": f"consent-{suffix}", "status": "active",
                "subject": {"reference": f"Patient/{patient_ref}"}, "grantee": [{"reference": f"Organization/{asker}"}],
                "decision": "permit",
                "period": {"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                           "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 30 * 86400))},
                "provision": [{"action": [{"coding": [{"code": "access"}]}], "purpose": [{"code": "TREAT"}],
                               "data": [{"meaning": "instance", "reference": {"reference": f"DocumentReference/{record_id}"}}]}]}
        consent = consent_from_fhir(fhir)
        a.grant(consent, patient)
        steps.add_row("the patient", f"signs a FHIR Consent: {asker}, TREAT, 30 days",
                      "recorded on chain; exported back as FHIR: " + consent_to_fhir(consent)["provision"][0]["purpose"][0]["code"])
        granted = b.request(record_id, "TREAT")
        fetched = vault_b.fetch(record_id, "TREAT")
        steps.add_row(asker, "asks again", f"{granted['decision']} by {granted['rule']}; fetched {fetched['size']} bytes, "
                                           "decrypted, commitment verified")
        a.withdraw(patient_ref, consent["id"], patient)
        try:
            vault_b.fetch(record_id, "TREAT")
            after = "delivered (unexpected)"
        except VaultError as exc:
            after = f"the vault refuses: {exc.code}"
        logged = b.request(record_id, "TREAT")
        steps.add_row("the patient", "withdraws the consent", f"{asker}'s next fetch: {after}; request {logged['decision']}, logged")
        glass = b.request(record_id, "ETREAT", break_glass=True, reason="patient unconscious in the emergency room")
        vault_b.fetch(record_id, "ETREAT")
        b.end_break_glass(glass["request_id"])
        steps.add_row(asker, "emergency: breaks the glass (ETREAT)", f"{glass['decision']}, flagged; fetched; ended")
        queue = c.review_queue()
        c.review(glass["request_id"], "justified: unconscious patient, ER physician on duty")
        steps.add_row(f"{commission} (commission)", f"reviews the queue ({len(queue)} open)", "closes it with a finding")
        console.print(steps)
        console.print(disclosure_table(a.disclosures(patient_ref), patient_ref))
        console.print(f"check it offline: [bold]pilotchain audit export --subject {patient_ref} --out {patient_ref}.audit "
                      f"--network {directory} -i {directory}/orgs/{holder}/client.id[/], then "
                      f"[bold]pilotchain audit verify {patient_ref}.audit --genesis {directory}/genesis.json[/]")
        return {"patient": patient_ref, "record": record_id, "consent": consent["id"], "break_glass": glass["request_id"],
                "holder": holder, "asker": asker, "commission": commission}


def pin_suite(directory: Path) -> str:
    return str(load_manifest(directory)["suite"])
