"""The gateway's JSON shapes, shared by the gateway (which writes them) and the SDK (which reads
them back into the ledger's own types to check proofs).

Conventions
-----------
* ids and hashes (transaction id, block hash, roots, Merkle path nodes): lower-case hex;
* opaque bytes (transaction wire bytes, certificates, state keys and values, event data):
  standard base64 with padding (state keys in URL paths: URL-safe base64, padding optional);
* decoded contract values (arguments, results, event data, state values) are *tagged JSON*:
  JSON as is, except bytes become ``{"$bytes": "<base64>"}`` and maps with non-string keys
  ``{"$map": [[key, value], ...]}``. Floats are refused (they have no canonical encoding).

Every ``*_from_json`` raises :class:`WireError` (a ``ValueError``) on a malformed document.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pilotchain.codec import CodecError, encode
from pilotchain.crypto import Suite
from pilotchain.errors import CoreError
from pilotchain.identity.records import Certificate, decode_record
from pilotchain.ledger import merkle
from pilotchain.ledger.block import BlockHeader, Event, Receipt, TxProof
from pilotchain.ledger.commitment import StateProof
from pilotchain.ledger.tx import TxRejected, decode_args, decode_transaction

__all__ = [
    "redacted_receipt_json",
    "redacted_tx_json",
    "WireError",
    "b64",
    "unb64",
    "unb64url",
    "unhex",
    "to_tagged_json",
    "from_tagged_json",
    "decode_value",
    "header_to_json",
    "header_from_json",
    "receipt_to_json",
    "receipt_from_json",
    "tx_proof_to_json",
    "tx_proof_from_json",
    "state_proof_to_json",
    "state_proof_from_json",
    "tx_summary",
]

#: Tagged JSON nests at most this deep (the codec's own argument bound).
NESTING_MAX = 32


class WireError(CoreError, ValueError):
    """A JSON document that does not have the gateway's shape."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, what: str = "value") -> bytes:
    if not isinstance(text, str):
        raise WireError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"{what} is not valid base64: {exc}") from exc


def unb64url(text: str, what: str = "key") -> bytes:
    """URL-safe base64, padding optional (for keys in URL paths)."""
    cleaned = text.rstrip("=")
    if any(
        c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in cleaned
    ):
        raise WireError(
            f"{what} is not URL-safe base64 (A-Z a-z 0-9 - _); for text keys use ?key_text="
        )
    try:
        return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"{what} is not valid URL-safe base64: {exc}") from exc


def unhex(text: Any, what: str = "value") -> bytes:
    if not isinstance(text, str):
        raise WireError(f"{what} must be a hex string")
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise WireError(f"{what} is not hex: {exc}") from exc


# ---------------------------------------------------------------------- tagged JSON values


