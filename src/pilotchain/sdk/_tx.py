"""Building signed transactions: the body, its canonical bytes, the signature, the id."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from pilotchain.codec import CodecError, encode
from pilotchain.ledger.tx import TxBody, encode_args, sign_transaction, tx_id_of_body
from pilotchain.sdk._errors import PilotchainError
from pilotchain.sdk._identity import Identity

__all__ = ["SignedTransaction", "TxBuilder", "build_transaction", "DEFAULT_EXPIRES_IN_MS"]

#: How long a transaction stays valid by default (the chain allows at most an hour).
DEFAULT_EXPIRES_IN_MS = 5 * 60 * 1000
NONCE_BYTES = 16


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    """A signed transaction ready to submit: ``raw`` (wire bytes) and its id."""

    raw: bytes
    tx_id: str  #: hex
    body: TxBody


def build_transaction(
    identity: Identity,
    chain_id: str,
    contract: str,
    method: str,
    args: Any = None,
    *,
    expires_in_ms: int = DEFAULT_EXPIRES_IN_MS,
    nonce: bytes | None = None,
    now_ms: int | None = None,
) -> SignedTransaction:
    """Sign a call of ``contract.method(args)`` as ``identity`` for chain ``chain_id``.

    ``args`` is any JSON-like value without floats (bytes allowed). ``nonce`` defaults to 16
    random bytes (equal calls stay distinct transactions); the transaction expires
    ``expires_in_ms`` after ``now_ms`` (default: the wall clock)."""
    if expires_in_ms <= 0:
        raise ValueError("expires_in_ms must be positive")
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    try:
        encoded_args = encode_args(args)
    except CodecError as exc:
        raise PilotchainError(f"arguments cannot be encoded: {exc}") from exc
    body = TxBody(
        chain_id=chain_id,
        signer_certificate=identity.certificate_bytes,
        nonce=os.urandom(NONCE_BYTES) if nonce is None else nonce,
        expires_at_ms=now_ms + expires_in_ms,
        contract=contract,
        method=method,
        args=encoded_args,
    )
    raw = sign_transaction(identity.suite, identity.bundle.private_key, body)
    return SignedTransaction(
        raw=raw, tx_id=tx_id_of_body(identity.suite, encode(body)).hex(), body=body
    )


class TxBuilder:
    """Signs many transactions for one identity and chain: ``TxBuilder(me, chain).build("kv", "put", {...})``."""

    def __init__(
        self, identity: Identity, chain_id: str, *, expires_in_ms: int = DEFAULT_EXPIRES_IN_MS
    ) -> None:
        self.identity = identity
        self.chain_id = chain_id
        self.expires_in_ms = expires_in_ms

    def build(
        self,
        contract: str,
        method: str,
        args: Any = None,
        *,
        nonce: bytes | None = None,
        now_ms: int | None = None,
    ) -> SignedTransaction:
        return build_transaction(
            self.identity,
            self.chain_id,
            contract,
            method,
            args,
            expires_in_ms=self.expires_in_ms,
            nonce=nonce,
            now_ms=now_ms,
        )
