"""A transaction nested to any depth is refused at admission, identically on every node, and the
chain goes on: nothing about it depends on a node's stack depth (issue 13: a 966-deep argument
used to be executed differently by proposer and validators and stalled the chain)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotchain.ledger.tx import RejectCode, TxBody, TxRejected, sign_transaction
from pilotchain.node.api import TxState
from pilotchain.node.local import LocalNode
from pilotchain.testing import Consortium
from tests.gateway.helpers import run, signed

NOW = 1_800_000_000_000


def _deep(consortium: Consortium, depth: int) -> bytes:
    alice = consortium.clients["bigdata-bureau"]
    body = TxBody(chain_id=consortium.genesis.chain_id, signer_certificate=alice.certificate_bytes,
                  nonce=b"deep-%d" % depth, expires_at_ms=NOW + 60_000, contract="kv", method="put",
                  args=b"\x81\xa3key\xa1k\xa5value" + b"\x91" * depth + b"\x01")
    return sign_transaction(alice.suite, alice.bundle.private_key, body)


@pytest.mark.parametrize("depth", [40, 966, 5_000])
def test_deep_arguments_are_refused_at_admission_and_the_chain_goes_on(consortium: Consortium, tmp_path: Path,
                                                                      depth: int) -> None:
    async def main() -> None:
        node = LocalNode.open(tmp_path / "d", consortium.genesis, clock_ms=lambda: NOW)
        try:
            with pytest.raises(TxRejected) as info:
                await node.submit_tx(_deep(consortium, depth))
            assert info.value.code is RejectCode.BAD_ARGUMENTS
            refused = await node.submit_txs([_deep(consortium, depth)])
            assert isinstance(refused[0], TxRejected) and refused[0].code is RejectCode.BAD_ARGUMENTS
            assert info.value.tx_id is not None
            assert node.tx_status(info.value.tx_id).state == TxState.REJECTED
            # a block built from a batch that contains it leaves it out and commits the rest
            raw, tx_id = signed(consortium.clients["bigdata-bureau"], consortium, now_ms=NOW)
            block = node.ledger.build_block([_deep(consortium, depth), raw], proposer="dev", timestamp_ms=NOW)
            assert [receipt.tx_id.hex() for receipt in block.receipts] == [tx_id]
            node.ledger.commit_block(block)
            assert node.ledger.height == 1
        finally:
            await node.close()

    run(main())
