"""The credentials application beside a local network: ``network up`` activates the
``credentials`` contract through governance (when the folder holds every organisation's admin
identity, as ``network init``'s one-machine layout does), and ``pilotchain demo --scenario
diplomas`` tells scenario S3: a university issues a class of 500 diplomas in one anchored batch,
a graduate presents three claims by QR code, an employer verifies offline, the university
revokes one diploma and rotates its key. Declared in ``pyproject.toml`` under
``pilotchain.network_services`` and ``pilotchain.demo_scenarios``.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from pilotchain.apps.credentials.chain import contract_code, deploy_payload, export_snapshot
from pilotchain.apps.credentials.diploma import Presentation, disclosure_names
from pilotchain.apps.credentials.issuer import IssuerHome, create_issuer
from pilotchain.apps.credentials.sdjwt import b64url_decode, make_disclosure, select_disclosures
from pilotchain.apps.credentials.snapshot import CONTRACT, verify_snapshot
from pilotchain.apps.credentials.statuslist import STATUS_INVALID
from pilotchain.apps.credentials.verify import verify_presentation
from pilotchain.network.consortium import load_genesis, load_manifest
from pilotchain.network.services import ServiceError
from pilotchain.sdk import Client, Identity
from pilotchain.sdk._network import load_network

__all__ = ["demo", "deploy_contract", "service"]

CLASS_SIZE = 500
GIVEN_NAMES = ("Wei", "Fang", "Min", "Jing", "Lei", "Yan", "Hao", "Xin", "Ying", "Jun", "Ling", "Tao", "Mei",
               "Qiang", "Hui", "Bo")
FAMILY_NAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun", "Ma",
                "Zhu", "Hu", "Guo")
DEGREES = (("Bachelor of Engineering", "Computer Science"), ("Bachelor of Science", "Mathematics"),
           ("Bachelor of Economics", "Finance"), ("Master of Science", "Data Science"))
GRADES = ("first class", "upper second", "lower second", "pass")


def _client(directory: Path, identity: Identity) -> Client:
    return Client(network=load_network(directory), identity=identity, timeout=60.0)


def deploy_contract(directory: Path, console: Any) -> bool:
    """Activate ``credentials`` through governance with the folder's admin identities; False when
    it cannot (some admin identity is not in this folder: the organisations approve it themselves)."""
    manifest = load_manifest(directory)
    admins = [directory / org["admin_identity"] for org in manifest["organizations"]]
    first = Identity.load(admins[0])
    with _client(directory, first) as client:
        if client.query("gov", "contract", {"name": CONTRACT}) is not None:
            return True
        if not all(path.is_file() for path in admins):
            console.print(f"[yellow]{CONTRACT} is not active and this folder lacks some admins' identities[/]: "
                          f"propose it with `pilotchain contract deploy src/pilotchain/apps/credentials/contracts/"
                          f"{CONTRACT}.py --name {CONTRACT}` and have the organisations approve it")
            return False
        document = client.invoke(first, "gov", "propose", {"kind": "deploy_contract",
                                                           "payload": deploy_payload(first)}).result
        for path in admins[1:]:
            if document["status"] == "executed":
                break
            document = client.invoke(Identity.load(path), "gov", "approve", {"id": document["id"]}).result
        if document["status"] != "executed":
            raise ServiceError(f"{CONTRACT} was proposed (#{document['id']}) but not approved by enough organisations")
        console.print(f"activated the verifiable-credentials contract {CONTRACT} through governance "
                      f"(proposal #{document['id']})")
        return True


class CredentialsService:
    """No process of its own: ``up`` makes sure the contract is active."""

    name = "credentials"

    def up(self, directory: Path, console: Any) -> None:
        deploy_contract(directory, console)

    def down(self, directory: Path, console: Any) -> None:
        return None

    def status(self, directory: Path) -> list[dict[str, Any]]:
        return []


service = CredentialsService()


def class_roll(size: int, *, year: int, seed: int = 2026) -> list[dict[str, Any]]:
    """A made-up graduating class (the demo's and the benchmark's)."""
    rng = random.Random(seed)
    roll = []
    for i in range(size):
        degree, field = DEGREES[i % len(DEGREES)]
        roll.append({"given_name": rng.choice(GIVEN_NAMES), "family_name": rng.choice(FAMILY_NAMES),
                     "birthdate": f"{year - 22}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                     "student_id": f"{year - 4}{i:05d}", "degree": degree, "field_of_study": field,
                     "graduation_year": year, "grade": rng.choice(GRADES)})
    return sorted(roll, key=lambda r: (r["family_name"], r["given_name"]))  # a roll is alphabetical


def _pick(manifest: dict[str, Any], preferred: str, fallback: int) -> dict[str, Any]:
    for org in manifest["organizations"]:
        if org["org"] == preferred:
            return dict(org)
    return dict(manifest["organizations"][min(fallback, len(manifest["organizations"]) - 1)])


def demo(directory: Path, console: Any) -> None:
    """`pilotchain demo --scenario diplomas`: scenario S3 on the running network."""
    from rich.table import Table

    from pilotchain.apps.credentials.cli import print_report
    from pilotchain.apps.credentials.qr import write_qr

    if not deploy_contract(directory, console):
        return
    manifest = load_manifest(directory)
    genesis = load_genesis(directory / "genesis.json")
    university, employer = _pick(manifest, "university", 0), _pick(manifest, "bank", 1)
    admin = Identity.load(directory / university["admin_identity"])
    registrar = Identity.load(directory / university["client_identity"])
    reader = Identity.load(directory / employer["client_identity"])
    work = directory / "credentials"
    work.mkdir(exist_ok=True)
    year = time.gmtime().tm_year
    console.rule("[bold]diplomas[/] — SD-JWT VC credentials, one Merkle root per class, verified offline")
    steps = Table(title="scenario S3", title_justify="left")
    steps.add_column("step")
    steps.add_column("what happened", overflow="fold")
    with _client(directory, registrar) as chain:
        home_path = work / "issuer"
        if (home_path / "issuer.json").is_file():
            home = IssuerHome(home_path)
        else:
            home = create_issuer(home_path, chain, admin, iss=f"https://registrar.{university['org']}.example",
                                 name=str(university.get("display_name") or university["org"]), now_ms=int(time.time() * 1000))
        kid = home.config["keys"][-1]["kid"]
        steps.add_row(f"{university['org']} registers its issuer key",
                      f"{home.iss}: key {kid} ({home.algorithm.alg}) with its validity period, and a status list "
                      f"of {home.config['lists'][-1]['size']:,} entries")
        roll = class_roll(CLASS_SIZE, year=year)
        batch_id = f"class-of-{year}-{int(time.time())}"
        started = time.perf_counter()
        batch = home.issue(chain, registrar, roll, batch_id=batch_id)
        issue_s = time.perf_counter() - started
        steps.add_row(f"issues a class of {CLASS_SIZE}",
                      f"{CLASS_SIZE} diplomas signed and anchored as one Merkle root (root "
                      f"{batch.tree_head['root'].hex()[:16]}…) in one transaction: {issue_s:.2f} s, "
                      f"{CLASS_SIZE / issue_s:,.0f} diplomas/s; each carries its inclusion proof and a random "
                      f"status index")
        graduate = batch.diplomas[CLASS_SIZE // 3]
        names = disclosure_names(["name", "degree", "year"])
        shown = Presentation(chain=graduate.presentation.chain, anchor=graduate.presentation.anchor,
                             sd_jwt=select_disclosures(graduate.presentation.sd_jwt, names))
        (work / "diploma.json").write_text(graduate.presentation.to_json() + "\n")
        (work / "presentation.json").write_text(shown.to_json() + "\n")
        qr_text = shown.to_qr_text()
        (work / "presentation.qr.txt").write_text(qr_text + "\n")
        version = write_qr(qr_text, work / "presentation.png")
        steps.add_row("a graduate presents name, degree, year",
                      f"QR code version {version} ({len(qr_text):,} characters) in {work / 'presentation.png'}; "
                      "birth date, student number, field and grade stay hidden behind salted digests")
        with _client(directory, reader) as employer_chain:
            snapshot = export_snapshot(employer_chain, issuers=[home.iss], genesis=genesis)
        (work / "snapshot.bin").write_bytes(snapshot)
        steps.add_row(f"{employer['org']} takes a chain snapshot",
                      f"{len(snapshot):,} bytes: certified headers back to genesis, the anchoring transaction, "
                      f"the issuer's keys and status list with proofs ({work / 'snapshot.bin'})")
        verified = verify_snapshot(snapshot, genesis, contract_code=contract_code())
        report = verify_presentation(qr_text, verified, now_ms=int(time.time() * 1000))
        console.print(steps)
        console.print(f"[bold]{employer['org']} verifies the QR code offline[/] (no university, no node):")
        print_report(report, console)

        victim = batch.diplomas[7]
        record = home.find(student_id=victim.student_id, batch=batch_id)
        height = home.set_status(chain, registrar, [record], STATUS_INVALID)
        rotated, retired = home.rotate(chain, admin, now_ms=int(time.time() * 1000))
        with _client(directory, reader) as employer_chain:
            fresh = verify_snapshot(export_snapshot(employer_chain, issuers=[home.iss], genesis=genesis), genesis,
                                    contract_code=contract_code())
        now_ms = int(time.time() * 1000)
        started = time.perf_counter()
        reports = [verify_presentation(d.presentation, fresh, now_ms=now_ms) for d in batch.diplomas]
        verify_s = time.perf_counter() - started
        passed = sum(r.ok for r in reports)
        revoked = verify_presentation(victim.presentation, fresh, now_ms=now_ms)
        console.print(f"[bold]{university['org']} revokes one diploma[/] (status-list entry {record.index}, one "
                      f"transaction, block {height}) and rotates its key ({retired} retired, {rotated} from now). "
                      f"With a fresh snapshot:")
        status_line = next(check for check in revoked.checks if check.name == "status")
        console.print(f"  the revoked diploma: [red]✗[/] status  {status_line.detail}")
        console.print(f"  the whole class: {passed} of {CLASS_SIZE} verify, {CLASS_SIZE - passed} fails "
                      f"({CLASS_SIZE / verify_s:,.0f} offline verifications/s); diplomas signed with {retired} "
                      "stay valid after the rotation: their batch was anchored while it was")
        jwt, *disclosures, _ = shown.sd_jwt.split("~")
        edited = []
        for disclosure in disclosures:  # the graduate "improves" the degree, keeping the salt
            salt, name, value = json.loads(b64url_decode(disclosure))
            if name == "degree":
                value = "Master of " + str(value).split(" of ", 1)[-1]
            edited.append(make_disclosure(b64url_decode(salt), name, value))
        tampered = Presentation(chain=shown.chain, anchor=shown.anchor, sd_jwt="~".join([jwt, *edited, ""]))
        broken = verify_presentation(tampered, fresh, now_ms=now_ms)
        first = broken.failed()[0] if broken.failed() else None
        console.print(f"  a presentation whose degree was edited: [red]✗ {first.name}[/]  {first.detail}"
                      if first is not None else "  [red]an edited degree still verified[/]")
    console.print(f"try: [bold]pilotchain credential verify {work / 'presentation.qr.txt'} --snapshot "
                  f"{work / 'snapshot.bin'} --genesis {directory / 'genesis.json'}[/]\n"
                  f"     [bold]pilotchain credential verify {work / 'presentation.json'} --online --network "
                  f"{directory} -i {directory / employer['client_identity']}[/]")