def to_tagged_json(value: Any, depth: int = 0) -> Any:
    """A JSON-ready form of a decoded contract value (bytes and non-string map keys tagged)."""
    if depth > NESTING_MAX:
        raise WireError(f"value nests deeper than {NESTING_MAX} levels")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": b64(bytes(value))}
    if isinstance(value, (list, tuple)):
        return [to_tagged_json(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: to_tagged_json(item, depth + 1) for key, item in value.items()}
        return {
            "$map": [
                [to_tagged_json(k, depth + 1), to_tagged_json(v, depth + 1)]
                for k, v in value.items()
            ]
        }
    raise WireError(f"cannot represent a {type(value).__name__} in JSON")


def from_tagged_json(value: Any, depth: int = 0) -> Any:
    """The inverse of :func:`to_tagged_json`; refuses floats."""
    if depth > NESTING_MAX:
        raise WireError(f"value nests deeper than {NESTING_MAX} levels")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        raise WireError("floats are not allowed in contract values; use integers (e.g. cents)")
    if isinstance(value, list):
        return [from_tagged_json(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return unb64(value["$bytes"], "$bytes")
        if set(value) == {"$map"} and isinstance(value["$map"], list):
            pairs = value["$map"]
            if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
                raise WireError("$map must be a list of [key, value] pairs")
            return {
                _hashable(from_tagged_json(k, depth + 1)): from_tagged_json(v, depth + 1)
                for k, v in pairs
            }
        return {key: from_tagged_json(item, depth + 1) for key, item in value.items()}
    raise WireError(f"cannot read a {type(value).__name__} as a contract value")


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def decode_value(data: bytes | None) -> Any:
    """The tagged-JSON form of canonical ``data``, or None when it is not a canonical value."""
    if data is None:
        return None
    try:
        return to_tagged_json(decode_args(data))
    except (CodecError, WireError):
        return None


# ---------------------------------------------------------------------- headers


def header_to_json(header: BlockHeader) -> dict[str, Any]:
    return {
        "version": header.version,
        "chain_id": header.chain_id,
        "height": header.height,
        "parent_hash": header.parent_hash.hex(),
        "proposer": header.proposer,
        "timestamp_ms": header.timestamp_ms,
        "tx_count": header.tx_count,
        "tx_root": header.tx_root.hex(),
        "receipt_root": header.receipt_root.hex(),
        "state_root": header.state_root.hex(),
        "validator_set_hash": header.validator_set_hash.hex(),
        "consensus_data": header.consensus_data.hex(),
    }


def header_from_json(document: Any) -> BlockHeader:
    try:
        return BlockHeader(
            version=_int(document["version"]),
            chain_id=_str(document["chain_id"]),
            height=_int(document["height"]),
            parent_hash=unhex(document["parent_hash"], "parent_hash"),
            proposer=_str(document["proposer"]),
            timestamp_ms=_int(document["timestamp_ms"]),
            tx_count=_int(document["tx_count"]),
            tx_root=unhex(document["tx_root"], "tx_root"),
            receipt_root=unhex(document["receipt_root"], "receipt_root"),
            state_root=unhex(document["state_root"], "state_root"),
            validator_set_hash=unhex(document["validator_set_hash"], "validator_set_hash"),
            consensus_data=unhex(document.get("consensus_data", ""), "consensus_data"),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise WireError(f"not a block header: missing or wrong field {exc}") from exc


# ---------------------------------------------------------------------- receipts and proofs


def receipt_to_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "tx_id": receipt.tx_id.hex(),
        "status": receipt.status,
        "message": receipt.message,
        "result": decode_value(receipt.result) if receipt.result else None,
        "result_base64": b64(receipt.result),
        "events": [
            {
                "contract": e.contract,
                "name": e.name,
                "data": decode_value(e.data),
                "data_base64": b64(e.data),
            }
            for e in receipt.events
        ],
        "steps_used": receipt.steps_used,
    }


def redacted_receipt_json(suite: Suite, receipt: Receipt) -> dict[str, Any]:
    """A receipt the reader may not see: its status and the Merkle leaf hash that keeps the
    block's receipt root checkable, nothing of its result, message or events."""
    return {
        "tx_id": receipt.tx_id.hex(),
        "status": receipt.status,
        "redacted": True,
        "leaf_hash": merkle.leaf_hash(suite.hash, encode(receipt)).hex(),
    }


def redacted_tx_json(suite: Suite, raw: bytes, tx_id: bytes, contract: str, reason: str) -> dict[str, Any]:
    """A transaction the reader may not see: its id, contract and the Merkle leaf hash that keeps
    the block's transaction root checkable, nothing of its signer, method or arguments."""
    return {
        "tx_id": tx_id.hex(),
        "contract": contract,
        "redacted": True,
        "reason": reason,
        "leaf_hash": merkle.leaf_hash(suite.hash, raw).hex(),
    }


def receipt_from_json(document: Any) -> Receipt:
    try:
        return Receipt(
            tx_id=unhex(document["tx_id"], "tx_id"),
            status=_str(document["status"]),
            message=_str(document["message"]),
            result=unb64(document["result_base64"], "result_base64"),
            events=tuple(
                Event(
                    contract=_str(e["contract"]),
                    name=_str(e["name"]),
                    data=unb64(e["data_base64"], "data_base64"),
                )
                for e in document["events"]
            ),
            steps_used=_int(document["steps_used"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise WireError(f"not a receipt: missing or wrong field {exc}") from exc


def tx_proof_to_json(proof: TxProof) -> dict[str, Any]:
    return {
        "height": proof.height,
        "index": proof.index,
        "tx_count": proof.tx_count,
        "tx_path": [node.hex() for node in proof.tx_path],
        "receipt_path": [node.hex() for node in proof.receipt_path],
    }


def tx_proof_from_json(document: Any) -> TxProof:
    try:
        return TxProof(
            height=_int(document["height"]),
            index=_int(document["index"]),
            tx_count=_int(document["tx_count"]),
            tx_path=tuple(unhex(node, "tx_path") for node in document["tx_path"]),
            receipt_path=tuple(unhex(node, "receipt_path") for node in document["receipt_path"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise WireError(f"not a transaction proof: missing or wrong field {exc}") from exc


def state_proof_to_json(proof: StateProof) -> dict[str, Any]:
    return {
        "bucket_bits": proof.bucket_bits,
        "bucket": proof.bucket,
        "entries": [[b64(key), b64(value)] for key, value in proof.entries],
        "siblings": [node.hex() for node in proof.siblings],
    }


def state_proof_from_json(document: Any) -> StateProof:
    try:
        return StateProof(
            bucket_bits=_int(document["bucket_bits"]),
            bucket=_int(document["bucket"]),
            entries=tuple(
                (unb64(k, "entry key"), unb64(v, "entry value")) for k, v in document["entries"]
            ),
            siblings=tuple(unhex(node, "siblings") for node in document["siblings"]),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"not a state proof: missing or wrong field {exc}") from exc


# ---------------------------------------------------------------------- transactions


def tx_summary(suite: Suite, raw: bytes) -> dict[str, Any]:
    """What a reader wants to see of a transaction's wire bytes (plus the bytes themselves)."""
    summary: dict[str, Any] = {"raw": b64(raw)}
    try:
        tx = decode_transaction(suite, raw)
    except TxRejected as exc:
        summary["error"] = exc.message
        return summary
    body = tx.body
    signer: dict[str, Any] | None
    try:
        certificate = decode_record(body.signer_certificate, Certificate)
        signer = {
            "org": certificate.org_id,
            "subject": certificate.subject,
            "serial": certificate.serial,
        }
    except (CodecError, ValueError):
        signer = None
    summary.update(
        tx_id=tx.tx_id.hex(),
        chain_id=body.chain_id,
        signer=signer,
        contract=body.contract,
        method=body.method,
        args=decode_value(body.args),
        nonce=body.nonce.hex(),
        expires_at_ms=body.expires_at_ms,
    )
    return summary


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value
