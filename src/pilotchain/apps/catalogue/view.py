"""Proven reads of the ``catalogue`` contract's state, for a department's vault.

The same discipline as the exchange's :class:`~pilotchain.apps.exchange.chainview.ChainView`
(whose client and certificate checks it uses): every value comes with a state proof against a
block header carrying a commit certificate of the validators in force, and a decision to release
data is taken only on a header no older than the vault's freshness bound (``STALE_CHAIN``
otherwise). Each fact is proven on its own block; all of them are at most that old.
"""

from __future__ import annotations

from typing import Any

from pilotchain.apps.catalogue.records import CONTRACT, CatalogueError, state_key
from pilotchain.apps.exchange.chainview import ChainView, ProvenFact
from pilotchain.codec import CodecError, decode
from pilotchain.ledger.block import block_hash
from pilotchain.sdk import PilotchainError, ProofError

__all__ = ["CatalogueView"]


class CatalogueView:
    def __init__(self, chain: ChainView) -> None:
        self.chain = chain

    def fact(self, key: bytes, *, fresh: bool = True) -> ProvenFact:
        try:
            read = self.chain.client.read_state(CONTRACT, key)
        except ProofError as exc:
            raise CatalogueError("UNPROVEN", f"the node's answer did not prove itself: {exc}") from exc
        except PilotchainError as exc:
            raise CatalogueError("CHAIN_UNAVAILABLE", f"cannot read the chain: {exc}") from exc
        header = read.header
        age_ms = self.chain.now_ms() - header.timestamp_ms
        if fresh and age_ms > self.chain.freshness_ms:
            raise CatalogueError("STALE_CHAIN", f"the newest certified block ({header.height}) is {age_ms // 1000} s "
                                 "old; a call cannot be checked against current state — is the chain making blocks?")
        value: Any = None
        if read.value is not None:
            try:
                value = decode(read.value, Any)
            except CodecError as exc:
                raise CatalogueError("UNPROVEN", f"the proven value does not decode: {exc}") from exc
        return ProvenFact(value=value, height=header.height, block_hash=block_hash(self.chain.suite, header),
                          timestamp_ms=header.timestamp_ms)

    def agreement(self, agreement_id: str, *, fresh: bool = True) -> ProvenFact:
        return self.fact(state_key("agreements", agreement_id), fresh=fresh)

    def entry(self, entry_id: str, *, fresh: bool = True) -> ProvenFact:
        return self.fact(state_key("entries", entry_id), fresh=fresh)

    def duty(self, duty_id: str, *, fresh: bool = True) -> ProvenFact:
        return self.fact(state_key("duties", duty_id), fresh=fresh)

    def dataset(self, entry_id: str, *, fresh: bool = True) -> ProvenFact:
        return self.fact(state_key("datasets", entry_id), fresh=fresh)

    def dataset_version(self, entry_id: str, version: int) -> ProvenFact:
        return self.fact(state_key("dataset_versions", f"{entry_id}/{version}"), fresh=False)

    def bureau(self) -> str:
        settings = self.fact(b"v/settings", fresh=False).value
        if not isinstance(settings, dict) or not isinstance(settings.get("bureau"), str):
            raise CatalogueError("NOT_ACTIVE", f"the {CONTRACT} contract is not active on this chain")
        return str(settings["bureau"])
