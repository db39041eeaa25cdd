"""The bridge from the consortium's membership to transaction checks.

A transaction names its signer by certificate. :class:`MembershipAuthenticator` asks the
:class:`~pilotchain.identity.membership.Membership` whether a member organisation vouches for
that certificate at the given time (the node's clock for admission, the block's proposer
timestamp for inclusion and execution) and whether it holds a role that may submit transactions
(least privilege: ``client`` or ``admin``; a ``validator`` or ``auditor`` identity cannot
transact). Reading through a gateway (:meth:`MembershipAuthenticator.reader`) also admits the
``auditor`` role — what an auditor may read is then decided by ``pilotchain.contracts.reads``. AuthenticatedIdentity rejections become transaction rejections with the identity reason kept in
the message.
"""

from __future__ import annotations

from pilotchain.identity.errors import IdentityRejected, RejectReason
from pilotchain.identity.membership import AuthenticatedIdentity, Membership
from pilotchain.identity.records import OrgCertificate, decode_record
from pilotchain.ledger.execution import Caller
from pilotchain.ledger.genesis import Genesis
from pilotchain.ledger.tx import RejectCode, TxRejected

__all__ = ["MembershipAuthenticator", "READING_ROLES", "TRANSACTING_ROLES"]

TRANSACTING_ROLES = ("client", "admin")
READING_ROLES = ("client", "admin", "auditor")
_UNKNOWN = {RejectReason.MALFORMED, RejectReason.UNKNOWN_ORG, RejectReason.UNKNOWN_ISSUER, RejectReason.WRONG_SUITE}


#: Certificates whose authentication a MembershipAuthenticator remembers (each a few hundred bytes).
AUTHENTICATED_MEMO_MAX = 10_000


class MembershipAuthenticator:
    def __init__(self, membership: Membership) -> None:
        self.membership = membership
        # certificate bytes -> (membership version, valid from, valid until, identity, caller):
        # every transaction is authenticated at admission, again in the block and at execution,
        # by the same few signers; within the window and membership version the answer is fixed
        self._memo: dict[bytes, tuple[int, int, int, AuthenticatedIdentity, Caller]] = {}

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> MembershipAuthenticator:
        """The membership the genesis document's organisation certificates describe."""
        orgs = [decode_record(raw, OrgCertificate) for raw in genesis.organizations]
        return cls(Membership(genesis.suite, orgs))

    def identity(self, certificate: bytes, now_ms: int) -> AuthenticatedIdentity:
        return self._authenticated(certificate, now_ms)[3]

    def _authenticated(self, certificate: bytes, now_ms: int,
                       roles: tuple[str, ...] = TRANSACTING_ROLES) -> tuple[int, int, int, AuthenticatedIdentity, Caller]:
        memo = self._member(certificate, now_ms)
        identity = memo[3]
        if not any(identity.has_role(role) for role in roles):
            doing = "submitting transactions" if roles == TRANSACTING_ROLES else "reading"
            raise TxRejected(
                RejectCode.PERMISSION_DENIED,
                f"{identity.subject} of {identity.org_id} holds roles [{', '.join(identity.roles)}]; "
                f"{doing} needs role {' or '.join(roles)}",
            )
        return memo

    def _member(self, certificate: bytes, now_ms: int) -> tuple[int, int, int, AuthenticatedIdentity, Caller]:
        memo = self._memo.get(certificate)
        version = self.membership.version
        if memo is not None and memo[0] == version and memo[1] <= now_ms < memo[2]:
            return memo
        try:
            identity, valid_from_ms, valid_until_ms = self.membership.authenticate_window(certificate, now_ms)
        except IdentityRejected as exc:
            code = RejectCode.UNKNOWN_SIGNER if exc.reason in _UNKNOWN else RejectCode.SIGNER_REJECTED
            raise TxRejected(code, f"signer {exc.reason.value}: {exc.message}") from exc
        caller = Caller(
            name=identity.subject,
            org=identity.org_id,
            roles=tuple(str(role) for role in identity.roles),
            certificate_id=identity.certificate_id,
        )
        memo = (version, valid_from_ms, valid_until_ms, identity, caller)
        if len(self._memo) >= AUTHENTICATED_MEMO_MAX:
            del self._memo[next(iter(self._memo))]
        self._memo[certificate] = memo
        return memo

    def public_key_of(self, certificate: bytes, now_ms: int) -> bytes:
        return self._authenticated(certificate, now_ms)[3].public_key_der

    def caller_of(self, certificate: bytes, now_ms: int) -> Caller:
        return self._authenticated(certificate, now_ms)[4]

    def reader(self, certificate: bytes, now_ms: int) -> tuple[bytes, Caller]:
        """The key and caller of a member who may read through a gateway (:data:`READING_ROLES`)."""
        memo = self._authenticated(certificate, now_ms, READING_ROLES)
        return memo[3].public_key_der, memo[4]
