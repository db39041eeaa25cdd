"""Transactions: canonical, signed envelopes, and why one may be refused.

Theory of operation
-------------------
A client builds a :class:`TxBody` (chain id, the signer's certificate, a client nonce, an
expiry, the target contract, method and canonically encoded arguments), encodes it canonically
and signs ``TX_SIGNING_DOMAIN || body_bytes`` with its identity key. The wire form is a
:class:`Transaction` (body bytes + signature).

* The transaction id is ``H(TX_ID_DOMAIN || body_bytes)``: it excludes the signature, so a
  re-signed or malleated copy of the same body has the same id and is caught as a duplicate.
* Replay protection: the id of every committed transaction is indexed forever (a second copy is
  ``DUPLICATE``); the body's ``chain_id`` stops replays across networks; ``expires_at_ms``
  bounds how long a body may float in mempools (checked against the block's proposer timestamp).
* Decoding is strict (see :mod:`pilotchain.codec`): non-canonical bytes are refused, so the id
  over received bytes equals the id over the decoded value.

:func:`check_transaction` is the stateless check that every node runs before a transaction
enters its mempool and again before execution. It raises :class:`TxRejected` with an enumerated
:class:`RejectCode` and a message that says what to do next; it changes nothing.

Pure: no I/O, clock or randomness (time arrives as ``now_ms``).
"""

from __future__ import annotations

import enum
import re
from typing import Any

import msgspec

from pilotchain.codec import CodecError, Record, check_nesting, decode, encode
from pilotchain.crypto import Suite
from pilotchain.errors import CoreError

__all__ = [
    "TX_SIGNING_DOMAIN",
    "TX_ID_DOMAIN",
    "TxLimits",
    "TxBody",
    "Transaction",
    "RejectCode",
    "TxRejected",
    "SignedTx",
    "tx_id_of_body",
    "sign_transaction",
    "decode_transaction",
    "check_transaction",
    "recheck_transaction",
    "encode_args",
    "decode_args",
    "ARGS_DEPTH_MAX",
]

TX_SIGNING_DOMAIN = b"pilotchain/tx/v1\x00"
TX_ID_DOMAIN = b"pilotchain/txid/v1\x00"

#: whole names only (fullmatch): a "$" let "kv\n" through as the name kv (found by fuzzing)
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")


class TxLimits(Record, frozen=True):
    """Size and time bounds on transactions (genesis parameters, changeable by governance)."""

    tx_bytes_max: int = 64 * 1024
    args_bytes_max: int = 48 * 1024
    nonce_bytes_max: int = 32
    #: how far in the future ``expires_at_ms`` may lie, relative to the checking node's clock
    expiry_window_ms_max: int = 60 * 60 * 1000


class TxBody(Record, frozen=True):
    chain_id: str
    #: the signer's certificate (canonical bytes), so any node or client can check who signed
    signer_certificate: bytes
    #: client-chosen uniqueness (e.g. 16 random bytes); makes equal calls distinct transactions
    nonce: bytes
    #: the transaction may not be included in a block whose timestamp is later than this
    expires_at_ms: int
    contract: str
    method: str
    #: canonical encoding of the argument value (see :func:`encode_args`)
    args: bytes


class Transaction(Record, frozen=True):
    body: bytes
    signature: bytes


class RejectCode(enum.StrEnum):
    MALFORMED = "MALFORMED"
    NON_CANONICAL = "NON_CANONICAL"
    TOO_LARGE = "TOO_LARGE"
    WRONG_CHAIN = "WRONG_CHAIN"
    BAD_NAME = "BAD_NAME"
    EXPIRED = "EXPIRED"
    EXPIRY_TOO_FAR = "EXPIRY_TOO_FAR"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    UNKNOWN_SIGNER = "UNKNOWN_SIGNER"
    SIGNER_REJECTED = "SIGNER_REJECTED"
    DUPLICATE = "DUPLICATE"
    MEMPOOL_FULL = "MEMPOOL_FULL"
    UNKNOWN_CONTRACT = "UNKNOWN_CONTRACT"
    UNKNOWN_METHOD = "UNKNOWN_METHOD"
    BAD_ARGUMENTS = "BAD_ARGUMENTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    EXECUTION_FAILED = "EXECUTION_FAILED"
    OUT_OF_STEPS = "OUT_OF_STEPS"
    BLOCK_FULL = "BLOCK_FULL"


