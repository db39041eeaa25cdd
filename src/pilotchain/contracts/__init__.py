"""Contracts: the built-in native ones, the Python contract sandbox, and governance.

Theory of operation
-------------------
* :mod:`~pilotchain.contracts.kv` — the built-in ``kv`` table every network has.
* :mod:`~pilotchain.contracts.sandbox` — checks contract source against a deterministic subset
  of Python at deploy, instruments it (step meter, memory guards) and compiles it.
* :mod:`~pilotchain.contracts.api` — what contract authors import (``Map``, ``Variable``,
  ``context``, ``emit``, ``call``, ``require`` ...).
* :mod:`~pilotchain.contracts.runtime` — runs a compiled contract as a NativeContract: argument
  binding, per-method permissions, nested calls; no exception from contract code escapes.
* :mod:`~pilotchain.contracts.governance` — the ``gov`` system contract: proposals, approval
  policies, contract lifecycle, membership, validators and parameters.
* :mod:`~pilotchain.contracts.membership` — membership as governance leaves it, and the
  :class:`GovernedAuthenticator` for the ledger.
* :mod:`~pilotchain.contracts.resolver` — :class:`ChainContracts`, the ContractResolver a node
  hands its ledger (built-ins, ``gov``, deployed Python contracts).

Everything here is pure (no I/O, clock or randomness) except :mod:`~pilotchain.contracts.bench`.
See docs/contracts.md.
"""

from __future__ import annotations

from pilotchain.contracts.governance import (
    DEFAULT_POLICIES,
    PROPOSAL_KINDS,
    GovernanceContract,
    Policy,
    governed_chain_params,
    validator_set_at,
)
from pilotchain.contracts.membership import GovernedAuthenticator, governed_membership
from pilotchain.contracts.resolver import ChainContracts
from pilotchain.contracts.sandbox import CodeRejected, SandboxLimits

__all__ = [
    "ChainContracts",
    "GovernedAuthenticator",
    "governed_membership",
    "GovernanceContract",
    "Policy",
    "PROPOSAL_KINDS",
    "DEFAULT_POLICIES",
    "governed_chain_params",
    "validator_set_at",
    "SandboxLimits",
    "CodeRejected",
]
