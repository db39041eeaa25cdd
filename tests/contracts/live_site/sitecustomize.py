"""Test-only: make `pilotchain node start` processes use the governed contract resolver.

Put this folder on PYTHONPATH and set PILOTCHAIN_TEST_GOVERNED=1. It stands in for the two
integration lines in node/daemon.py (see docs/contracts.md) until they land; once the daemon
builds ChainContracts itself this file is a no-op.
"""

import os

if os.environ.get("PILOTCHAIN_TEST_GOVERNED") == "1":
    from pilotchain.contracts.resolver import ChainContracts
    from pilotchain.ledger.execution import ContractRegistry
    from pilotchain.node import daemon

    if daemon.ContractRegistry is ContractRegistry:

        class _GovernedRegistry(ChainContracts):
            def __init__(self) -> None:
                super().__init__(ContractRegistry())  # the daemon registers kv itself

        daemon.ContractRegistry = _GovernedRegistry  # type: ignore[misc]
