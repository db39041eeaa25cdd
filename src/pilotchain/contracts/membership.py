"""Membership as governance leaves it: genesis organisations plus the approved changes, in order.

Theory of operation
-------------------
Governance never edits a :class:`~pilotchain.identity.membership.Membership` in place. When an
approved proposal adds or removes an organisation, rotates an org CA or revokes an identity, the
``gov`` contract appends a :class:`MembershipChange` to an append-only log in its namespace::

    gov\\x00m/head          -> MembershipHead(count, digest)
    gov\\x00m/<seq: 8 bytes> -> MembershipChange (seq = 0, 1, ...)

``digest`` chains every entry (``sha256(previous digest || entry bytes)``), so (count, digest)
names one exact history. :func:`governed_membership` replays genesis + log into a Membership —
deterministic: the same state gives the same membership on every node (a rotation is applied at
the block time it was approved, recorded in the entry).

:class:`MembershipCache` keeps the replayed membership per (genesis, head) and extends it
incrementally when the log grows, so reading it costs one state read per call.

:class:`GovernedAuthenticator` is the ledger's signer authenticator over that membership: it
wraps :class:`~pilotchain.ledger.auth.MembershipAuthenticator` and, on every call, checks the log
head in the committed state it is bound to. Changes approved in block *h* therefore apply to
transactions checked and executed from block *h + 1* on (admission, inclusion and execution all
read the committed state).

Pure: no I/O, clock or randomness (the state reader is handed in).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.errors import InvariantBroken
from pilotchain.identity.errors import UpdateRejected
from pilotchain.identity.membership import Membership
from pilotchain.identity.records import CaRotation, OrgCertificate, Revocation, decode_record
from pilotchain.ledger.auth import MembershipAuthenticator
from pilotchain.ledger.execution import Caller, StateReader
from pilotchain.ledger.genesis import GENESIS_STATE_KEY, Genesis

__all__ = [
    "MembershipChange",
    "MembershipHead",
    "MEMBERSHIP_KINDS",
    "membership_head_key",
    "membership_entry_key",
    "read_membership_head",
    "apply_membership_change",
    "governed_membership",
    "MembershipCache",
    "GovernedAuthenticator",
    "read_genesis",
]

GOV_PREFIX = b"gov\x00"
#: Replayed memberships kept by one cache (each for one (genesis, head)).
CACHE_ENTRIES_MAX = 8
#: Membership changes in one chain's log.
MEMBERSHIP_LOG_MAX = 1_000_000

ADD_ORG = "add_org"
REMOVE_ORG = "remove_org"
ROTATE_CA = "rotate_ca"
REVOKE = "revoke"
MEMBERSHIP_KINDS = (ADD_ORG, REMOVE_ORG, ROTATE_CA, REVOKE)


class MembershipChange(Record, frozen=True):
    seq: int
    kind: str
    org_id: str
    #: canonical OrgCertificate (add_org), CaRotation (rotate_ca) or Revocation (revoke); empty for remove_org
    record: bytes
    #: block timestamp of the approval (the rotation's "now")
    at_ms: int
    height: int
    proposal_id: int


class MembershipHead(Record, frozen=True):
    count: int
    digest: bytes


EMPTY_HEAD = MembershipHead(count=0, digest=b"\x00" * 32)


def membership_head_key() -> bytes:
    return b"m/head"


def membership_entry_key(seq: int) -> bytes:
    return b"m/" + seq.to_bytes(8, "big")


def next_digest(previous: bytes, entry: bytes) -> bytes:
    return hashlib.sha256(previous + entry).digest()


def read_membership_head(state: StateReader) -> MembershipHead:
    raw = state.get(GOV_PREFIX + membership_head_key())
    return EMPTY_HEAD if raw is None else decode(raw, MembershipHead)


def read_genesis(state: StateReader) -> Genesis:
    raw = state.get(GENESIS_STATE_KEY)
    if not (raw is not None):
        raise InvariantBroken("every ledger has its genesis document in state")
    return decode(raw, Genesis)


def apply_membership_change(membership: Membership, change: MembershipChange) -> None:
    """Apply one change (raises UpdateRejected or CodecError when it does not apply)."""
    if change.kind == ADD_ORG:
        membership.add_org(decode_record(change.record, OrgCertificate))
    elif change.kind == REMOVE_ORG:
        membership.remove_org(change.org_id)
    elif change.kind == ROTATE_CA:
        membership.apply_rotation(decode_record(change.record, CaRotation), change.at_ms)
    elif change.kind == REVOKE:
        membership.apply_revocation(decode_record(change.record, Revocation))
    else:
        raise AssertionError(f"unknown membership change kind {change.kind!r}")


def _genesis_membership(genesis: Genesis) -> Membership:
    orgs = [decode_record(raw, OrgCertificate) for raw in genesis.organizations]
    return Membership(genesis.suite, orgs)


def _replay(membership: Membership, state: StateReader, start: int, count: int) -> None:
    for seq in range(start, count):
        raw = state.get(GOV_PREFIX + membership_entry_key(seq))
        if not (raw is not None):
            raise InvariantBroken(f"membership log entry {seq} is missing below its head")
        change = decode(raw, MembershipChange)
        try:
            apply_membership_change(membership, change)
        except (
            UpdateRejected,
            CodecError,
        ) as exc:  # pragma: no cover - checked before it is logged
            raise AssertionError(f"membership log entry {seq} does not apply: {exc}") from exc


def governed_membership(genesis: Genesis, state: StateReader) -> Membership:
    """The membership genesis + the governance log in ``state`` describe (no caching)."""
    membership = _genesis_membership(genesis)
    _replay(membership, state, 0, read_membership_head(state).count)
    return membership


class MembershipCache:
    """Replayed memberships by (genesis, log head); grows incrementally, bounded."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[bytes, bytes], tuple[int, Membership]] = OrderedDict()
        self._genesis: dict[bytes, Genesis] = {}

    def genesis(self, state: StateReader) -> tuple[bytes, Genesis]:
        raw = state.get(GENESIS_STATE_KEY)
        if not (raw is not None):
            raise InvariantBroken("every ledger has its genesis document in state")
        genesis = self._genesis.get(raw)
        if genesis is None:
            if len(self._genesis) >= CACHE_ENTRIES_MAX:
                self._genesis.clear()
            genesis = decode(raw, Genesis)
            self._genesis[raw] = genesis
        return raw, genesis

    def membership(
        self, state: StateReader, genesis_known: tuple[bytes, Genesis] | None = None
    ) -> Membership:
        """The current membership for ``state`` (do not modify it: copy() first).
        ``genesis_known`` (its canonical bytes and the document) spares reading it from state."""
        genesis_raw, genesis = genesis_known or self.genesis(state)
        head_raw = state.get(GOV_PREFIX + membership_head_key())
        key = (genesis_raw, head_raw or b"")
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            return cached[1]
        head = EMPTY_HEAD if head_raw is None else decode(head_raw, MembershipHead)
        base: tuple[int, Membership] | None = None
        for (other_genesis, _), (count, membership) in reversed(self._entries.items()):
            if (
                other_genesis == genesis_raw
                and count <= head.count
                and self._is_prefix(state, count, membership)
            ):
                base = (count, membership)
                break
        if base is None:
            membership = _genesis_membership(genesis)
            start = 0
        else:
            membership = base[1].copy()
            start = base[0]
        _replay(membership, state, start, head.count)
        self._entries[key] = (head.count, membership)
        while len(self._entries) > CACHE_ENTRIES_MAX:
            self._entries.popitem(last=False)
        return membership

    def _is_prefix(self, state: StateReader, count: int, membership: Membership) -> bool:
        # a cached membership at `count` is a prefix of this state's log iff the state's digest
        # after `count` entries matches; the digest chain is recomputed only over the new tail
        for (_, head_bytes), (cached_count, cached) in self._entries.items():
            if cached is membership and cached_count == count:
                cached_digest = (
                    EMPTY_HEAD.digest
                    if not head_bytes
                    else decode(head_bytes, MembershipHead).digest
                )
                return _digest_after(state, count) == cached_digest
        return False


