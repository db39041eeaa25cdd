"""Running a deployed Python contract: argument binding, permissions, the API binding, errors.

Theory of operation
-------------------
:class:`PythonContract` adapts one compiled contract (see :mod:`pilotchain.contracts.sandbox`)
to the ledger's :class:`~pilotchain.ledger.execution.NativeContract` protocol. One call:

1. find the method (a top-level function; ``init`` / ``upgrade`` only for governance) —
   UNKNOWN_METHOD otherwise;
2. check the deploy-time permission rule for the method against the caller — PERMISSION_DENIED;
3. bind the argument value to the parameters (a map by name, a list by position, ``None`` for
   none) — BAD_ARGUMENTS;
4. execute the module body in fresh globals (sandbox builtins, guards bound to this
   transaction's :class:`~pilotchain.contracts.sandbox.Meter`, and a fresh binding of the
   contract API over this call's :class:`~pilotchain.ledger.execution.ContractState`) — or, for
   a definitional module body, reuse one run before, reset to exactly what a fresh run gives
   (see "reused module bodies" below) — then the method; the result must be canonically
   encodable;
5. translate *everything* that leaves contract code into a ContractError: the step budget
   (OUT_OF_STEPS), the memory and depth bounds, RecursionError, MemoryError and every other
   exception (EXECUTION_FAILED, with a scrubbed, deterministic message). The ledger then commits
   the transaction as failed and throws its writes away; the node never sees a contract's
   exception.

``hash`` and ``verify_signature`` use the chain's suite, which the runtime learns from the
genesis document in state (through the resolver, once per transaction, only when a contract
asks). Their cost in steps is fixed per suite (:data:`CRYPTO_COSTS`) and never depends on what
a node has cached, so ``steps_used`` is the same on every node; a malformed key or signature is
an answer (False), never an exception.

Calls between contracts run the callee on a child ContractState layered over the caller's
pending writes; the callee's writes, reads and events merge into the caller's only when the
callee returns normally. Values cross the boundary as canonical copies, so two contracts never
share a mutable object. Nested calls share the transaction's meter; contract nesting is bounded
by :data:`CONTRACT_CALL_DEPTH_MAX`.

Pure: no I/O, clock or randomness.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from types import FunctionType, MappingProxyType
from typing import Any, Protocol

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.contracts.api import CallerInfo, Context
from pilotchain.contracts.sandbox import (
    CheckedContract,
    Guards,
    Meter,
    MethodSignature,
    ModuleCache,
    OutOfSteps,
    SandboxAbort,
    SandboxLimits,
    sandbox_builtins,
    scrub_message,
)
from pilotchain.crypto import Suite
from pilotchain.errors import CoreError, InvariantBroken
from pilotchain.ledger.execution import (
    Caller,
    ContractError,
    ContractState,
    NativeContract,
    StateReader,
    TxContext,
)
from pilotchain.ledger.tx import RejectCode

__all__ = [
    "MethodRule",
    "DeployedContract",
    "PythonContract",
    "FrozenContract",
    "StateView",
    "child_state",
    "merge_child",
    "CONTRACT_CALL_DEPTH_MAX",
    "GOVERNANCE_METHODS",
    "EVENTS_MAX",
    "CryptoCosts",
    "CRYPTO_COSTS",
    "VERIFY_PUBLIC_KEY_BYTES_MAX",
    "VERIFY_MESSAGE_BYTES_MAX",
    "VERIFY_SIGNATURE_BYTES_MAX",
]

#: Contracts calling contracts, nested (the transaction's own call is depth 0).
CONTRACT_CALL_DEPTH_MAX = 8
#: Events one transaction may emit.
EVENTS_MAX = 256
#: Methods only governance runs (when a version is activated).
GOVERNANCE_METHODS = frozenset({"init", "upgrade"})
#: Contracts a Python contract may not call.
UNCALLABLE_FROM_CONTRACTS = frozenset({"gov"})

_HANDLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
_STEP_BYTES = 1024

#: ``verify_signature`` bounds. No key or signature of either suite comes near these (SPKI DER:
#: Ed25519 44 bytes, SM2 91; signatures: Ed25519 64 bytes, SM2 DER at most 72), so a longer one
#: is malformed and answers False without being parsed. A longer message fails the call.
VERIFY_PUBLIC_KEY_BYTES_MAX = 256
VERIFY_SIGNATURE_BYTES_MAX = 128
VERIFY_MESSAGE_BYTES_MAX = 64 * 1024


@dataclass(frozen=True, slots=True)
class CryptoCosts:
    """Steps the crypto API charges on one suite: a fixed part per call plus a part per KiB of
    input (rounded up). Measured against one metered step (docs/contracts.md, section 3)."""

    hash_steps: int
    hash_steps_per_kib: int
    #: the worst case: a key never parsed before, then one verification
    verify_steps: int
    verify_steps_per_kib: int

    def hash_cost(self, size: int) -> int:
        return self.hash_steps + -(-size * self.hash_steps_per_kib // 1024)

    def verify_cost(self, size: int) -> int:
        return self.verify_steps + -(-size * self.verify_steps_per_kib // 1024)


#: Per suite name: the time of the work over the time of one empty metered loop step, as
#: ``python -m pilotchain.contracts.bench crypto`` measures them, rounded up to at least the
#: highest of six runs' medians (docs/contracts.md, section 3, has the figures). Changing one changes ``steps_used`` in
#: receipts, so every validator must change it at the same height: a consensus change.
CRYPTO_COSTS: MappingProxyType[str, CryptoCosts] = MappingProxyType(
    {
        # Ed25519, SHA-256: verify 630-780 steps (a new key 710-880), 22-29 per KiB of message;
        # hash 8-12 steps, 6-8 per KiB
        "intl": CryptoCosts(
            hash_steps=12, hash_steps_per_kib=10, verify_steps=1_000, verify_steps_per_kib=32
        ),
        # SM2, SM3: verify 4,300-4,500 steps (a new key 6,700-7,500: OpenSSL checks the point
        # when it parses a key), 33-56 per KiB of message; hash 20-24 steps, 38-42 per KiB
        "gm": CryptoCosts(
            hash_steps=25, hash_steps_per_kib=50, verify_steps=9_000, verify_steps_per_kib=64
        ),
    }
)


class MethodRule(Record, frozen=True):
    """Who may call a method: callers holding one of ``roles`` (any role when empty) and
    belonging to one of ``orgs`` (any member organisation when empty)."""

    roles: tuple[str, ...] = ()
    orgs: tuple[str, ...] = ()

    def allows(self, caller: Caller) -> bool:
        if self.roles and not set(self.roles).intersection(caller.roles):
            return False
        return not self.orgs or caller.org in self.orgs


class DeployedContract(Record, frozen=True):
    """A Python contract as governance activated it (``gov`` namespace, ``c/<name>``)."""

    name: str
    version: str
    #: the chain suite's hash of the UTF-8 source (the code is stored under ``code/<hash>``)
    code_hash: bytes
    #: method (or ``"*"`` for every other method) -> rule, sorted by method
    permissions: tuple[tuple[str, MethodRule], ...]
    activated_height: int
    proposal_id: int
    frozen: bool = False
    frozen_reason: str = ""
    #: every version activated so far, oldest first
    versions: tuple[str, ...] = ()

    def rule_for(self, method: str) -> MethodRule | None:
        fallback = None
        for name, rule in self.permissions:
            if name == method:
                return rule
            if name == "*":
                fallback = rule
        return fallback


class Resolver(Protocol):
    def get(self, name: str, state: StateReader) -> NativeContract | None: ...

    def suite_of(self, state: StateReader) -> Suite:
        """The chain's crypto suite, from the genesis document in ``state``."""
        ...


