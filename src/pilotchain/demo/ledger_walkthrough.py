"""A local ledger walkthrough over a real consortium (until the multi-process network demo).

Creates the pilot consortium in a fresh folder (one CA per organisation, identities, genesis),
opens a ledger from that genesis, lets clients of several organisations submit signed kv
transactions (including some that must be refused), builds and commits blocks, and checks every
transaction and state value against the block headers with their proofs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pilotchain.codec import decode, encode
from pilotchain.contracts.kv import KvContract
from pilotchain.crypto import get_suite
from pilotchain.errors import InvariantBroken
from pilotchain.identity.files import load_identity
from pilotchain.ledger.auth import MembershipAuthenticator
from pilotchain.ledger.block import verify_tx_proof
from pilotchain.ledger.commitment import verify_state_proof
from pilotchain.ledger.execution import ContractRegistry
from pilotchain.ledger.tx import TxBody, encode_args, sign_transaction
from pilotchain.network.consortium import init_network, load_genesis
from pilotchain.node.chain import Ledger


@dataclass
class WalkthroughSummary:
    blocks: int
    transactions: int
    committed_ok: int
    refused_by_contract: int
    proofs_checked: int
    seconds: float
    state_root: str
    folder: str


def run(directory: Path, suite_name: str, *, blocks: int = 5, txs_per_block: int = 200,
        console: Console | None = None) -> WalkthroughSummary:
    console = console or Console()
    now_ms = int(time.time() * 1000)
    manifest = init_network(directory, suite_name=suite_name, now_ms=now_ms, validators=4)
    genesis = load_genesis(directory / "genesis.json")
    suite = get_suite(suite_name)
    console.print(f"[bold]consortium[/] {genesis.chain_id} on the [bold]{suite_name}[/] suite: "
                  f"{len(manifest['organizations'])} organisations, {len(genesis.validators)} validators, folder {directory}")
    clients = [load_identity(directory / org["client_identity"]) for org in manifest["organizations"]]
    registry = ContractRegistry()
    registry.register(KvContract())
    ledger = Ledger.open(directory / "walkthrough-ledger", genesis, MembershipAuthenticator.from_genesis(genesis), registry)
    started = time.perf_counter()
    committed_ok = refused = proofs = 0
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("blocks", total=blocks)
            for height in range(1, blocks + 1):
                raws = []
                for i in range(txs_per_block):
                    client = clients[i % len(clients)]
                    # every org writes its own keys; every 10th tx tries to overwrite the key the
                    # previous transaction's organisation just wrote (the kv owner rule refuses it)
                    slot = i - 1 if i % 10 == 9 else i
                    owner = clients[slot % len(clients)]
                    body = TxBody(
                        chain_id=genesis.chain_id,
                        signer_certificate=encode(client.certificate),
                        nonce=os.urandom(16),
                        expires_at_ms=now_ms + 600_000,
                        contract="kv",
                        method="put",
                        args=encode_args({"key": f"{owner.certificate.org_id}/record-{slot}", "value": height * 1000 + i}),
                    )
                    raws.append(sign_transaction(suite, client.private_key, body))
                block = ledger.build_block(raws, proposer=genesis.validators[height % len(genesis.validators)].name,
                                           timestamp_ms=max(int(time.time() * 1000), ledger.head().timestamp_ms + 1))
                ledger.commit_block(block)
                committed_ok += sum(r.status == "OK" for r in block.receipts)
                refused += sum(r.status != "OK" for r in block.receipts)
                header = block.header
                for index in range(0, len(block.txs), 17):
                    record = ledger.get_transaction(block.receipts[index].tx_id)
                    if not (record is not None):
                        raise InvariantBroken('invariant broken: record is not None')
                    if not (verify_tx_proof(suite, header, record.tx_raw, record.receipt, record.proof)):
                        raise InvariantBroken('invariant broken: verify_tx_proof(suite, header, record.tx_raw, record.receipt, record.proof)')
                    proofs += 1
                progress.advance(task)
        for index, client in enumerate(clients):
            key = f"{client.certificate.org_id}/record-{index}".encode()
            value, proof = ledger.read_state("kv", b"v/" + key)
            if not (value is not None):
                raise InvariantBroken('invariant broken: value is not None')
            if not (verify_state_proof(ledger.head().state_root, b"kv\x00v/" + key, value, proof, suite.hash)):
                raise InvariantBroken('invariant broken: verify_state_proof(ledger.head().state_root, b"kv\\x00v/" + key, value, proof, suite.hash)')
            if not (decode(value, tuple[str, int])[0] == client.certificate.org_id):
                raise InvariantBroken('invariant broken: decode(value, tuple[str, int])[0] == client.certificate.org_id')
            proofs += 1
        seconds = time.perf_counter() - started
        return WalkthroughSummary(
            blocks=blocks, transactions=blocks * txs_per_block, committed_ok=committed_ok,
            refused_by_contract=refused, proofs_checked=proofs, seconds=seconds,
            state_root=ledger.head().state_root.hex(), folder=str(directory),
        )
    finally:
        ledger.close()


def print_summary(summary: WalkthroughSummary, console: Console) -> None:
    table = Table(title="ledger walkthrough", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("blocks committed", f"{summary.blocks:,}")
    table.add_row("transactions", f"{summary.transactions:,}")
    table.add_row("  executed OK", f"{summary.committed_ok:,}")
    table.add_row("  refused by the kv owner rule", f"{summary.refused_by_contract:,}")
    table.add_row("proofs verified (tx+receipt, state)", f"{summary.proofs_checked:,}")
    table.add_row("transactions/s (one process)", f"{summary.transactions / summary.seconds:,.0f}")
    table.add_row("state root", summary.state_root[:16] + "…")
    table.add_row("folder", summary.folder)
    console.print(table)