def _digest_after(state: StateReader, count: int) -> bytes:
    digest = EMPTY_HEAD.digest
    for seq in range(count):
        raw = state.get(GOV_PREFIX + membership_entry_key(seq))
        if raw is None:
            return b""
        digest = next_digest(digest, raw)
    return digest


class GovernedAuthenticator:
    """A SignerAuthenticator over the membership governance maintains in committed state.

    ``state`` is the ledger's committed state (``ledger.store``); it may be bound after the
    ledger is opened (:meth:`bind`) — until then genesis membership is used."""

    def __init__(self, genesis: Genesis, state: StateReader | None = None) -> None:
        self.genesis = genesis
        self._state = state
        self._cache = MembershipCache()
        self._genesis_known = (encode(genesis), genesis)
        self._static = MembershipAuthenticator.from_genesis(genesis)
        self._current: tuple[Membership, MembershipAuthenticator] | None = None
        self._current_height: int | None = None

    def bind(self, state: StateReader) -> None:
        self._state = state
        self._current = None
        self._current_height = None

    @property
    def membership(self) -> Membership:
        return self._authenticator().membership

    def _authenticator(self) -> MembershipAuthenticator:
        if self._state is None:
            return self._static
        # governance changes take effect from the block after the one that approves them, so
        # the membership is a function of the committed height: look it up once per height,
        # not once per transaction (a state read each time was 7 % of admission)
        height = getattr(self._state, "height", None)
        current = self._current
        if height is not None and current is not None and self._current_height == height:
            return current[1]
        membership = self._cache.membership(self._state, self._genesis_known)
        if current is None or current[0] is not membership:
            current = (membership, MembershipAuthenticator(membership))
            self._current = current
        self._current_height = height
        return current[1]

    def public_key_of(self, certificate: bytes, now_ms: int) -> bytes:
        return self._authenticator().public_key_of(certificate, now_ms)

    def caller_of(self, certificate: bytes, now_ms: int) -> Caller:
        return self._authenticator().caller_of(certificate, now_ms)

    def reader(self, certificate: bytes, now_ms: int) -> tuple[bytes, Caller]:
        return self._authenticator().reader(certificate, now_ms)
