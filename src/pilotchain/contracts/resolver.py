"""ChainContracts: the ContractResolver a node gives its ledger.

Theory of operation
-------------------
A transaction names a contract; :meth:`ChainContracts.get` answers against the state the
transaction sees (committed state plus the block so far), in this order:

1. the node's built-in native contracts (``kv`` by default; :meth:`register` adds more, so
   this class is a drop-in for :class:`~pilotchain.ledger.execution.ContractRegistry`);
2. the ``gov`` system contract (:mod:`pilotchain.contracts.governance`);
3. a Python contract governance deployed: its record is read from ``gov\\x00c/<name>``; a
   frozen one resolves to a :class:`~pilotchain.contracts.runtime.FrozenContract` (every call
   refused with the reason); otherwise its code (``gov\\x00code/<hash>``) is compiled once and
   cached by code hash (bounded LRU) and wrapped with the sandbox limits governance set.

Names of built-in and system contracts are reserved: governance refuses to deploy over them.

:meth:`ChainContracts.suite_of` gives Python contracts the chain's crypto suite (for ``hash`` and
``verify_signature``) from the genesis document in state.

Pure: no I/O, clock or randomness.
"""

from __future__ import annotations

from collections import OrderedDict

from pilotchain.contracts.api import API_NAMES
from pilotchain.contracts.governance import (
    GOV_CONTRACT,
    GovernanceContract,
    contract_limits,
    read_code,
    read_deployed,
)
from pilotchain.contracts.kv import KvContract
from pilotchain.contracts.runtime import FrozenContract, PythonContract
from pilotchain.contracts.sandbox import (
    BUILTIN_NAMES,
    CheckedContract,
    SandboxLimits,
    compile_contract,
)
from pilotchain.crypto import Suite, get_suite
from pilotchain.errors import InvariantBroken
from pilotchain.ledger.execution import ContractRegistry, NativeContract, StateReader

__all__ = ["ChainContracts", "COMPILED_CACHE_MAX", "default_builtins"]

#: Compiled contracts kept (by code hash).
COMPILED_CACHE_MAX = 128
_ALLOWED_GLOBALS = BUILTIN_NAMES | frozenset(API_NAMES)


def default_builtins() -> ContractRegistry:
    """The built-in native contracts every node has (``kv``)."""
    registry = ContractRegistry()
    registry.register(KvContract())
    return registry


class ChainContracts:
    """Built-in, system and governance-deployed contracts, resolved against state."""

    def __init__(
        self, builtins: ContractRegistry | None = None, *, limits: SandboxLimits | None = None
    ) -> None:
        self.builtins = builtins if builtins is not None else default_builtins()
        self.base_limits = limits or SandboxLimits()
        self.gov = GovernanceContract(self)
        self._compiled: OrderedDict[bytes, CheckedContract] = OrderedDict()

    # -- ContractRegistry compatibility

    def register(self, contract: NativeContract) -> None:
        if not (contract.name != GOV_CONTRACT):
            raise InvariantBroken("gov is the system contract")
        self.builtins.register(contract)

    @property
    def contracts(self) -> dict[str, NativeContract]:
        return self.builtins.contracts

    def is_reserved(self, name: str) -> bool:
        return name == GOV_CONTRACT or self.builtins.get(name) is not None

    # -- ContractResolver

    def get(self, name: str, state: StateReader | None = None) -> NativeContract | None:
        builtin = self.builtins.get(name)
        if builtin is not None:
            return builtin
        if name == GOV_CONTRACT:
            return self.gov
        if state is None:
            return None
        record = read_deployed(state, name)
        if record is None:
            return None
        if record.frozen:
            return FrozenContract(record.name, record.version, record.frozen_reason)
        compiled = self._compiled.get(record.code_hash)
        if compiled is None:
            code = read_code(state, record.code_hash)
            if not (code is not None):
                raise InvariantBroken(f"contract {name} names code {record.code_hash.hex()} that is not stored")
            compiled = self.compile(record.code_hash, code)
        else:
            self._compiled.move_to_end(record.code_hash)
        return PythonContract(record, compiled, self, contract_limits(state, self.base_limits))

    def suite_of(self, state: StateReader) -> Suite:
        """The chain's crypto suite, named by the genesis document in ``state`` (decoded once
        per distinct document)."""
        _raw, genesis = self.gov.membership_cache.genesis(state)
        return get_suite(genesis.suite)

    def compile(self, code_hash: bytes, code: str) -> CheckedContract:
        """The compiled contract for ``code`` (cached under ``code_hash``); CodeRejected if it is
        not in the sandbox subset. The caller has checked that ``code_hash`` names ``code``."""
        cached = self._compiled.get(code_hash)
        if cached is not None:
            return cached
        compiled = compile_contract(code, _ALLOWED_GLOBALS)
        self._compiled[code_hash] = compiled
        while len(self._compiled) > COMPILED_CACHE_MAX:
            self._compiled.popitem(last=False)
        return compiled
