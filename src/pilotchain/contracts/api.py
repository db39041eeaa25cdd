"""The contract API: the names ``from pilotchain.contracts.api import ...`` gives a contract.

Theory of operation
-------------------
A contract is a module of plain functions; every top-level function whose name does not start
with ``_`` is a method transactions and queries may call (except ``init`` and ``upgrade``, which
only governance runs: ``init`` once when the contract is first activated, ``upgrade`` when a new
version is activated). A call's argument value is bound to the parameters: a map by name, a list
by position, ``None`` for no arguments.

Inside the sandbox the runtime injects a fresh binding of these names for every execution, so a
contract never shares Python objects between transactions. Outside the sandbox (an editor, a type
checker, documentation) this module only describes them; the functions raise if called.

State: only the contract's own namespace, through typed handles whose values are canonically
encoded (:mod:`pilotchain.codec`; int, str, bytes, bool, None, lists and str-keyed maps of them,
at most 32 levels deep, no floats)::

    balances = Map("balances")          # keys: str, int or bytes
    owner = Variable("owner")
    balances.get(key, default=None) / balances.set(key, value) / balances.delete(key) /
    balances.contains(key);  owner.get(default=None) / owner.set(value) / owner.delete()

Context (read-only): ``context.caller`` (``name``, ``org``, ``roles``: who called this contract —
the signer, or ``contract:<name>`` when another contract calls), ``context.origin`` (the
transaction's signer), ``context.height``, ``context.timestamp_ms`` (the block proposer's
timestamp), ``context.tx_id`` (``b""`` in a read-only query), ``context.contract`` (this
contract's name), ``context.chain_id``.

Effects: ``emit(name, payload)`` records an event in the receipt; ``call(contract, method,
args=None)`` calls another contract (same step budget, bounded depth; the callee sees this
contract as its caller; its writes are kept only if the whole transaction succeeds).

Failing on purpose (the transaction is committed as failed and changes nothing):
``require(condition, message)`` and ``fail(message)`` (EXECUTION_FAILED), ``deny(message)``
(PERMISSION_DENIED), ``reject_arguments(message)`` (BAD_ARGUMENTS).

Savepoints: ``ok, value = attempt(function, *args)`` runs a function of this contract so that its
failure undoes only its own state writes and events (``[False, {"code", "message"}]``) and its
success keeps them (``[True, result]``) — many independent items in one transaction, each whole or
not at all. Running out of steps or memory is never caught (docs/contracts.md, "Savepoints").

Hashing and signatures, in the chain's own suite (``intl``: SHA-256 and Ed25519; ``gm``: SM3 and
SM2), so a contract checks what people outside the consortium signed (a patient's consent, a
wallet holder's payment instruction)::

    from pilotchain.contracts.api import hash, verify_signature

    digest = hash(data)                  # bytes or str (UTF-8) -> the suite's 32-byte digest
    ok = verify_signature(public_key, message, signature)

``hash`` must be imported explicitly: the name alone is Python's builtin ``hash``, which differs
between processes and stays refused. ``verify_signature`` takes the signer's SubjectPublicKeyInfo
DER key of the chain's suite, the message (bytes or str, UTF-8; at most 64 KiB) and the
signature (Ed25519: 64 bytes; SM2: DER with the default distinguishing ID), and answers True or
False; a malformed, oversized or other-suite key or signature is simply False. It costs a fixed
number of steps per suite plus steps per KiB of message (docs/contracts.md, section 3), whether
the key was seen before or not. Put the chain id and a purpose in what people sign, and record
what you accepted, so a signature cannot be replayed on another chain, contract or call.
``sha256(data)`` is SHA-256 on every chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = [
    "API_NAMES",
    "CallerInfo",
    "Context",
    "Map",
    "Variable",
    "emit",
    "call",
    "context",
    "require",
    "fail",
    "deny",
    "reject_arguments",
    "sha256",
    "hash",
    "verify_signature",
    "attempt",
]

#: The names a contract may import from this module (and uses without importing, except
#: ``hash``: see :data:`pilotchain.contracts.sandbox.IMPORT_ONLY_NAMES`).
API_NAMES = (
    "Map",
    "Variable",
    "emit",
    "call",
    "context",
    "require",
    "fail",
    "deny",
    "reject_arguments",
    "sha256",
    "hash",
    "verify_signature",
    "attempt",
)


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """Who called: identity name, organisation and roles (a contract calling shows as
    ``contract:<name>`` with org ``""`` and role ``contract``)."""

    name: str
    org: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Context:
    contract: str
    caller: CallerInfo
    origin: CallerInfo
    height: int
    timestamp_ms: int
    tx_id: bytes
    chain_id: str


def _outside(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise RuntimeError(
        "the contract API works only inside a deployed contract (the sandbox binds it)"
    )


# Descriptions for editors; the sandbox injects bound versions with the same names.
Map: Any = _outside
Variable: Any = _outside
emit: Any = _outside
call: Any = _outside
require: Any = _outside
fail: Any = _outside
deny: Any = _outside
reject_arguments: Any = _outside
sha256: Any = _outside
hash: Any = _outside  # shadows the builtin here only; contracts import it explicitly
verify_signature: Any = _outside
attempt: Any = _outside
context: Any = None
