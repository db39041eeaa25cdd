"""A vault's view of the chain: every fact it acts on is proven, not taken on a gateway's word.

A vault releases a payload only when a PERMIT is in the ``dataex`` state *now*; it learns that
from its own organisation's node, but checks it: the value comes with a state proof against a
block header, and the header with a commit certificate signed by more than 2/3 of the validators
in force (genesis, then governance's validator schedule — a schedule the certificate does not
match is refused by :func:`~pilotchain.ledger.commit.verify_header_commit`, which compares the
roster hash every header names). A header older than ``freshness_ms`` by the vault's clock is
not "now": the vault refuses rather than act on stale state.

Membership (who is a current member, revoked or not) is read the same way: the ``gov``
contract's membership log, proven key by key, replayed by the platform's own
:class:`~pilotchain.contracts.membership.GovernedAuthenticator`.

A development node (``pilotchain node dev``) certifies nothing; ``require_certificates=False``
accepts its headers and says so in every decision it logs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pilotchain.apps.exchange.records import (
    CONTRACT,
    ExchangeError,
    decision_key,
    org_key,
    payload_key,
)
from pilotchain.codec import CodecError, decode
from pilotchain.contracts.membership import GovernedAuthenticator
from pilotchain.crypto import Suite, get_suite
from pilotchain.ledger.block import BlockHeader, block_hash
from pilotchain.ledger.commit import InvalidCertificate, verify_header_commit
from pilotchain.ledger.execution import Caller
from pilotchain.ledger.genesis import Genesis, ValidatorInfo
from pilotchain.sdk import Client, PilotchainError, ProofError

__all__ = ["ChainView", "HeaderCertifier", "ProvenFact"]

#: a header older than this (by the vault's clock) is not "now"
FRESHNESS_MS_DEFAULT = 30_000
#: membership is re-read at most this often
MEMBERSHIP_REFRESH_MS = 2_000


class HeaderCertifier:
    """A :data:`~pilotchain.sdk.HeaderVerifier`: the header's commit certificate must be signed by
    the validators in force at its height."""

    def __init__(self, genesis: Genesis, *, require_certificates: bool = True) -> None:
        self.genesis = genesis
        self.suite = get_suite(genesis.suite)
        self.require_certificates = require_certificates
        #: where validator-set changes are read from (set by the ChainView that uses this)
        self.schedule_source: Callable[[], list[dict[str, Any]]] | None = None
        self._history: list[tuple[int, list[ValidatorInfo]]] = []
        self._lock = threading.Lock()

    def _validators_at(self, height: int) -> list[ValidatorInfo]:
        current = list(self.genesis.validators)
        for effective_height, validators in self._history:
            if effective_height <= height:
                current = validators
        return current

    def refresh(self) -> None:
        if self.schedule_source is None:
            return
        history = []
        for change in self.schedule_source():
            validators = [ValidatorInfo(name=v["name"], org=v["org"], public_key=v["public_key"], power=v["power"])
                          for v in change["validators"]]
            history.append((int(change["effective_height"]), validators))
        with self._lock:
            self._history = sorted(history, key=lambda item: item[0])

    def __call__(self, header: BlockHeader, certificate: bytes | None) -> None:
        if certificate is None:
            if self.require_certificates:
                raise ProofError(f"block {header.height} comes without a commit certificate; a vault acts only "
                                 "on certified state (a development node certifies nothing)")
            return
        try:
            verify_header_commit(header, certificate, self._validators_at(header.height), self.suite)
            return
        except InvalidCertificate:
            pass
        # the validator set may have changed since we last looked: read the schedule once more
        self.refresh()
        try:
            verify_header_commit(header, certificate, self._validators_at(header.height), self.suite)
        except InvalidCertificate as exc:
            raise ProofError(f"block {header.height}'s commit certificate does not verify: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ProvenFact:
    """A state value (None: absent) and the certified block it was proven against."""

    value: Any
    height: int
    block_hash: bytes
    timestamp_ms: int


class _ProvenState:
    """A StateReader over proven reads of one node (for the membership replay)."""

    def __init__(self, view: ChainView) -> None:
        self._view = view
        self.height = -1

    def get(self, key: bytes) -> bytes | None:
        contract, _, inner = key.partition(b"\x00")
        read = self._view.client.read_state(contract.decode(), inner)
        return read.value


class ChainView:
    """Proven reads of the ``dataex`` state and of membership, through ``client``."""

    def __init__(self, client: Client, genesis: Genesis, *, certifier: HeaderCertifier,
                 freshness_ms: int = FRESHNESS_MS_DEFAULT, clock_ms: Callable[[], int] | None = None) -> None:
        self.client = client
        self.genesis = genesis
        self.suite: Suite = get_suite(genesis.suite)
        self.certifier = certifier
        certifier.schedule_source = self.validator_schedule
        self.freshness_ms = freshness_ms
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._state = _ProvenState(self)
        self._authenticator = GovernedAuthenticator(genesis)
        self._membership_read_ms = -MEMBERSHIP_REFRESH_MS
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return self._clock_ms()

    def fact(self, key: bytes, *, fresh: bool = True) -> ProvenFact:
        """The ``dataex`` value at ``key``, proven against a certified header (fresh: recent)."""
        try:
            read = self.client.read_state(CONTRACT, key)
        except ProofError as exc:
            raise ExchangeError("UNPROVEN", f"the node's answer did not prove itself: {exc}") from exc
        except PilotchainError as exc:
            raise ExchangeError("CHAIN_UNAVAILABLE", f"cannot read the chain: {exc}") from exc
        header = read.header
        age_ms = self._clock_ms() - header.timestamp_ms
        if fresh and age_ms > self.freshness_ms:
            raise ExchangeError("STALE_CHAIN", f"the newest certified block ({header.height}) is {age_ms // 1000} s "
                                f"old; a decision cannot be confirmed as current — is the chain making blocks?")
        value = None
        if read.value is not None:
            try:
                value = decode(read.value, Any)
            except CodecError as exc:
                raise ExchangeError("UNPROVEN", f"the proven value does not decode: {exc}") from exc
        return ProvenFact(value=value, height=header.height, block_hash=block_hash(self.suite, header),
                          timestamp_ms=header.timestamp_ms)

    def payload(self, payload_id: str, *, fresh: bool = True) -> ProvenFact:
        return self.fact(payload_key(payload_id), fresh=fresh)

    def decision(self, payload_id: str, org: str) -> ProvenFact:
        return self.fact(decision_key(payload_id, org))

    def org(self, org: str) -> ProvenFact:
        return self.fact(org_key(org), fresh=False)

    def member(self, certificate: bytes) -> tuple[bytes, Caller]:
        """The key and caller of a current member (client, admin or auditor); TxRejected if not."""
        with self._lock:
            now = self._clock_ms()
            if now - self._membership_read_ms >= MEMBERSHIP_REFRESH_MS:
                try:
                    status = self.client.status()
                except PilotchainError as exc:
                    raise ExchangeError("CHAIN_UNAVAILABLE", f"cannot read membership: {exc}") from exc
                self._state.height = status.height
                self._authenticator.bind(self._state)
                self._membership_read_ms = now
            try:
                return self._authenticator.reader(certificate, now)
            except (ProofError, PilotchainError) as exc:
                raise ExchangeError("CHAIN_UNAVAILABLE", f"cannot prove membership now: {exc}") from exc

    def validator_schedule(self) -> list[dict[str, Any]]:
        """Governance's validator-set changes with their keys, as the vault's own node reports
        them (the certificate check then holds each header to the roster it names; an audit
        export carries the proven history instead)."""
        answer = self.client.query("gov", "validators")
        history = answer.get("history", []) if isinstance(answer, dict) else []
        return list(history)
