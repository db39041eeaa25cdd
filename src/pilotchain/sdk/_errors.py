"""The SDK's one error tree.

::

    PilotchainError                 base of everything the SDK raises on purpose
    ├── TransportError              the node could not be reached, or the connection broke or timed out
    ├── ApiError                    the gateway answered with an error: .status_code, .code, .message
    │   ├── NotFound                404: no such transaction, block or contract
    │   └── Unavailable             503 / 429 without a transaction code: node busy, stopping; retry later
    ├── TxRejectedError             a transaction (or query) refused: .code (a RejectCode value), .message, .tx_id
    ├── ProofError                  a proof, value or header does not verify: do not trust that answer
    ├── EvidenceError               an evidence bundle cannot be made: a transaction not committed, no
    │                               commit certificates (a development node), a batch unlike its anchor
    ├── TimeoutError                waiting for a commit took longer than asked (the transaction may still commit)
    ├── IdentityError               an identity file that cannot be used
    ├── ResponseError               the node answered something that is not the gateway's JSON shape
    ├── WrongNetwork                the gateway serves another chain than the one pinned (genesis hash
    │                               or chain id): .url, .expected, .found; nothing was sent to it
    └── NetworkFileError            a network folder, genesis file or genesis hash unusable as a pin

Lower-layer errors (httpx, identity files, the wire format) are translated where the SDK
calls them, with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations

import builtins

__all__ = [
    "PilotchainError",
    "TransportError",
    "ApiError",
    "NotFound",
    "Unavailable",
    "TxRejectedError",
    "ProofError",
    "EvidenceError",
    "TimeoutError",
    "IdentityError",
    "ResponseError",
    "WrongNetwork",
    "NetworkFileError",
]


class PilotchainError(Exception):
    """Base of every error the SDK raises on purpose."""


class TransportError(PilotchainError):
    """The node could not be reached, or the connection broke or timed out."""


class ApiError(PilotchainError):
    """The gateway answered with an error document ``{"code": ..., "message": ...}``."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message


class NotFound(ApiError):
    """404: no such transaction, block, contract or endpoint."""


class Unavailable(ApiError):
    """The node cannot serve the request now (503, or 429 without a transaction code)."""


class TxRejectedError(PilotchainError):
    """A transaction refused at admission, dropped from the mempool, or failed in execution;
    also a refused query. ``code`` is a :class:`pilotchain.ledger.tx.RejectCode` value."""

    def __init__(self, code: str, message: str, tx_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.tx_id = tx_id


class ProofError(PilotchainError):
    """A proof, value or header does not verify: the node's answer must not be trusted."""


class EvidenceError(PilotchainError):
    """An evidence bundle cannot be made from what the node has (see :mod:`pilotchain.sdk.evidence`)."""


class TimeoutError(PilotchainError, builtins.TimeoutError):  # noqa: A001 - deliberately the SDK's TimeoutError
    """Waiting for a commit took longer than asked; the transaction may still commit."""


class IdentityError(PilotchainError):
    """An identity file that cannot be loaded or used."""


class ResponseError(PilotchainError):
    """The node answered something that is not the gateway's JSON shape (wrong URL or version?)."""


class WrongNetwork(PilotchainError):
    """The gateway belongs to another chain than the one this client is pinned to.

    ``expected`` / ``found`` are genesis hashes (hex) — or chain ids when only a chain id was
    pinned; ``url`` is the gateway. The check runs before the client's first request, so nothing
    (no transaction) was sent to that gateway."""

    def __init__(self, url: str, expected: str, found: str, message: str) -> None:
        super().__init__(message)
        self.url = url
        self.expected = expected
        self.found = found


class NetworkFileError(PilotchainError):
    """A network folder, genesis file or genesis hash that cannot be used to pin a client."""
