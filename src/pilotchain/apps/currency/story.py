"""The currency's story, narrated (``pilotchain demo --scenario currency``): issuance to two
operators by maker-checker, tiered wallets, a limit refused, a red-envelope campaign, an escrow,
offline vouchers with one double spend caught, a lawful disclosure, the supply audit."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from pilotchain.apps.currency.audit import audit_chain
from pilotchain.apps.currency.client import CurrencyClient, CurrencyError, HolderKey
from pilotchain.apps.currency.network import load_profile, officers_of
from pilotchain.apps.currency.offline import OfflineDevice, check_voucher, issue_device_certificate
from pilotchain.apps.exchange.client import VaultClient
from pilotchain.apps.exchange.server import load_config
from pilotchain.network.consortium import load_manifest
from pilotchain.node.config import load_genesis
from pilotchain.sdk import Client, Identity
from pilotchain.sdk._network import load_network

__all__ = ["run_story", "yuan"]

CNY = 100
DAY_MS = 86_400_000


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // CNY:,}.{abs(fen) % CNY:02d}"


def _kyc(vault: VaultClient, wallet: str, holder: dict[str, str]) -> str:
    payload_id = f"kyc-{wallet}"
    vault.put(payload_id, json.dumps({"wallet": wallet, **holder}).encode(), media_type="application/json",
              classification="core", retention_until_ms=int(time.time() * 1000) + 10 * 365 * DAY_MS,
              policy="currency", subjects=[wallet])
    return payload_id


def run_story(directory: Path, console: Any) -> dict[str, Any]:
    """The story on a running currency network; what it created (for tests)."""
    from rich.table import Table

    manifest = load_manifest(directory)
    profile = load_profile(directory)
    central = profile["central_bank"]
    banks = list(profile["operators"])[:2]
    bank_a, bank_b = banks
    suite = str(manifest["suite"])
    pin = load_network(directory)
    who = {entry["org"]: Identity.load(directory / entry["client_identity"]) for entry in manifest["organizations"]}
    tag = secrets.token_hex(3)
    steps = Table(title="the digital yuan, step by step", title_justify="left")
    steps.add_column("who")
    steps.add_column("does")
    steps.add_column("sees", overflow="fold")
    with Client(network=pin, identity=who[central], timeout=60.0) as chain, \
            VaultClient(load_config(directory / "vaults" / bank_a).public_url, who[bank_a]) as vault_a, \
            VaultClient(load_config(directory / "vaults" / bank_b).public_url, who[bank_b]) as vault_b, \
            VaultClient(load_config(directory / "vaults" / central).public_url, who[central]) as vault_cb:
        maker, checker = (CurrencyClient(chain, o) for o in officers_of(directory)[:2])
        ops = {bank_a: CurrencyClient(chain, who[bank_a]), bank_b: CurrencyClient(chain, who[bank_b])}
        vaults = {bank_a: vault_a, bank_b: vault_b}

        # 1. issuance, maker-checker
        for org, amount in ((bank_a, 5_000_000 * CNY), (bank_b, 3_000_000 * CNY)):
            proposed = maker.propose("issue", {"operator": org, "amount": amount}, f"issue-{org}-{tag}")
            try:
                maker.approve(proposed["id"])
                alone = "approved alone (unexpected)"
            except CurrencyError as exc:
                alone = f"refused: {exc.code}"
            checker.approve(proposed["id"])
            steps.add_row("central bank", f"{maker.identity.subject} proposes issuing {yuan(amount)} to {org}; "
                          f"{checker.identity.subject} approves", f"the maker approving alone: {alone}; {org}'s vault "
                          f"{yuan(maker.operator(org)['vault'])}")  # type: ignore[index]

        # 2. tiered wallets, KYC in the operators' vaults, pseudonyms on chain
        keys: dict[str, HolderKey] = {}
        plan = [("alice", bank_a, "personal", 4, "", {"mobile": "+86 138 0013 8000"}, 8_000),
                ("bob", bank_b, "personal", 2, "acct-6222-0202", {"name": "Bob Li", "id": "110101198807070000"}, 200_000),
                ("noodles", bank_b, "merchant", 0, "", {"name": "Lanzhou Noodles Ltd", "licence": "91110000X"}, 0),
                ("gym", bank_b, "merchant", 0, "", {"name": "City Gym Ltd", "licence": "91110000Y"}, 0),
                ("city-gov", bank_a, "corporate", 0, "", {"name": "City Commerce Bureau"}, 500_000)]
        ids: dict[str, str] = {}
        for name, org, kind, tier, linked, holder, balance in plan:
            keys[name] = HolderKey.generate(suite)
            wallet = f"{name}-{tag}"
            ids[name] = wallet
            kyc = _kyc(vaults[org], wallet, holder)
            ops[org].open_wallet(wallet, keys[name], kind=kind, tier=tier, linked=linked, kyc=kyc)
            if balance:
                ops[org].load(wallet, balance * CNY)
        steps.add_row("operators", "open wallets after KYC: alice tier 4 (a mobile number), bob tier 2 (+ bank "
                      "account), two merchants, the city's corporate wallet",
                      "the chain holds pseudonyms only (" + ", ".join(ids.values()) + "); KYC records stay in each "
                      "operator's vault")

        def pay(name: str, payee: str, amount: int) -> dict[str, Any]:
            org = bank_a if name in ("alice", "city-gov") else bank_b
            return ops[org].pay(keys[name], ids[name], ids[payee], amount)

        # 3. a limit refused
        try:
            pay("alice", "noodles", 2_500 * CNY)
            refused = "paid (unexpected)"
        except CurrencyError as exc:
            refused = exc.message
        paid = pay("alice", "noodles", 38 * CNY)
        left = ops[bank_a].wallet(ids["alice"])["left"]  # type: ignore[index]
        steps.add_row("alice (tier 4)", "pays ¥2,500.00, then ¥38.00 for noodles",
                      f"refused: {refused}; then paid; {yuan(left['daily'])} left today")

        # 4. a red-envelope campaign
        now = int(time.time() * 1000)
        campaign = f"spring-{tag}"
        ops[bank_a].envelope_campaign(keys["city-gov"], ids["city-gov"], campaign, face=50 * CNY, count=2,
                                      merchants=[ids["noodles"]], from_ms=now - 60_000, until_ms=now + 30 * DAY_MS)
        for name in ("alice", "bob"):
            ops[bank_a].envelope_grant(campaign, ids[name])
        spent = pay("alice", "noodles", 62 * CNY)
        steps.add_row("city commerce bureau", "funds 2 red envelopes of ¥50 for the noodle shop, 30 days",
                      f"alice's next ¥62.00 meal: {yuan(spent['envelopes'])} from the envelope first, "
                      f"{yuan(spent['own'])} own funds; unspent value returns to the bureau when the campaign ends")

        # 5. prepaid escrow
        escrow = ops[bank_b].escrow_open(keys["bob"], ids["bob"], ids["gym"], unit_price=80 * CNY, units=10,
                                         until_ms=now + 90 * DAY_MS)
        ops[bank_b].escrow_deliver(keys["gym"], ids["gym"], escrow["id"], 2)
        stopped = ops[bank_b].escrow_stop(escrow["id"], "merchant", keys["gym"], ids["gym"])
        steps.add_row("bob and the gym", "bob prepays 10 classes (¥800.00, frozen in his wallet); 2 delivered; the "
                      "gym closes", f"the gym got {yuan(2 * 80 * CNY)}; {stopped['refunded']} classes refunded to bob")

        # 6. offline vouchers, one double spend
        card_key = HolderKey.generate(suite)
        card = f"card-{tag}"
        ops[bank_a].offline_fund(keys["alice"], ids["alice"], card, card_key.public_key, 300 * CNY)
        device = OfflineDevice(card, card_key, chain.chain_id())
        device.certify(issue_device_certificate(who[bank_a], chain.chain_id(),
                                                ops[bank_a].query("device", {"device_id": card})))
        honest = [device.voucher(ids["noodles"], 25 * CNY), device.voucher(ids["gym"], 40 * CNY)]
        # the noodle shop's terminal checks, offline, the card's signature and bank-a's device certificate
        check_voucher(chain.chain_id(), honest[0], card_key.public_key, suite, certificate=device.certificate,
                      genesis=load_genesis(directory / "genesis.json"))
        forged = device.forge_with_counter(1, ids["gym"], 90 * CNY, int(time.time() * 1000))
        first = ops[bank_b].settle(ids["noodles"], [honest[0]])
        second = ops[bank_b].settle(ids["gym"], [honest[1], forged])
        caught = ops[bank_b].query("device", {"device_id": card})
        steps.add_row("alice's card, offline", "pays the noodle shop ¥25 and the gym ¥40 with vouchers while both "
                      "are offline (each terminal checks bank-a's device certificate against genesis); a tampered "
                      "card re-uses counter 1 for ¥90",
                      f"on reconnection: {first[0]['status']}, {second[0]['status']}, {second[1]['status']} — "
                      f"attributed to card {card} of wallet {caught['wallet']} ({caught['status']})")

        # 7. a lawful disclosure
        large = pay("bob", "noodles", 50_000 * CNY)
        request = maker.disclosure_request(ids["bob"], "AML-law-art-16", "a large payment to a restaurant")
        decision = checker.disclosure_approve(request["id"])
        vault_cb.fetch(decision["kyc"], "AML")
        holder = json.loads(b"".join(vault_cb.content(decision["kyc"])))
        small = maker.disclosure_request(ids["alice"], "AML-law-art-16", "curiosity")
        kept = checker.disclosure_approve(small["id"])
        steps.add_row("the regulator", f"bob pays {yuan(large['amount'])} (large value); an officer asks who holds "
                      f"{ids['bob']}, another approves",
                      f"{decision['status']} ({decision['rule']}); the KYC record came from {decision['operator']}'s "
                      f"vault: {holder['name']}. Asking about alice: {kept['status']} — {kept['rule']}")

        # 8. the supply audit
        auditor = Identity.load(directory / profile["auditor"])
        with Client(network=pin, identity=auditor, timeout=120.0) as reader:
            report = audit_chain(reader)
        console.print(steps)
        audit = Table(title=f"supply audit at block {report['height']} (replayed from genesis, checked against state)",
                      title_justify="left")
        audit.add_column("")
        audit.add_column("amount", justify="right")
        for name in ("issued", "redeemed", "vaults", "wallets", "envelopes", "held", "offline"):
            audit.add_row(name, yuan(report[name]))
        audit.add_row("issued − redeemed = Σ buckets", "[green]yes[/]" if report["balanced"] else "[red]NO[/]")
        console.print(audit)
        console.print(f"try: [bold]pilotchain currency wallet show {ids['alice']} --network {directory}[/], "
                      f"[bold]pilotchain currency audit supply --network {directory} -i {directory / profile['auditor']}[/]")
        return {"ids": ids, "paid": paid, "campaign": campaign, "escrow": escrow["id"], "card": card,
                "verdicts": [first[0]["status"], second[0]["status"], second[1]["status"]],
                "disclosure": decision, "refused_disclosure": kept, "audit": report, "limit_refused": refused}
