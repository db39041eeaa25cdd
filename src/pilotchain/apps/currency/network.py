"""The currency network: its own chain, controlled by the central bank.

``init_currency_network`` is the currency's ``network init`` profile (``pilotchain currency network
init``): organisations are the central bank and the authorised operators; every validator is the
central bank's (in its data centres: BFT against one compromised site); the operators are member
organisations with identities and vaults but no validator. The genesis allows transactions large
enough to carry the currency contract (its code travels in the governance proposal). After
``network up``, :func:`activate` hands governance to the central bank (every proposal kind: the
central bank alone decides, all operators agreeing once at the founding), activates the ``currency``
contract and authorises the operators with their quotas by the central bank's maker-checker.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pilotchain.ledger.genesis import ChainParams
from pilotchain.ledger.tx import TxLimits
from pilotchain.network.consortium import OrgSpec, init_network

__all__ = ["CENTRAL_BANK", "CONTRACT_SOURCE", "CURRENCY_PARAMS", "DEFAULT_OPERATORS", "init_currency_network"]

CONTRACT_SOURCE = Path(__file__).with_name("contracts") / "currency.py"
CENTRAL_BANK = OrgSpec("central-bank", "People's Bank (digital currency)")
DEFAULT_OPERATORS: tuple[OrgSpec, ...] = (
    OrgSpec("bank-a", "Commercial Bank A (authorised operator)"),
    OrgSpec("bank-b", "Commercial Bank B (authorised operator)"),
)
#: the contract's code travels in one governance transaction: allow it (and room to grow)
CURRENCY_PARAMS = ChainParams(tx_limits=TxLimits(tx_bytes_max=256 * 1024, args_bytes_max=192 * 1024))


def init_currency_network(directory: Path, *, operators: Sequence[OrgSpec] = DEFAULT_OPERATORS,
                          validators: int = 4, suite_name: str = "intl", chain_id: str = "e-cny",
                          base_port: int = 27600, now_ms: int, **options: Any) -> dict[str, Any]:
    """The currency network's folder (what ``network init`` writes), the central bank running
    every validator."""
    return init_network(directory, orgs=(CENTRAL_BANK, *operators), validators=validators, suite_name=suite_name,
                        chain_id=chain_id, base_port=base_port, now_ms=now_ms, params=CURRENCY_PARAMS,
                        validator_orgs=[CENTRAL_BANK.org_id], **options)
