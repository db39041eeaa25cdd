"""Who may read what: a contract's declared read permission, and the consortium's auditors.

Theory of operation
-------------------
Every gateway read runs as an authenticated consortium member (the gateway refuses anyone else).
What that member may read of one contract — its state, the arguments of transactions sent to
it, its events, the answers of its queries — is decided here, against the head state:

* a deployed contract may declare ``"@read": {"roles": [...], "orgs": [...]}`` in the
  permissions governance activated with it; only callers that rule allows read it. Without
  ``@read`` every member reads it (the consortium-transparent default of a shared ledger);
* built-in contracts (``gov``, ``kv``) and names no contract holds are readable by every member
  (governance must be visible to all who vote on it);
* identities with the ``auditor`` role from the organisations governance named as auditors
  (``set_auditors``) read every contract — an organisation's own CA cannot make itself one;
* the organisation that signed a transaction reads that transaction (its own words), whatever
  the contract's rule (:meth:`ReadAccess.may_read_tx`).

Pure: decisions are a function of the state and the caller.
"""

from __future__ import annotations

from pilotchain.contracts.governance import READ_PERMISSION, read_auditors, read_deployed
from pilotchain.contracts.runtime import MethodRule
from pilotchain.ledger.execution import Caller, StateReader

__all__ = ["ReadAccess", "AUDITOR_ROLE"]

AUDITOR_ROLE = "auditor"


class ReadAccess:
    """What one authenticated caller may read at one state (decisions cached per contract)."""

    def __init__(self, state: StateReader, caller: Caller) -> None:
        self._state = state
        self.caller = caller
        self.auditor = AUDITOR_ROLE in caller.roles and caller.org in read_auditors(state)
        self._rules: dict[str, MethodRule | None] = {}

    def rule(self, contract: str) -> MethodRule | None:
        """The contract's ``@read`` rule (None: every member reads it)."""
        if contract not in self._rules:
            record = read_deployed(self._state, contract) if contract else None
            rule = None
            if record is not None:
                rule = next((r for name, r in record.permissions if name == READ_PERMISSION), None)
            self._rules[contract] = rule
        return self._rules[contract]

    def may_read(self, contract: str) -> bool:
        if self.auditor:
            return True
        rule = self.rule(contract)
        return rule is None or rule.allows(self.caller)

    def may_read_tx(self, contract: str, signer_org: str) -> bool:
        """A transaction: readable by whom its contract's rule allows, and by its signer's org."""
        return signer_org == self.caller.org or self.may_read(contract)

    def refusal(self, contract: str) -> str:
        """Why :meth:`may_read` said no, and what to do about it."""
        rule = self.rule(contract)
        who = []
        if rule is not None and rule.roles:
            who.append("role " + " or ".join(rule.roles))
        if rule is not None and rule.orgs:
            who.append("organisation " + " or ".join(rule.orgs))
        return (
            f"contract {contract!r} is readable only by {' in '.join(who) or 'its listed readers'} "
            f"(its @read permission) and by the consortium's auditors; you are {self.caller.name} "
            f"of {self.caller.org}"
        )