class StateView:
    """The state a ContractState sees (its pending writes, then its base), as a StateReader
    over full keys."""

    __slots__ = ("_state",)

    def __init__(self, state: ContractState) -> None:
        self._state = state

    def get(self, key: bytes) -> bytes | None:
        writes = self._state.writes
        if key in writes:
            return writes[key]
        # ContractState keeps its base view private; reading through it is what nesting needs
        return self._state._block.get(key)  # noqa: SLF001


def child_state(parent: ContractState, contract: str) -> ContractState:
    """A ContractState for ``contract`` layered over ``parent``'s pending writes."""
    return ContractState(contract, StateView(parent))  # type: ignore[arg-type]  # duck-typed base


def merge_child(parent: ContractState, child: ContractState) -> None:
    parent.writes.update(child.writes)
    parent.reads.update(child.reads)
    parent.events.extend(child.events)


def _caller_info(caller: Caller) -> CallerInfo:
    return CallerInfo(name=caller.name, org=caller.org, roles=tuple(caller.roles))


class _Execution:
    """One transaction's run of Python contracts: the meter and the shared, bound builtins."""

    __slots__ = (
        "meter", "_guards", "resolver", "tx", "depth", "events", "_suite"
    )  # fmt: skip

    def __init__(self, limits: SandboxLimits, resolver: Resolver, tx: TxContext) -> None:
        self.meter = Meter(limits)
        self._guards: tuple[dict[str, Any], dict[str, Any]] | None = None
        self.resolver = resolver
        self.tx = tx
        self.depth = 0
        self.events = 0
        self._suite: Suite | None = None

    def guards(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The guard names and the builtins bound to this transaction's meter, for module bodies
        run afresh (made on first use: a reused module body brings its own)."""
        if self._guards is None:
            guards = Guards(self.meter)
            self._guards = (guards.names(), sandbox_builtins(guards))
        return self._guards

    def suite(self, state: ContractState) -> Suite:
        """The chain's suite (looked up on first use: most transactions never need it)."""
        if self._suite is None:
            self._suite = self.resolver.suite_of(StateView(state))
        return self._suite


#: Python stack frames a transaction's contract code may use above the frame that runs it
#: (contract calls are bounded far below this by the sandbox's call-depth limit).
RECURSION_FRAMES = 450


def _stack_depth() -> int:
    frame = sys._getframe(1)
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


#: Stored, emitted and returned values nest at most this deep (a fixed bound, so the outcome
#: never depends on how deep the host's own stack happens to be).
VALUE_DEPTH_MAX = 32
_SCALARS = frozenset({int, str, bytes, bool, type(None)})


def _check_value(value: Any, depth: int = 0) -> None:
    kind = type(value)
    if kind in _SCALARS:
        return
    if depth >= VALUE_DEPTH_MAX:
        raise CodecError(f"values nest at most {VALUE_DEPTH_MAX} levels deep")
    if kind is list or kind is tuple:
        for item in value:
            if type(item) not in _SCALARS:
                _check_value(item, depth + 1)
    elif kind is dict:
        for key, item in value.items():
            if type(key) not in _SCALARS:
                raise CodecError("map keys are str, int, bytes or bool")
            if type(item) not in _SCALARS:
                _check_value(item, depth + 1)
    else:
        raise CodecError(
            f"{kind.__name__} values cannot be encoded (int, str, bytes, bool, None, lists, maps)"
        )


def encode_value(value: Any) -> bytes:
    """Canonical bytes of a contract value (CodecError when it has none)."""
    _check_value(value)
    return encode(value)


def _copy_value(value: Any, what: str) -> Any:
    """A canonical copy of ``value`` (CodecError -> TypeError, which contract code sees)."""
    try:
        return decode(encode_value(value), Any)
    except CodecError as exc:
        raise TypeError(f"{what} cannot be stored or sent: {exc}") from None


def _message(message: Any) -> str:
    if isinstance(message, str):
        return message[:300]
    if isinstance(message, int):
        return str(message)
    return f"(a {type(message).__name__})"


class _Api:
    """The contract API bound to one call: its state, its caller, the transaction."""

    __slots__ = ("_execution", "_state", "_contract", "context")

    def __init__(
        self, execution: _Execution, state: ContractState, contract: PythonContract, caller: Caller
    ) -> None:
        self._execution = execution
        self._state = state
        self._contract = contract
        tx = execution.tx
        self.context = Context(
            contract=contract.name,
            caller=_caller_info(caller),
            origin=_caller_info(tx.caller),
            height=tx.height,
            timestamp_ms=tx.timestamp_ms,
            tx_id=tx.tx_id,
            chain_id=tx.chain_id,
        )

    def names(self) -> dict[str, Any]:
        return {
            "Map": self.map,
            "Variable": self.variable,
            "emit": self.emit,
            "call": self.call,
            "context": self.context,
            "require": _require,
            "fail": _fail,
            "deny": _deny,
            "reject_arguments": _reject_arguments,
            "sha256": self.sha256,
            "hash": self.hash,
            "verify_signature": self.verify_signature,
            "attempt": self.attempt,
        }

    # -- storage

    def map(self, name: str) -> _MapHandle:
        return _MapHandle(self, b"m/" + _handle_name(name) + b"\x00")

    def variable(self, name: str) -> _VariableHandle:
        return _VariableHandle(self, b"v/" + _handle_name(name))

    def read(self, key: bytes) -> Any:
        raw = self._state.get(key)
        if raw is None:
            self._execution.meter.step()
            return None
        self._execution.meter.charge(1 + len(raw) // _STEP_BYTES)
        return decode(raw, Any)

    def write(self, key: bytes, value: Any) -> None:
        try:
            raw = encode_value(value)
        except CodecError as exc:
            raise TypeError(f"value cannot be stored: {exc}") from None
        self._execution.meter.charge(1 + len(raw) // _STEP_BYTES)
        self._state.put(key, raw)

    def delete(self, key: bytes) -> None:
        self._execution.meter.step()
        self._state.delete(key)

    # -- effects

    def emit(self, name: str, payload: Any = None) -> None:
        if type(name) is not str or not _HANDLE_NAME.match(name):
            raise ValueError("event names are lower-case identifiers (a-z, 0-9, _)")
        execution = self._execution
        if execution.events >= EVENTS_MAX:
            raise ValueError(f"a transaction emits at most {EVENTS_MAX} events")
        try:
            data = encode_value(payload)  # canonical bytes: later changes to payload cannot reach them
        except CodecError as exc:
            raise TypeError(f"event payload cannot be stored or sent: {exc}") from None
        execution.meter.step()
        execution.events += 1
        self._state.emit_encoded(name, data)

    def call(self, contract: str, method: str, args: Any = None) -> Any:
        if type(contract) is not str or type(method) is not str:
            raise TypeError("call(contract, method, args): contract and method are names (str)")
        return self._contract.call_other(self._execution, self._state, contract, method, args)

    def attempt(self, function: Any, *args: Any) -> list[Any]:
        """``function(*args)`` as a savepoint: ``[True, result]`` with its state writes, reads and
        events kept, or ``[False, {"code", "message"}]`` with every state write and event it made
        undone (a ``require`` / ``fail`` / ``deny`` / ``reject_arguments`` or any exception of
        contract code). The budget is the transaction's: running out of steps or memory, the
        call depth, recursion and the node's own errors are not caught (the transaction fails).
        Python values the function changed are not restored: only state and events."""
        if type(function) is not FunctionType or function.__globals__.get("__name__") != self._contract.name:
            raise TypeError("attempt(function, *args) takes a function of this contract")
        execution = self._execution
        execution.meter.step()
        parent = self._state
        child = child_state(parent, self._contract.name)
        events_before = execution.events
        self._state = child
        try:
            result = function(*args)
        except (SandboxAbort, RecursionError, MemoryError, InvariantBroken):
            raise
        except ContractError as exc:
            failure = {"code": exc.code.value, "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - contract code may raise anything; it is the answer
            failure = {"code": RejectCode.EXECUTION_FAILED.value, "message": scrub_message(exc)}
        else:
            merge_child(parent, child)
            return [True, result]
        finally:
            self._state = parent
        parent.reads.update(child.reads)  # what the attempt read still shaped the outcome
        execution.events = events_before
        return [False, failure]

    def sha256(self, data: Any) -> bytes:
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, bytes):
            raise TypeError("sha256 takes bytes or str")
        self._execution.meter.charge(1 + len(data) // _STEP_BYTES)
        return hashlib.sha256(data).digest()

    def hash(self, data: Any) -> bytes:
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, bytes):
            raise TypeError("hash takes bytes or str")
        suite = self._execution.suite(self._state)
        self._execution.meter.charge(CRYPTO_COSTS[suite.name].hash_cost(len(data)))
        return suite.hash(data)

    def verify_signature(self, public_key: Any, message: Any, signature: Any) -> bool:
        if isinstance(message, str):
            message = message.encode()
        if not (
            isinstance(public_key, bytes)
            and isinstance(message, bytes)
            and isinstance(signature, bytes)
        ):
            raise TypeError(
                "verify_signature(public_key, message, signature) takes bytes "
                "(the message may be a str)"
            )
        if len(message) > VERIFY_MESSAGE_BYTES_MAX:
            raise ValueError(
                f"verify_signature checks messages of at most {VERIFY_MESSAGE_BYTES_MAX} bytes; "
                "have people sign a hash of a longer document"
            )
        suite = self._execution.suite(self._state)
        # charged before the work and whatever the answer: the worst case, so a key another
        # transaction already parsed (the suite's key cache) costs the same steps on every node
        self._execution.meter.charge(CRYPTO_COSTS[suite.name].verify_cost(len(message)))
        if (
            len(public_key) > VERIFY_PUBLIC_KEY_BYTES_MAX
            or len(signature) > VERIFY_SIGNATURE_BYTES_MAX
        ):
            return False
        # False for any key or signature that is malformed or of the other suite (a property of
        # the input, the same on every node). What else could raise is the node's own trouble
        # (OpenSSL out of memory): it fails this transaction on that node only, whose block
        # check then disagrees with the others' - as for MemoryError in contract code.
        return suite.verify(public_key, message, signature)


def _handle_name(name: Any) -> bytes:
    if type(name) is not str or not _HANDLE_NAME.match(name):
        raise ValueError("Map / Variable names are lower-case identifiers (a-z, 0-9, _)")
    return name.encode()


def _key_bytes(key: Any) -> bytes:
    if type(key) not in (str, int, bytes):
        raise TypeError(f"Map keys are str, int or bytes, not {type(key).__name__}")
    try:
        return encode(key)
    except CodecError as exc:
        raise ValueError(f"Map key cannot be encoded: {exc}") from None


class _MapHandle:
    """``Map(name)``: a typed map in the contract's namespace (keys str, int or bytes)."""

    __slots__ = ("_api", "_prefix")

    def __init__(self, api: _Api, prefix: bytes) -> None:
        self._api = api
        self._prefix = prefix

    def get(self, key: Any, default: Any = None) -> Any:
        value = self._api.read(self._prefix + _key_bytes(key))
        return default if value is None else value

    def set(self, key: Any, value: Any) -> None:
        if value is None:
            raise ValueError("store None by deleting the key (Map.delete)")
        self._api.write(self._prefix + _key_bytes(key), value)

    def delete(self, key: Any) -> None:
        self._api.delete(self._prefix + _key_bytes(key))

    def contains(self, key: Any) -> bool:
        return self._api.read(self._prefix + _key_bytes(key)) is not None


class _VariableHandle:
    """``Variable(name)``: one value in the contract's namespace."""

    __slots__ = ("_api", "_key")

    def __init__(self, api: _Api, key: bytes) -> None:
        self._api = api
        self._key = key

    def get(self, default: Any = None) -> Any:
        value = self._api.read(self._key)
        return default if value is None else value

    def set(self, value: Any) -> None:
        if value is None:
            raise ValueError("store None by deleting the variable (Variable.delete)")
        self._api.write(self._key, value)

    def delete(self) -> None:
        self._api.delete(self._key)


def _require(condition: Any, message: Any = "requirement failed") -> None:
    if not condition:
        raise ContractError(_message(message), RejectCode.EXECUTION_FAILED)


def _fail(message: Any = "failed") -> None:
    raise ContractError(_message(message), RejectCode.EXECUTION_FAILED)


def _deny(message: Any = "permission denied") -> None:
    raise ContractError(_message(message), RejectCode.PERMISSION_DENIED)


def _reject_arguments(message: Any = "bad arguments") -> None:
    raise ContractError(_message(message), RejectCode.BAD_ARGUMENTS)


def _bind(signature: MethodSignature, args: Any) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments for ``signature`` from the call's argument value."""
    usage = f"{signature.name}({', '.join(signature.params)})"
    if args is None:
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
    elif isinstance(args, dict):
        if not all(isinstance(key, str) for key in args):
            raise ContractError(
                f"argument names must be strings; call {usage}", RejectCode.BAD_ARGUMENTS
            )
        unknown = sorted(set(args) - set(signature.params))
        if unknown:
            raise ContractError(
                f"unknown arguments {unknown}; call {usage}", RejectCode.BAD_ARGUMENTS
            )
        positional, keywords = [], dict(args)
    elif isinstance(args, list | tuple):
        if len(args) > len(signature.params):
            raise ContractError(f"too many arguments; call {usage}", RejectCode.BAD_ARGUMENTS)
        positional, keywords = list(args), {}
    elif len(signature.params) >= 1:
        positional, keywords = [args], {}
    else:
        raise ContractError(f"{signature.name} takes no arguments", RejectCode.BAD_ARGUMENTS)
    given = set(signature.params[: len(positional)]) | set(keywords)
    missing = [name for name in signature.required if name not in given]
    if missing:
        raise ContractError(f"missing arguments {missing}; call {usage}", RejectCode.BAD_ARGUMENTS)
    return positional, keywords


# ------------------------------------------------------------------------ reused module bodies
#
# A call runs its method in the globals a run of the contract's module body made. Running the
# body costs more than many methods (a 1,700-line contract defines ~110 functions: ~140 us, most
# of a payment's execution), so for a *definitional* body (the checker's
# ``module_is_definitional``: imports, functions with literal defaults, names bound to literals
# or to Map / Variable handles) the runtime keeps executed bodies and hands one to the next call
# after putting back exactly what a fresh run would give: the API names and handles bound to this
# call, fresh copies of every mutable module value and default (contract code may have mutated
# the last one; it cannot rebind module names: ``global`` is refused), the guards and builtins
# bound to this transaction's meter, and the steps and allocation the body's run charges
# (measured on its first run, constant for a definitional body). When the budget left is below
# that charge, the body runs afresh so it fails exactly where a fresh run fails. A body is in use
# by one call at a time (a nested call of the same contract, or another thread, takes another).
# Anything the first run produced that this cannot reproduce exactly switches reuse off for the
# contract. So a receipt never depends on whether a node reused a body.


class _NotReusable(CoreError):  # noqa: N818 - internal signal: this module body is run afresh
    pass


def _has_mutable(value: Any) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return False
    if kind is list or kind is dict:
        return True
    if kind is tuple:
        return any(_has_mutable(item) for item in value)
    raise _NotReusable(kind.__name__)


def _fresh(value: Any, memo: dict[int, Any]) -> Any:
    """A copy of plain data sharing no mutable object with ``value`` (aliasing among the values
    copied with one ``memo`` is kept: ``A = [1]`` and a default ``x=A`` stay one list)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    found = memo.get(id(value))
    if found is not None:
        return found
    copy: Any
    if kind is list:
        copy = []
        memo[id(value)] = copy
        copy.extend(_fresh(item, memo) for item in value)
    elif kind is dict:
        copy = {}
        memo[id(value)] = copy
        for key, item in value.items():
            copy[_fresh(key, memo)] = _fresh(item, memo)
    elif kind is tuple:
        items = tuple(_fresh(item, memo) for item in value)
        copy = value if all(a is b for a, b in zip(items, value, strict=True)) else items
        memo[id(value)] = copy
    else:
        raise _NotReusable(kind.__name__)
    return copy


def _is_flat(value: Any) -> bool:
    kind = type(value)
    if kind is list:
        return all(type(item) in _SCALARS for item in value)
    if kind is dict:
        return all(type(item) in _SCALARS for item in value.values())
    return False


class _ModuleTemplate:
    """What a fresh run of a definitional module body gives (see above)."""

    __slots__ = ("meter_names", "api_names", "handles", "data", "defaults", "steps", "allocation", "scrub")

    def __init__(self, module_globals: dict[str, Any], guards: Guards, api: _Api,
                 api_names: dict[str, Any], steps: int, allocation: int) -> None:
        guard_names = guards.names()
        meter = guards.meter
        #: guard names bound to the meter itself (the others are bound to the body's Guards)
        self.meter_names = tuple((key, value.__name__) for key, value in guard_names.items()
                                 if getattr(value, "__self__", None) is meter)
        api_kept: list[str] = []
        handles: list[tuple[str, Any, bytes]] = []
        data: list[tuple[str, Any]] = []
        defaults: list[tuple[str, Any, Any]] = []
        for key, value in module_globals.items():
            if key in ("__builtins__", "__name__"):
                continue
            if key in guard_names:
                if value != guard_names[key]:  # (bound methods: a new object per access, equal)
                    raise _NotReusable(key)
                continue
            if key in api_names and value is api_names[key]:
                api_kept.append(key)
                continue
            kind = type(value)
            if kind is FunctionType:
                if value.__globals__ is not module_globals:
                    raise _NotReusable(key)
                if _has_mutable(value.__defaults__) or (
                    value.__kwdefaults__ is not None and _has_mutable(value.__kwdefaults__)
                ):
                    defaults.append((key, value.__defaults__, value.__kwdefaults__))
            elif kind is _MapHandle or kind is _VariableHandle:
                if value._api is not api:  # noqa: SLF001
                    raise _NotReusable(key)
                handles.append((key, kind, value._prefix if kind is _MapHandle else value._key))  # noqa: SLF001
            elif _has_mutable(value):
                data.append((key, value))
        memo: dict[int, Any] = {}  # one pass: aliasing between module values and defaults is kept
        #: (name, pristine value, flat: a list or dict of scalars, copied by its C-level .copy())
        self.data = tuple((key, copy, _is_flat(copy))
                          for key, copy in ((key, _fresh(value, memo)) for key, value in data))
        self.defaults = tuple((key, _fresh(d, memo), _fresh(kd, memo)) for key, d, kd in defaults)
        self.api_names = tuple(api_kept)
        self.handles = tuple(handles)
        self.steps = steps
        self.allocation = allocation
        self.scrub: dict[str, None] = dict.fromkeys(
            [*self.api_names, *(h[0] for h in self.handles), *(d[0] for d in self.data),
             *(m[0] for m in self.meter_names)]
        )


class _Module:
    """One run module body: the globals a call's method runs in."""

    __slots__ = ("globals", "guards", "cache")

    def __init__(self, module_globals: dict[str, Any], guards: Guards | None, cache: ModuleCache | None) -> None:
        self.globals = module_globals
        self.guards = guards
        self.cache = cache

    def release(self) -> None:
        """The call is over: drop what bound the body to it and offer the body to the next."""
        cache = self.cache
        if cache is not None and not cache.disabled:
            self.globals.update(cache.template.scrub)
            cache.free.append(self)


def _run_fresh(compiled: CheckedContract, name: str, execution: _Execution, api: _Api) -> _Module:
    guard_names, builtins_ = execution.guards()
    module_globals: dict[str, Any] = {"__builtins__": builtins_, "__name__": name}
    module_globals.update(guard_names)
    module_globals.update(api.names())
    exec(compiled.code, module_globals)  # noqa: S102 - checked, instrumented contract code
    return _Module(module_globals, None, None)


def _run_reusable(compiled: CheckedContract, name: str, execution: _Execution, api: _Api) -> _Module:
    """A fresh run whose globals can be reused (its own Guards and builtins); the first one
    captures the contract's template."""
    cache = compiled.modules
    meter = execution.meter
    guards = Guards(meter)
    api_names = api.names()
    module_globals: dict[str, Any] = {"__builtins__": sandbox_builtins(guards), "__name__": name}
    module_globals.update(guards.names())
    module_globals.update(api_names)
    steps, allocation = meter.steps_left, meter.allocation_left
    exec(compiled.code, module_globals)  # noqa: S102 - checked, instrumented contract code
    steps, allocation = steps - meter.steps_left, allocation - meter.allocation_left
    template = cache.template
    try:
        if template is None:
            cache.template = _ModuleTemplate(module_globals, guards, api, api_names, steps, allocation)
        elif (steps, allocation) != (template.steps, template.allocation):
            raise _NotReusable("the module body's charge changed")
    except _NotReusable:
        cache.disabled = True
        return _Module(module_globals, None, None)
    return _Module(module_globals, guards, cache)


def _acquire_module(compiled: CheckedContract, name: str, execution: _Execution, api: _Api) -> _Module:
    """The globals for one call of ``compiled`` (see "reused module bodies" above)."""
    cache = compiled.modules
    if not compiled.definitional or cache.disabled:
        return _run_fresh(compiled, name, execution, api)
    template = cache.template
    if template is None:
        return _run_reusable(compiled, name, execution, api)
    meter = execution.meter
    if meter.steps_left < template.steps or meter.allocation_left < template.allocation:
        return _run_fresh(compiled, name, execution, api)  # fails where a fresh run fails
    try:
        module: _Module = cache.free.pop()
    except IndexError:
        return _run_reusable(compiled, name, execution, api)
    if template.steps:
        meter.charge(template.steps)
    if template.allocation:
        meter.allocate(template.allocation)
    guards = module.guards
    if guards is None:
        raise InvariantBroken("a reusable module body without its guards")
    guards.meter = meter
    guards.limits = meter.limits
    module_globals = module.globals
    for key, attribute in template.meter_names:
        module_globals[key] = getattr(meter, attribute)
    api_names = api.names()
    for key in template.api_names:
        module_globals[key] = api_names[key]
    for key, kind, prefix in template.handles:
        module_globals[key] = kind(api, prefix)
    memo: dict[int, Any] = {}
    for key, value, flat in template.data:
        copy = memo.get(id(value))
        if copy is None:
            copy = value.copy() if flat else _fresh(value, memo)
            memo[id(value)] = copy
        module_globals[key] = copy
    for key, defaults, kwdefaults in template.defaults:
        function = module_globals[key]
        function.__defaults__ = _fresh(defaults, memo)
        function.__kwdefaults__ = _fresh(kwdefaults, memo)
    return module


class FrozenContract:
    """What the resolver returns for a frozen contract: every call refused, with the reason."""

    __slots__ = ("name", "version", "reason")

    def __init__(self, name: str, version: str, reason: str) -> None:
        self.name = name
        self.version = version
        self.reason = reason

    def call(self, method: str, args: Any, ctx: TxContext, state: ContractState) -> tuple[Any, int]:
        raise ContractError(
            f"contract {self.name!r} (version {self.version}) is frozen by governance"
            f"{': ' + self.reason if self.reason else ''}; it runs again only after an approved "
            "unfreeze_contract proposal",
            RejectCode.PERMISSION_DENIED,
        )


class PythonContract:
    """A deployed contract as a NativeContract (see the module docstring)."""

    __slots__ = ("name", "record", "compiled", "resolver", "limits")

    def __init__(
        self,
        record: DeployedContract,
        compiled: CheckedContract,
        resolver: Resolver,
        limits: SandboxLimits,
    ) -> None:
        self.name = record.name
        self.record = record
        self.compiled = compiled
        self.resolver = resolver
        self.limits = limits

    # -- the NativeContract protocol

    def call(self, method: str, args: Any, ctx: TxContext, state: ContractState) -> tuple[Any, int]:
        return self.run(method, args, ctx, state, governance=False)

    def run(
        self, method: str, args: Any, ctx: TxContext, state: ContractState, *, governance: bool
    ) -> tuple[Any, int]:
        """Run ``method`` as the outermost call of a transaction; every failure is a ContractError."""
        execution = _Execution(self.limits, self.resolver, ctx)
        # C code recursing over nested values (==, sorted, hashing tuples) counts against
        # Python's recursion limit, from however deep the host's stack already is. Pin the
        # head-room contract code gets, so where it fails is the same on every node.
        recursion_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(_stack_depth() + RECURSION_FRAMES)
        try:
            result = self.execute(execution, state, method, args, ctx.caller, governance=governance)
        except ContractError:
            raise
        except OutOfSteps as exc:
            raise ContractError(f"out of steps: {exc}", RejectCode.OUT_OF_STEPS) from None
        except SandboxAbort as exc:
            raise ContractError(str(exc), RejectCode.EXECUTION_FAILED) from None
        except RecursionError:
            raise ContractError("recursion too deep", RejectCode.EXECUTION_FAILED) from None
        except MemoryError:
            raise ContractError("memory exhausted", RejectCode.EXECUTION_FAILED) from None
        except Exception as exc:  # noqa: BLE001 - contract code may raise anything; none escapes
            raise ContractError(
                f"{self.name}.{method} failed: {scrub_message(exc)}", RejectCode.EXECUTION_FAILED
            ) from None
        finally:
            sys.setrecursionlimit(recursion_limit)
        return result, execution.meter.steps_used

    # -- one call (outermost or nested)

    def method_signature(self, method: str, governance: bool) -> MethodSignature:
        signature = self.compiled.function(method)
        hidden = method.startswith("_") or (method in GOVERNANCE_METHODS and not governance)
        if signature is None or hidden:
            public = sorted(
                s.name
                for s in self.compiled.functions
                if not s.name.startswith("_") and s.name not in GOVERNANCE_METHODS
            )
            raise ContractError(
                f"contract {self.name!r} (version {self.record.version}) has no method {method!r}; "
                f"methods: {', '.join(public) or 'none'}",
                RejectCode.UNKNOWN_METHOD,
            )
        return signature

    def check_permission(self, method: str, caller: Caller) -> None:
        rule = self.record.rule_for(method)
        if rule is not None and not rule.allows(caller):
            who = f"{caller.name} of {caller.org or 'no organisation'} (roles {', '.join(caller.roles) or 'none'})"
            need = []
            if rule.roles:
                need.append(f"role {' or '.join(rule.roles)}")
            if rule.orgs:
                need.append(f"organisation {' or '.join(rule.orgs)}")
            raise ContractError(
                f"{self.name}.{method} needs {' and '.join(need)}; {who} may not call it",
                RejectCode.PERMISSION_DENIED,
            )

    def execute(
        self,
        execution: _Execution,
        state: ContractState,
        method: str,
        args: Any,
        caller: Caller,
        *,
        governance: bool = False,
    ) -> Any:
        signature = self.method_signature(method, governance)
        if not governance:
            self.check_permission(method, caller)
        positional, keywords = _bind(signature, args)
        api = _Api(execution, state, self, caller)
        execution.meter.step()
        module = _acquire_module(self.compiled, self.name, execution, api)
        try:
            result = module.globals[method](*positional, **keywords)
        finally:
            module.release()
        try:
            _check_value(result)
            encode(result)
        except CodecError as exc:
            raise ContractError(
                f"{self.name}.{method} returned a value that cannot be encoded: {exc}",
                RejectCode.EXECUTION_FAILED,
            ) from None
        return result

    def call_other(
        self, execution: _Execution, state: ContractState, contract: str, method: str, args: Any
    ) -> Any:
        """``call(contract, method, args)`` from inside this contract."""
        if contract in UNCALLABLE_FROM_CONTRACTS:
            raise ContractError(
                f"contracts may not call {contract!r}", RejectCode.PERMISSION_DENIED
            )
        if execution.depth >= CONTRACT_CALL_DEPTH_MAX:
            raise ContractError(
                f"contract calls nest deeper than {CONTRACT_CALL_DEPTH_MAX}",
                RejectCode.EXECUTION_FAILED,
            )
        copied_args = _copy_value(args, "call arguments")
        execution.meter.step()
        target = execution.resolver.get(contract, StateView(state))
        if target is None:
            raise ContractError(
                f"no contract named {contract!r} is active", RejectCode.UNKNOWN_CONTRACT
            )
        as_caller = Caller(
            name=f"contract:{self.name}", org="", roles=("contract",), certificate_id=b""
        )
        child = child_state(state, contract)
        execution.depth += 1
        try:
            if isinstance(target, PythonContract):
                result = target.execute(execution, child, method, copied_args, as_caller)
            else:
                tx = execution.tx
                nested_ctx = TxContext(
                    chain_id=tx.chain_id,
                    height=tx.height,
                    timestamp_ms=tx.timestamp_ms,
                    tx_id=tx.tx_id,
                    caller=as_caller,
                )
                try:
                    result, steps = target.call(method, copied_args, nested_ctx, child)
                except (TypeError, ValueError, KeyError, IndexError) as exc:
                    raise ContractError(
                        f"{contract}.{method}: {scrub_message(exc)}", RejectCode.BAD_ARGUMENTS
                    ) from None
                execution.meter.charge(max(int(steps), 1))
        finally:
            execution.depth -= 1
        merge_child(state, child)
        return _copy_value(result, "call result")