class TxRejected(CoreError):
    """A transaction refused with an enumerated reason; nothing was changed."""

    def __init__(self, code: RejectCode, message: str, tx_id: bytes | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        #: the transaction's id when its bytes decoded far enough to have one
        self.tx_id = tx_id


class SignedTx(msgspec.Struct, frozen=True):
    """A decoded, stateless-checked transaction (not encoded: a node-local convenience)."""

    tx_id: bytes
    raw: bytes
    body_bytes: bytes
    body: TxBody
    signature: bytes

    def signed_message(self) -> bytes:
        """The exact bytes the signature covers."""
        return TX_SIGNING_DOMAIN + self.body_bytes


def encode_args(value: Any) -> bytes:
    """Canonical bytes of a JSON-like argument value (no floats)."""
    _refuse_floats(value)
    return encode(value)


def decode_args(data: bytes) -> Any:
    """The argument value of canonical ``data``; raises CodecError otherwise (also when it nests
    deeper than ARGS_DEPTH_MAX levels: checked on the bytes, before any recursive decoding)."""
    try:
        value = decode(data, Any, depth_max=ARGS_DEPTH_MAX)
    except TypeError as exc:
        # a map whose keys are not all strings decodes, then its canonical re-encoding raises
        # msgspec's TypeError, which the codec lets through (docs/fuzzing.md, finding F1): at
        # execution that stopped block production, so every node refuses it here instead
        raise CodecError(f"arguments are not canonical: {exc}; map keys are strings") from exc
    _refuse_floats(value)
    return value


#: arguments (and contract events) nest at most this many levels (an item at depth 33 is refused)
ARGS_DEPTH_MAX = 32
_ARGS_DEPTH_MAX = ARGS_DEPTH_MAX
# exact types that can hold neither a float nor anything nested (msgspec decodes to exact types)
_LEAF_TYPES = frozenset({str, int, bool, bytes, type(None)})


def _refuse_floats(value: Any, depth: int = 0) -> None:
    """Refuse floats anywhere in ``value`` and nesting deeper than 32 levels (an item at depth
    33 is refused even when it is a leaf). Runs on every transaction's arguments at execution, so
    leaves are recognised by exact type instead of a recursive call each."""
    if depth > _ARGS_DEPTH_MAX:
        raise CodecError("arguments nest deeper than 32 levels")
    kind = type(value)
    if kind in _LEAF_TYPES:
        return
    if isinstance(value, float):
        raise CodecError("floats are not allowed in replicated data; use integers (e.g. cents)")
    if isinstance(value, (list, tuple)):
        if value and depth + 1 > _ARGS_DEPTH_MAX:
            raise CodecError("arguments nest deeper than 32 levels")
        for item in value:
            if type(item) not in _LEAF_TYPES:
                _refuse_floats(item, depth + 1)
    elif isinstance(value, dict):
        if value and depth + 1 > _ARGS_DEPTH_MAX:
            raise CodecError("arguments nest deeper than 32 levels")
        for key, item in value.items():
            if type(key) not in _LEAF_TYPES:
                _refuse_floats(key, depth + 1)
            if type(item) not in _LEAF_TYPES:
                _refuse_floats(item, depth + 1)


def tx_id_of_body(suite: Suite, body_bytes: bytes) -> bytes:
    return suite.hash(TX_ID_DOMAIN + body_bytes)


def sign_transaction(suite: Suite, private_key: Any, body: TxBody) -> bytes:
    """The wire bytes of ``body`` signed with ``private_key`` (a crypto PrivateKey)."""
    body_bytes = encode(body)
    signature = private_key.sign(TX_SIGNING_DOMAIN + body_bytes)
    return encode(Transaction(body=body_bytes, signature=signature))


def decode_transaction(suite: Suite, raw: bytes, limits: TxLimits | None = None) -> SignedTx:
    """Decode wire bytes (strict, bounded); no signature or identity check yet."""
    limits = limits or TxLimits()
    if len(raw) > limits.tx_bytes_max:
        raise TxRejected(
            RejectCode.TOO_LARGE,
            f"transaction is {len(raw)} bytes, limit {limits.tx_bytes_max}; split the call or store large data off-chain",
        )
    try:
        envelope = decode(raw, Transaction)
        body = decode(envelope.body, TxBody)
    except CodecError as exc:
        code = RejectCode.NON_CANONICAL if "non-canonical" in str(exc) else RejectCode.MALFORMED
        raise TxRejected(code, f"{exc}; build transactions with the pilotchain SDK") from exc
    tx_id = tx_id_of_body(suite, envelope.body)
    try:
        # a pure function of the bytes, so every node refuses the same transactions here, at
        # admission and in a block alike (deep nesting must never reach a recursive decoder,
        # whose limit depends on the caller's stack)
        check_nesting(body.args, ARGS_DEPTH_MAX)
    except CodecError as exc:
        raise TxRejected(RejectCode.BAD_ARGUMENTS, f"arguments: {exc}", tx_id) from exc
    return SignedTx(
        tx_id=tx_id,
        raw=bytes(raw),
        body_bytes=envelope.body,
        body=body,
        signature=envelope.signature,
    )


def check_transaction(
    suite: Suite,
    raw: bytes,
    *,
    chain_id: str,
    now_ms: int,
    signer_public_key: Any,
    limits: TxLimits | None = None,
    verify_signature: bool = True,
) -> SignedTx:
    """Stateless checks: shape, bounds, chain, expiry, names, signature.

    ``signer_public_key`` maps the body's certificate bytes to the SubjectPublicKeyInfo DER of
    an identity the consortium vouches for (it raises TxRejected otherwise) — the membership
    layer supplies it, so this module stays independent of how identities are checked.
    """
    limits = limits or TxLimits()
    tx = decode_transaction(suite, raw, limits)
    recheck_transaction(suite, tx, chain_id=chain_id, now_ms=now_ms, signer_public_key=signer_public_key,
                        limits=limits, verify_signature=verify_signature)
    return tx


def recheck_transaction(
    suite: Suite,
    tx: SignedTx,
    *,
    chain_id: str,
    now_ms: int,
    signer_public_key: Any,
    limits: TxLimits,
    verify_signature: bool = True,
) -> None:
    """:func:`check_transaction` for a transaction already decoded from its wire bytes (the same
    checks but the decode, which is a pure function of the bytes and cannot change; the caller
    keeps it only for the limits it was decoded under, so the size bound held then holds now)."""
    try:
        _check_decoded(suite, tx, chain_id, now_ms, signer_public_key, limits, verify_signature)
    except TxRejected as exc:
        exc.tx_id = tx.tx_id
        raise


def _check_decoded(
    suite: Suite,
    tx: SignedTx,
    chain_id: str,
    now_ms: int,
    signer_public_key: Any,
    limits: TxLimits,
    verify_signature: bool,
) -> None:
    body = tx.body
    if body.chain_id != chain_id:
        raise TxRejected(RejectCode.WRONG_CHAIN, f"transaction is for chain {body.chain_id!r}, this is {chain_id!r}")
    if len(body.args) > limits.args_bytes_max:
        raise TxRejected(RejectCode.TOO_LARGE, f"arguments are {len(body.args)} bytes, limit {limits.args_bytes_max}")
    if not 1 <= len(body.nonce) <= limits.nonce_bytes_max:
        raise TxRejected(RejectCode.MALFORMED, f"nonce must be 1..{limits.nonce_bytes_max} bytes")
    if not _NAME_RE.fullmatch(body.contract) or not _NAME_RE.fullmatch(body.method):
        raise TxRejected(
            RejectCode.BAD_NAME,
            "contract and method names are lower-case identifiers (a-z, 0-9, _; at most 63 characters)",
        )
    if body.expires_at_ms < now_ms:
        raise TxRejected(RejectCode.EXPIRED, f"transaction expired at {body.expires_at_ms} ms (now {now_ms} ms); sign it again")
    if body.expires_at_ms > now_ms + limits.expiry_window_ms_max:
        raise TxRejected(
            RejectCode.EXPIRY_TOO_FAR,
            f"expiry is more than {limits.expiry_window_ms_max} ms ahead; choose a nearer expires_at_ms",
        )
    public_key_der = signer_public_key(body.signer_certificate)
    if verify_signature and not suite.verify(public_key_der, tx.signed_message(), tx.signature):
        raise TxRejected(RejectCode.BAD_SIGNATURE, "signature does not verify against the signer's certificate key")

