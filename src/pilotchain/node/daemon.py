"""The validator node process: the I/O shell around the sans-IO node core.

Theory of operation
-------------------
One asyncio event loop per node process. :class:`ConsensusNode` is a
:class:`~pilotchain.node.frontend.NodeFrontend` (the NodeAPI, admission, events and metrics it
shares with the development node) that drives a :class:`~pilotchain.node.core.NodeCore` —
the replica, ledger and mempool glue that the simulator runs too. This module alone touches
sockets (``PeerNetwork``, the gateway), disk (the consensus WAL; the ledger store) and the clock.

Every input to the core (a peer's consensus message, a timer expiry, a proposal built after the
block interval) is followed by :meth:`ConsensusNode._drain`, which executes the core's effects
**in order**:

* ``Persist``      → the consensus WAL is replaced atomically and fsynced *before* anything later
                     (so a vote is durable before it is sent);
* ``Send`` / ``Broadcast`` → queued on the authenticated P2P links;
* ``Committed``    → the core has committed the certified ledger block (with its commit record)
                     and the mempool forgot its transactions; the shell re-checks P2P links
                     against a changed membership, updates metrics and publishes events;
* ``SetTimer``     → the timer task wakes the core at that deadline;
* ``RequestPayload`` → the payload task waits (``block_interval_ms_min`` after the parent, or
                     ``empty_block_delay_ms`` with an empty mempool) and then calls
                     ``NodeCore.propose``, bounded by what this node can build in a third of the
                     propose timeout;
* ``EvidenceFound`` / ``ProposalEvidenceFound`` → logged (``consensus.evidence``: the validator,
                     height, round, the two block hashes), counted in
                     ``pilotchain_consensus_evidence_total`` and listed in ``/v1/status``;
* ``Note``         → logged.

Refused consensus messages: the replica counts every message it refuses or ignores by reason and
by the peer that sent it; ``/metrics`` reads those counters at scrape time
(``pilotchain_consensus_refused_total{reason, peer}``) and the node logs ``consensus.refused``
(peer, reason, count) when a peer is first refused for a reason and then at most once per
(peer, reason) per ``REFUSAL_LOG_INTERVAL_MS`` — warning for a bad message (a signature, a
proposer, a payload), info for ones ignored as stale or too far ahead; retransmitted duplicates
and messages of a height just decided are normal and only counted.

A broken invariant (a certified block the ledger cannot apply) raises
:class:`~pilotchain.node.core.NodeHalted` from the core: the task that fed the input ends and the
process exits with code 3 rather than diverge.

Transactions: the gateway's ``submit_tx`` admits to the mempool (all checks, signature verified
once) and queues the wire bytes for gossip; the gossip task broadcasts batches every
``gossip_interval_ms``. Peers check received batches with one batched signature verification and
admit them without re-gossiping (the validator links are a full mesh).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Final

from prometheus_client import Gauge

from pilotchain.codec import CodecError, decode, encode
from pilotchain.consensus.certificate import has_quorum
from pilotchain.consensus.effects import (
    Broadcast,
    EvidenceFound,
    Persist,
    ProposalEvidenceFound,
    RequestPayload,
    Send,
    SetTimer,
)
from pilotchain.consensus.replica import Replica
from pilotchain.consensus.types import (
    ConsensusWal,
    DuplicateProposalEvidence,
    DuplicateVoteEvidence,
    VoteType,
    decode_message,
)
from pilotchain.identity.errors import IdentityFileError
from pilotchain.identity.files import key_passphrase, load_identity
from pilotchain.ledger.auth import MembershipAuthenticator
from pilotchain.node.api import NodeStatus, Readiness, ReadinessCheck
from pilotchain.node.chain import Ledger, open_governed_ledger
from pilotchain.node.config import NodeConfig, NodeConfigError, load_genesis, load_node_config
from pilotchain.node.core import (
    Committed,
    NodeCore,
    NodeHalted,
    Note,
    ProposalPreview,
    consensus_config_for,
)
from pilotchain.node.frontend import NodeFrontend, wall_clock_ms
from pilotchain.node.mempool import MempoolLimits
from pilotchain.p2p import MessageKind, NetworkConfig, PeerNetwork
from pilotchain.p2p.transport import LOGGER_NAME as P2P_LOGGER

__all__ = ["ConsensusNode", "NodeHalted", "run_node"]

_log = logging.getLogger("pilotchain.node")

#: transactions in one gossip message
GOSSIP_BATCH_TXS_MAX = 2_000
#: a proposer waits at most this long for its block preview to leave before it builds the block
PREVIEW_FLUSH_S = 0.05
#: bytes in one gossip message
GOSSIP_BATCH_BYTES_MAX = 4 * 1024 * 1024
#: transactions waiting to be gossiped (beyond this the oldest are gossiped next round)
GOSSIP_QUEUE_TXS_MAX = 50_000
#: received gossip waiting for admission; beyond this a batch is dropped (and counted): the
#: transactions still reach blocks through the peers that have them
ADMISSION_BACKLOG_TXS_MAX = 50_000
WAL_FILE = "consensus.wal"
#: a proposal may always carry at least this many transactions, however slow building was
PROPOSAL_TXS_MIN = 10
#: the certificate-expiry metric covers everything that expires within this (i.e. everything)
EXPIRY_METRIC_HORIZON_MS: Final = 100 * 365 * 86_400_000
_LOG_LEVELS: Final = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
#: /readyz: a block must have committed here within this long (at least; longer when the
#: chain's round timeouts are long: 10 rounds of propose + prevote + precommit timeouts). A
#: healthy chain commits a block, empty or not, every empty_block_delay_ms (<= 500 ms).
READY_COMMIT_WINDOW_MS_MIN: Final = 30_000
#: P2P log events at most one line per reason per interval is written of (counted in /metrics)
P2P_LIMITED_EVENTS: Final = frozenset({"p2p.refused", "p2p.dropped", "p2p.reconnecting"})
P2P_LOG_INTERVAL_S: Final = 10.0
#: a peer's refused consensus messages are logged at most once per (peer, reason) per interval
REFUSAL_LOG_INTERVAL_MS: Final = 10_000
#: refusals that honest peers cause all the time (retransmitted votes, votes of a height this
#: node just decided): counted in /metrics, never logged
QUIET_REFUSALS: Final = frozenset({
    "ignoring: duplicate vote", "ignoring: duplicate proposal", "ignoring: past height", "ignoring: old round",
})
#: evidence listed in /v1/status (the newest; every one is logged and counted)
STATUS_EVIDENCE_MAX: Final = 16


class ConsensusNode(NodeFrontend):
    """A validator (or observer) node of a consortium: the I/O shell around a
    :class:`~pilotchain.node.core.NodeCore`. Build with :meth:`from_home`."""

    def __init__(self, ledger: Ledger, *, config: NodeConfig, home: Path, identity: Any,
                 clock_ms: Any = wall_clock_ms, gossip_interval_ms: int = 10,
                 empty_block_delay_ms: int | None = None, block_interval_ms_min: int = 200) -> None:
        if not (config.mempool_txs_max >= 1 and config.mempool_bytes_max >= 1024 * 1024):
            raise NodeConfigError("node.json: mempool_txs_max must be at least 1 and mempool_bytes_max at least "
                                  "1 MiB (1048576)")
        super().__init__(ledger, name=config.name, org=config.org, clock_ms=clock_ms,
                         mempool_limits=MempoolLimits(txs_max=config.mempool_txs_max,
                                                      bytes_max=config.mempool_bytes_max,
                                                      txs_per_signer_max=min(10_000, config.mempool_txs_max)))
        self.config = config
        self.home = home
        self.identity = identity
        genesis = ledger.genesis
        # governed parameters: block limits apply from the next block on every node (the ledger
        # reads them from committed state); consensus timeouts are read here, so a change takes
        # effect on each node at its next start (timeouts are local liveness knobs, not safety)
        self.consensus_config = consensus_config_for(ledger)
        params = ledger.params
        self.empty_block_delay_ms = (
            empty_block_delay_ms if empty_block_delay_ms is not None else min(500, params.timeout_propose_ms // 2)
        )
        self.gossip_interval_ms = gossip_interval_ms
        # batching: a proposer waits this long after the parent block (unless a full block of
        # transactions is waiting) so blocks carry batches, not single transactions
        self.block_interval_ms_min = min(block_interval_ms_min, self.empty_block_delay_ms)
        self._wal_path = home / config.data_dir / WAL_FILE
        # consensus names peers by small integers; any authenticated peer (validator or a node
        # that is still syncing before governance adds it) gets one, stable for the process
        self._peer_ids: dict[str, int] = {}
        self._peer_names: dict[int, str] = {}
        self.core = NodeCore(ledger, self.mempool, name=config.name, private_key=identity.private_key,
                             config=self.consensus_config, wal=self._load_wal())
        membership = self._current_membership()
        self._p2p_membership = membership
        peers = {name: address for name, address in config.peers.items()}
        self.p2p = PeerNetwork(
            NetworkConfig(chain_id=genesis.chain_id, node_name=config.name, listen_address=config.p2p_listen,
                          peers=peers, accept_unlisted_peers=True),
            suite=self.suite,
            membership=membership,
            private_key=identity.private_key,
            certificate=encode(identity.certificate),
            clock_ms=clock_ms,
        )
        self._timer_deadline_ms: int | None = None
        self._timer_changed = asyncio.Event()
        self._gossip_out: list[bytes] = []
        self._gossip_wake = asyncio.Event()
        self._pending_payload: RequestPayload | None = None
        self._payload_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._gateway: Any = None
        self._consensus_metrics = _ConsensusMetrics(self.metrics_registry())
        #: moving average of what building a block cost per transaction here (µs)
        self._build_cost_us_per_tx = 0
        #: send block previews when proposing (NodeCore.preview); a preview for the height after
        #: the next, kept until this node commits the parent
        self.previews = True
        self._early_preview: tuple[str, ProposalPreview] | None = None
        # gossip batches decoded and waiting for the admission task (signatures are verified off
        # the event loop, so consensus messages are never queued behind a batch's verification)
        self._admission: collections.deque[list[bytes]] = collections.deque()
        self._admission_backlog = 0
        self._admission_wake = asyncio.Event()
        #: clock_ms of the last block this process committed (readiness); None: none yet
        self._last_commit_ms: int | None = None
        params_timeouts = params.timeout_propose_ms + 2 * params.timeout_vote_ms
        self.ready_commit_window_ms = max(READY_COMMIT_WINDOW_MS_MIN, 10 * params_timeouts)
        self._p2p_log_filter: Any = None
        #: (peer id, reason) -> refusals already logged; when the next summary is due
        self._refusals_logged: dict[tuple[int, str], int] = {}
        self._refusals_log_due_ms = 0
        self.metrics_registry().register(_RefusalCollector(self))

    @property
    def replica(self) -> Replica:
        return self.core.replica

    @property
    def _halted(self) -> str | None:
        return self.core.halted

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_home(cls, home: str | os.PathLike[str], **options: Any) -> ConsensusNode:
        home_path = Path(home).resolve()
        config = load_node_config(home_path)
        genesis = load_genesis(home_path / config.genesis_file)
        try:  # an encrypted key: passphrase from node.json's passphrase_file or the environment
            passphrase = key_passphrase(home_path / config.passphrase_file if config.passphrase_file else None)
            identity = load_identity(home_path / config.identity_file, passphrase=passphrase)
        except IdentityFileError as exc:
            raise NodeConfigError(str(exc)) from exc
        if identity.certificate.subject != config.name:
            raise ValueError(f"{config.identity_file} is the identity of {identity.certificate.subject!r}, "
                             f"but node.json names this node {config.name!r}")
        ledger = open_governed_ledger(home_path / config.data_dir / "ledger", genesis, node_name=config.name)
        return cls(ledger, config=config, home=home_path, identity=identity, **options)

    def _current_membership(self) -> Any:
        """The consortium's membership as of the committed head (genesis + governance)."""
        authenticator = self.ledger.authenticator
        membership = getattr(authenticator, "membership", None)
        return membership if membership is not None else MembershipAuthenticator.from_genesis(self.genesis).membership

    def _load_wal(self) -> ConsensusWal | None:
        try:
            data = self._wal_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return decode(data, ConsensusWal)
        except CodecError as exc:
            # written atomically (rename), so a torn file means the disk lied: refuse to guess
            raise NodeHalted(f"{self._wal_path} is unreadable ({exc}); restore it or the data folder from backup") from exc

    def _persist_wal(self, record: ConsensusWal) -> None:
        data = encode(record)
        tmp = self._wal_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._wal_path)
        dir_fd = os.open(self._wal_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start P2P, the gateway and consensus on the running loop."""
        from pilotchain.gateway.app import create_app
        from pilotchain.gateway.server import serve

        self._timer_changed = asyncio.Event()
        self._gossip_wake = asyncio.Event()
        self._payload_wake = asyncio.Event()
        self._admission_wake = asyncio.Event()
        self._limit_p2p_logs()
        await self.p2p.start()
        host, _, port = self.config.gateway_listen.rpartition(":")
        tls = self.config
        self._gateway = await serve(
            create_app(self), host, int(port),
            certfile=str(self.home / tls.tls_cert_file) if tls.tls_cert_file else None,
            keyfile=str(self.home / tls.tls_key_file) if tls.tls_key_file else None,
        )
        _log.info("node started", extra={"event": "node.started", "height": self.ledger.height,
                                         "gateway": self._gateway.url, "p2p": self.config.p2p_listen})
        self._input(self.core.start, self.clock_ms())
        for name, coroutine in (("inbound", self._inbound_loop()), ("timer", self._timer_loop()),
                                ("gossip", self._gossip_loop()), ("payload", self._payload_loop()),
                                ("housekeeping", self._housekeeping_loop()),
                                ("admission", self._admission_loop())):
            self._tasks.append(asyncio.create_task(coroutine, name=f"{self.name}-{name}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._gateway is not None:
            await self._gateway.close()
            self._gateway = None
        await self.p2p.close()
        if self._p2p_log_filter is not None:
            logging.getLogger(P2P_LOGGER).removeFilter(self._p2p_log_filter)
            self._p2p_log_filter = None
        self._end_subscriptions()

    def _limit_p2p_logs(self) -> None:
        """At most one P2P refusal/drop/reconnect line per reason per interval (with the count
        of those not written); every refusal counted by reason in /metrics."""
        from pilotchain.gateway import RateLimitFilter

        if self._p2p_log_filter is not None:
            return
        metrics = self._consensus_metrics
        self._p2p_log_filter = RateLimitFilter(
            P2P_LIMITED_EVENTS, P2P_LOG_INTERVAL_S,
            on_record=lambda event, code: metrics.p2p_refused.labels(event=event, reason=code).inc(),
            on_suppressed=metrics.p2p_log_suppressed.inc,
        )
        logging.getLogger(P2P_LOGGER).addFilter(self._p2p_log_filter)

    def wait_failed(self) -> asyncio.Future[Any]:
        """Completes when a node task ends unexpectedly (a halt or a crash)."""
        return asyncio.ensure_future(asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED))

    # ------------------------------------------------------------------ NodeAPI overrides

    def status(self) -> NodeStatus:
        replica = self.replica
        return self._status(
            validators=tuple(v.name for v in self.ledger.validators_at(self.ledger.height + 1)),
            peers={name: status.connected for name, status in self.p2p.peers().items()},
            consensus={
                "engine": "tendermint",
                "height": replica.height,
                "round": replica.round,
                "step": replica.step.name.lower(),
                "validator": replica.is_validator,
                "evidence": len(replica.evidence),
                "proposal_evidence": len(replica.proposal_evidence),
                "evidence_recent": self.recent_evidence(),
                "drops": dict(replica.drops),
                "halted": self._halted,
            },
            syncing=replica.height > self.ledger.height + 1,
        )

    def healthy(self) -> tuple[bool, str]:
        if self._halted:
            return False, f"halted: {self._halted}"
        for task in self._tasks:
            if task.done():
                return False, f"task {task.get_name()} stopped; see the node log"
        return True, "ok"

    def ready(self) -> Readiness:
        """In consensus: running (not halted, every task alive); for a validator, the validators
        it is connected to (itself included) hold a quorum of the voting power — for an observer,
        at least one validator is connected; a block committed here within
        ``ready_commit_window_ms`` (a healthy chain commits, empty blocks included, every
        ``empty_block_delay_ms``; rounds that go on without commits are not progress); and not
        syncing (the replica is not ahead of the ledger by more than the height in progress)."""
        ok, reason = self.healthy()
        checks = [ReadinessCheck("running", ok, reason)]
        validators = self.ledger.validators_at(self.ledger.height + 1)
        connected = {name for name, status in self.p2p.peers().items() if status.connected}
        total = sum(v.power for v in validators)
        reachable = [v for v in validators if v.name == self.name or v.name in connected]
        power = sum(v.power for v in reachable)
        peers = f"{len(connected)} peers connected; validators reachable (self included): {len(reachable)} of {len(validators)}"
        if any(v.name == self.name for v in validators):
            checks.append(ReadinessCheck("quorum_peers", has_quorum(power, total),
                                         f"{peers}, voting power {power} of {total} (a quorum needs > 2/3)"))
        else:
            checks.append(ReadinessCheck("quorum_peers", bool(reachable), f"{peers} (an observer needs one)"))
        now_ms = self.clock_ms()
        last = self._last_commit_ms
        if last is None:
            checks.append(ReadinessCheck("recent_commit", False,
                                         f"no block committed since the node started (head {self.ledger.height})"))
        else:
            age_ms = now_ms - last
            checks.append(ReadinessCheck(
                "recent_commit", age_ms <= self.ready_commit_window_ms,
                f"last block committed {age_ms} ms ago (height {self.ledger.height}); the window is "
                f"{self.ready_commit_window_ms} ms"))
        replica_height = self.replica.height
        syncing = replica_height > self.ledger.height + 1
        checks.append(ReadinessCheck(
            "in_sync", not syncing,
            f"consensus at height {replica_height}, ledger at {self.ledger.height}"
            + ("; catching up" if syncing else "")))
        return Readiness(tuple(checks))

    def _on_admitted(self, raws: list[bytes]) -> None:
        room = GOSSIP_QUEUE_TXS_MAX - len(self._gossip_out)
        if raws and room > 0:
            self._gossip_out.extend(raws[:room])
            self._gossip_wake.set()
        self._payload_wake.set()

    # ------------------------------------------------------------------ effects

    def _input(self, action: Any, *args: Any) -> None:
        """Run one core input and execute its effects in order. A halt (a broken invariant) is
        logged by the core's note and raised: the task that fed the input ends, and with it the
        node process (exit code 3)."""
        if self._halted:
            return
        action(*args)
        self._drain()

    def _drain(self) -> None:
        effects = self.core.drain()
        while True:
            started_ns = time.perf_counter_ns()
            effect = next(effects, None)  # a Committed is applied to the ledger inside this call
            if effect is None:
                break
            if isinstance(effect, Persist):
                self._persist_wal(effect.record)
            elif isinstance(effect, Send):
                name = self._peer_names.get(effect.to)
                if name is not None:
                    self.p2p.send(name, MessageKind.CONSENSUS, encode(effect.message))
            elif isinstance(effect, Broadcast):
                self.p2p.broadcast(MessageKind.CONSENSUS, encode(effect.message))
            elif isinstance(effect, Committed):
                commit_ms = (time.perf_counter_ns() - started_ns) // 1_000_000
                if commit_ms >= SLOW_PAUSE_MS:
                    _log.warning("slow block commit", extra={"event": "node.slow", "cause": "commit", "ms": commit_ms,
                                                             "height": effect.header.height, "txs": len(effect.block.txs)})
                self._after_commit(effect)
            elif isinstance(effect, SetTimer):
                self._timer_deadline_ms = effect.deadline_ms
                self._timer_changed.set()
            elif isinstance(effect, RequestPayload):
                self._pending_payload = effect
                self._payload_wake.set()
            elif isinstance(effect, (EvidenceFound, ProposalEvidenceFound)):
                self._on_evidence(effect.evidence)
            elif isinstance(effect, Note):
                _log.log(_LOG_LEVELS.get(effect.level, logging.WARNING), effect.message,
                         extra={"event": effect.event, **effect.fields})
        self._consensus_metrics.round.set(self.replica.round)

    # ------------------------------------------------------------------ byzantine peers

    def _validator_name(self, height: int, index: int) -> str:
        """The name of validator ``index`` of ``height``'s set (its index if there is none)."""
        validators = self.ledger.validators_at(max(1, min(height, self.ledger.height + 1)))
        return validators[index].name if 0 <= index < len(validators) else f"#{index}"

    def describe_evidence(self, evidence: DuplicateVoteEvidence | DuplicateProposalEvidence) -> dict[str, Any]:
        """One piece of equivocation evidence as the log and /v1/status show it."""
        if isinstance(evidence, DuplicateVoteEvidence):
            vote = evidence.vote_a
            kind = "prevote" if vote.vote_type == VoteType.PREVOTE else "precommit"
            height, round_, index = vote.height, vote.round, vote.validator_index
            hashes = (vote.block_hash, evidence.vote_b.block_hash)
        else:
            proposal = evidence.proposal_a
            kind, height, round_, index = "proposal", proposal.height, proposal.round, proposal.proposer_index
            hashes = (proposal.block_hash, evidence.proposal_b.block_hash)
        return {"kind": kind, "validator": self._validator_name(height, index), "height": height, "round": round_,
                "block_a": hashes[0].hex()[:16] or "nil", "block_b": hashes[1].hex()[:16] or "nil"}

    def recent_evidence(self) -> list[dict[str, Any]]:
        replica = self.replica
        found: list[DuplicateVoteEvidence | DuplicateProposalEvidence] = [*replica.evidence, *replica.proposal_evidence]
        found.sort(key=lambda e: (e.vote_a.height, e.vote_a.round) if isinstance(e, DuplicateVoteEvidence)
                   else (e.proposal_a.height, e.proposal_a.round))
        return [self.describe_evidence(e) for e in found[-STATUS_EVIDENCE_MAX:]]

    def _on_evidence(self, evidence: DuplicateVoteEvidence | DuplicateProposalEvidence) -> None:
        fields = self.describe_evidence(evidence)
        self._consensus_metrics.evidence.labels(kind=fields["kind"], validator=fields["validator"]).inc()
        _log.warning("equivocation evidence: validator %s signed two %ss at height %d round %d", fields["validator"],
                     fields["kind"], fields["height"], fields["round"], extra={"event": "consensus.evidence", **fields})

    def _log_refusals(self) -> None:
        """Log what the replica refused from which peer (see the module docstring): O(1) per
        input unless a new (peer, reason) appeared or the next summary is due."""
        by_peer = self.replica.drops_by_peer
        now_ms = self.clock_ms()
        due = now_ms >= self._refusals_log_due_ms
        if not due and len(by_peer) == len(self._refusals_logged):
            return
        if due:
            self._refusals_log_due_ms = now_ms + REFUSAL_LOG_INTERVAL_MS
        for (peer_id, reason), count in by_peer.items():
            logged = self._refusals_logged.get((peer_id, reason))
            if (logged is not None and not due) or count <= (logged or 0):
                continue  # between summaries only a new (peer, reason) is logged
            logged = logged or 0
            self._refusals_logged[(peer_id, reason)] = count
            if reason in QUIET_REFUSALS:
                continue
            peer = self._peer_names.get(peer_id, "(other peers)")
            level = logging.WARNING if reason.startswith("bad ") else logging.INFO
            _log.log(level, "refused %d consensus message(s) from %s: %s", count - logged, peer, reason,
                     extra={"event": "consensus.refused", "peer": peer, "reason": reason, "count": count - logged,
                            "total": count})

    def _after_commit(self, committed: Committed) -> None:
        block, digest, header = committed.block, committed.digest, committed.header
        self._last_commit_ms = self.clock_ms()
        membership = self._current_membership()
        if membership is not self._p2p_membership:
            # governance changed the consortium (an org added or removed, a revocation, a CA
            # rotation): new links are checked against it and existing ones re-checked now
            self._p2p_membership = membership
            dropped = self.p2p.set_membership(membership)
            _log.info("membership changed", extra={"event": "membership.changed", "dropped": ",".join(dropped)})
        self._metrics.blocks.inc()
        self._metrics.txs_committed.inc(len(block.txs))
        self._metrics.height.set(header.height)
        self._metrics.mempool.set(len(self.mempool))
        if header.height % 100 == 0 or block.txs:
            _log.info("committed", extra={"event": "block.committed", "height": header.height,
                                          "txs": len(block.txs), "round": header.round})
        self._publish_block(block, digest)
        early = self._early_preview
        if early is not None:
            self._early_preview = None
            if early[1].height == header.height + 1:
                asyncio.get_running_loop().call_soon(self._run_preview, *early)

    # ------------------------------------------------------------------ loops

    async def _inbound_loop(self) -> None:
        while True:
            message = await self.p2p.receive()
            if message.kind == MessageKind.CONSENSUS:
                sender = self._peer_id(message.peer)
                try:
                    decoded = decode_message(message.payload)
                except CodecError:
                    self._consensus_metrics.bad_messages.inc()
                    continue
                self._input(self.core.receive, decoded, sender, self.clock_ms())
                self._log_refusals()
            elif message.kind == MessageKind.MEMPOOL:
                self._admit_gossip(message.peer, message.payload)
            elif message.kind == MessageKind.PREVIEW:
                self._on_preview(message.peer, message.payload)

    def _on_preview(self, peer: str, payload: bytes) -> None:
        """A proposer's next block: executed now (the proposal will find it done), or kept until
        this node has committed the height before it."""
        try:
            preview = decode(payload, ProposalPreview)
        except CodecError:
            self._consensus_metrics.bad_messages.inc()
            return
        if preview.height == self.ledger.height + 2:  # this node has not committed the parent yet
            self._early_preview = (peer, preview)
            return
        self._early_preview = None
        self._run_preview(peer, preview)

    def _run_preview(self, peer: str, preview: ProposalPreview) -> None:
        if self._halted:
            return
        started_ms = self.clock_ms()
        if self.core.preview(peer, preview):
            self._consensus_metrics.previews.inc()
            # the time spent executing the proposer's own block is not the proposer's delay: the
            # pending timeout moves by it (or the proposal, queued behind the execution, would
            # meet an expired propose timeout; a proposer that never proposes costs one execution)
            if self._timer_deadline_ms is not None:
                self._timer_deadline_ms += self.clock_ms() - started_ms
                self._timer_changed.set()
        self._drain()

    def _peer_id(self, name: str) -> int:
        peer_id = self._peer_ids.get(name)
        if peer_id is None:
            peer_id = self._peer_ids[name] = len(self._peer_ids)
            self._peer_names[peer_id] = name
        return peer_id

    def _admit_gossip(self, peer: str, payload: bytes) -> None:
        try:
            raws = decode(payload, list[bytes])
        except CodecError:
            self._consensus_metrics.bad_messages.inc()
            return
        if len(raws) > GOSSIP_BATCH_TXS_MAX:
            self._consensus_metrics.bad_messages.inc()
            return
        if self._admission_backlog + len(raws) > ADMISSION_BACKLOG_TXS_MAX:
            self._consensus_metrics.gossip_dropped.inc(len(raws))
            return
        self._admission.append(raws)
        self._admission_backlog += len(raws)
        self._admission_wake.set()

    async def _admission_loop(self) -> None:
        """Admit received gossip batches in arrival order, one at a time."""
        while True:
            await self._admission_wake.wait()
            self._admission_wake.clear()
            while self._admission:
                raws = self._admission.popleft()
                self._admission_backlog -= len(raws)
                # duplicates (the same transaction from several peers) cost a dictionary lookup:
                # the signature cache and the mempool's DUPLICATE check catch them
                await self._admit_many(raws, self.clock_ms())
                self._payload_wake.set()

    async def _timer_loop(self) -> None:
        while True:
            deadline = self._timer_deadline_ms
            wait_s = 1.0 if deadline is None else max(0.0, (deadline - self.clock_ms()) / 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_changed.wait(), wait_s)
            self._timer_changed.clear()
            deadline = self._timer_deadline_ms
            now_ms = self.clock_ms()
            if deadline is not None and now_ms >= deadline:
                self._timer_deadline_ms = None
                self._input(self.core.tick, now_ms)

    async def _payload_loop(self) -> None:
        """Answer RequestPayload: once block_interval_ms_min has passed since the parent block
        (at once when a full block is waiting); with an empty mempool, after empty_block_delay_ms."""
        while True:
            await self._payload_wake.wait()
            self._payload_wake.clear()
            request = self._pending_payload
            if request is None:
                continue
            parent_ms = self.replica.chain_tip.timestamp_ms
            full = self.ledger.params.block_txs_max
            while len(self.mempool) < full:
                remaining = parent_ms + self.block_interval_ms_min - self.clock_ms()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._payload_wake.wait(), remaining / 1000)
                self._payload_wake.clear()
            if not len(self.mempool):
                requested_ms = self.clock_ms()
                with contextlib.suppress(TimeoutError):
                    while not len(self.mempool):
                        remaining = self.empty_block_delay_ms - (self.clock_ms() - requested_ms)
                        if remaining <= 0:
                            break
                        await asyncio.wait_for(self._payload_wake.wait(), remaining / 1000)
                        self._payload_wake.clear()
            if self._pending_payload is not request or self.replica.height != request.height:
                continue
            self._pending_payload = None
            await self._propose(request)

    async def _propose(self, request: RequestPayload) -> None:
        txs_max = self._proposal_txs_max(self.ledger.params.block_txs_max)
        plan = self.core.plan_proposal(request, self.clock_ms(), txs_max)
        if plan is None:
            self._drain()
            return
        if plan.txs and self.previews:
            # the validators execute the block while this node builds it (NodeCore.preview):
            # building blocks the loop, so the preview must have left before it starts
            self.p2p.broadcast(MessageKind.PREVIEW, encode(plan))
            deadline = time.monotonic() + PREVIEW_FLUSH_S
            while self.p2p.unsent_bytes() and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
        started = time.perf_counter_ns()
        block = self.core.propose_plan(plan)
        if block is not None and block.txs:
            cost_us = (time.perf_counter_ns() - started) // 1000 // len(block.txs)
            self._build_cost_us_per_tx = (3 * self._build_cost_us_per_tx + cost_us) // 4 or cost_us
        self._drain()

    def _proposal_txs_max(self, block_txs_max: int) -> int:
        """At most what this node can build (and, by the same work, validators can check) within a
        third of the propose timeout: an overloaded proposer must not outgrow its round, or the
        round changes and throughput collapses (measured: 944 -> 520 tx/s at 1,300 offered). With
        previews, two thirds: the validators execute the block while it is built and move their
        propose timeout by that time (``_run_preview``), so the build (measured while they
        execute beside it) may take longer."""
        cost_us = self._build_cost_us_per_tx
        if cost_us <= 0:
            return block_txs_max
        budget_us = self.consensus_config.timeout_propose_ms * 1000 * (2 if self.previews else 1) // 3
        return max(PROPOSAL_TXS_MIN, min(block_txs_max, budget_us // cost_us))

    async def _gossip_loop(self) -> None:
        while True:
            await self._gossip_wake.wait()
            await asyncio.sleep(self.gossip_interval_ms / 1000)
            self._gossip_wake.clear()
            while self._gossip_out:
                count = size = 0
                for raw in self._gossip_out[:GOSSIP_BATCH_TXS_MAX]:
                    if count and size + len(raw) > GOSSIP_BATCH_BYTES_MAX:
                        break
                    count += 1
                    size += len(raw)
                batch = self._gossip_out[:count]
                del self._gossip_out[:count]
                self.p2p.broadcast(MessageKind.MEMPOOL, encode(batch))

    def check_expiry(self, now_ms: int, since_ms: int | None) -> list[Any]:
        """Log (once per threshold: 30, 7, 1 days, expired) the org CAs and this node's identity
        that expire soon; returns the warnings."""
        from pilotchain.identity.expiry import WARNING_DAYS, expiry_warnings

        horizon_ms = max(WARNING_DAYS) * 86_400_000
        membership = self._current_membership()
        # every org CA, retired CA cut-over and this node's identity, for the alerting rules
        # (pilotchain_certificate_expiry_timestamp_seconds): not only the ones expiring soon
        every = membership.expiring(now_ms, EXPIRY_METRIC_HORIZON_MS, [self.identity.certificate])
        self._consensus_metrics.certificate_expiry.clear()
        for notice in every:
            self._consensus_metrics.certificate_expiry.labels(
                kind=str(notice.kind), org=notice.org_id, subject=notice.subject,
            ).set(notice.not_after_ms / 1000)
        notices = [notice for notice in every if notice.not_after_ms <= now_ms + horizon_ms]
        warnings = list(expiry_warnings(notices, now_ms=now_ms, since_ms=since_ms))
        for warning in warnings:
            level = logging.WARNING if warning.severity == "warning" else logging.ERROR
            _log.log(level, warning.message, extra={
                "event": "identity.expiring", "kind": str(warning.kind), "org": warning.org_id,
                "subject": warning.subject, "serial": warning.serial, "not_after_ms": warning.not_after_ms,
                "days": warning.threshold_days, "severity": warning.severity,
            })
        return warnings

    async def _housekeeping_loop(self) -> None:
        checked_ms: int | None = None
        while True:
            now_ms = self.clock_ms()
            self.check_expiry(now_ms, checked_ms)
            checked_ms = now_ms
            await asyncio.sleep(5.0)
            for tx_id in self.mempool.prune(self.clock_ms()):
                self._metrics.txs_refused.labels(code="EXPIRED").inc()
                del tx_id
            connected = sum(1 for status in self.p2p.peers().values() if status.connected)
            self._consensus_metrics.peers.set(connected)
            self._metrics.mempool.set(len(self.mempool))


class _ConsensusMetrics:
    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter

        self.round = Gauge("pilotchain_consensus_round", "Current consensus round", registry=registry)
        self.peers = Gauge("pilotchain_p2p_peers_connected", "Authenticated peer links up", registry=registry)
        self.bad_messages = Counter("pilotchain_p2p_bad_messages", "Peer messages that did not decode", registry=registry)
        self.certificate_expiry = Gauge(
            "pilotchain_certificate_expiry_timestamp_seconds",
            "When each member org CA (and retired CA cut-over) and this node's identity expire (Unix time)",
            ["kind", "org", "subject"], registry=registry)
        self.previews = Counter("pilotchain_consensus_previews",
                                "Block previews executed ahead of their proposal (NodeCore.preview)", registry=registry)
        self.gossip_dropped = Counter("pilotchain_mempool_gossip_dropped",
                                      "Gossiped transactions dropped because admission was this far behind",
                                      registry=registry)
        self.p2p_refused = Counter("pilotchain_p2p_refused",
                                   "P2P connections refused or dropped and redials, by log event and reason",
                                   ["event", "reason"], registry=registry)
        self.p2p_log_suppressed = Counter("pilotchain_p2p_log_suppressed",
                                          "P2P log lines not written (one per reason per interval is)",
                                          registry=registry)
        self.evidence = Counter("pilotchain_consensus_evidence",
                                "Equivocation evidence found: two signed votes (prevote, precommit) or proposals "
                                "for one height and round, by kind and validator", ["kind", "validator"],
                                registry=registry)


class _RefusalCollector:
    """``pilotchain_consensus_refused_total{reason, peer}``: the replica's counters of refused
    and ignored consensus inputs, read at scrape time (nothing is counted twice on the hot path).
    ``peer`` is the sending peer's name, empty for a local input."""

    def __init__(self, node: ConsensusNode) -> None:
        self._node = node

    def describe(self) -> list[Any]:
        return []  # collected only when scraped (the replica may not exist yet at registration)

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        node = self._node
        family = CounterMetricFamily(
            "pilotchain_consensus_refused",
            "Consensus messages (and local inputs) the replica refused or ignored, by reason and sending peer",
            labels=["reason", "peer"])
        by_reason = collections.Counter(node.replica.drops)
        for (peer_id, reason), count in sorted(node.replica.drops_by_peer.items()):
            family.add_metric([reason, node._peer_names.get(peer_id, "(other peers)")], count)
            by_reason[reason] -= count
        for reason, count in sorted(by_reason.items()):
            if count > 0:
                family.add_metric([reason, ""], count)
        yield family


# ---------------------------------------------------------------------- process entry point


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every `extra` field."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and not key.startswith("_"):
                document[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLinesFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


#: Cyclic-GC thresholds of a node process. A node allocates several objects per transaction that
#: reference counting frees (few cycles), yet with the default thresholds (700, 10, 10) the
#: collector ran >1,000 times per 60,000 transactions over a heap of caches and took ~10 % of
#: the time (measured with gc.callbacks on the ledger path); with these, ~1 %.
NODE_GC_THRESHOLDS: Final = (50_000, 20, 100)


#: a cyclic-GC pause or a block commit at least this long is logged (``node.slow``): latency
#: spikes in a long run can then be told apart (collector, storage, or neither)
SLOW_PAUSE_MS: Final = 100


def tune_gc(*, log_pauses: bool = False) -> None:
    """Freeze what start-up allocated (never scanned again) and collect less often; with
    ``log_pauses`` (a node process), log collector pauses of SLOW_PAUSE_MS or more."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*NODE_GC_THRESHOLDS)
    if log_pauses and _log_gc_pause not in gc.callbacks:
        gc.callbacks.append(_log_gc_pause)


_gc_started_ns = 0


def _log_gc_pause(phase: str, info: dict[str, int]) -> None:
    global _gc_started_ns
    if phase == "start":
        _gc_started_ns = time.perf_counter_ns()
        return
    pause_ms = (time.perf_counter_ns() - _gc_started_ns) // 1_000_000
    if pause_ms >= SLOW_PAUSE_MS:
        _log.warning("cyclic GC paused the node", extra={
            "event": "node.slow", "cause": "gc", "ms": pause_ms,
            "generation": info.get("generation"), "collected": info.get("collected")})


async def _run(home: Path, options: dict[str, Any], node_class: type[ConsensusNode] = ConsensusNode) -> int:
    node = node_class.from_home(home, **options)
    tune_gc(log_pauses=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # An allocation that fails outside any request (a P2P handshake, a reconnect, a callback)
    # kills only the task it happened in: the node would run on without links, unable to catch
    # up. It stops instead (exit code 3; its WAL and store are durable at every step), for its
    # supervisor to restart it — as a failed node task does.
    out_of_memory = asyncio.Event()

    def on_loop_error(loop_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), MemoryError):
            out_of_memory.set()
            return
        loop_.default_exception_handler(context)

    loop.set_exception_handler(on_loop_error)
    code = 0
    try:
        await node.start()
        stopper = asyncio.ensure_future(stop.wait())
        failed = node.wait_failed()
        exhausted = asyncio.ensure_future(out_of_memory.wait())
        done, _ = await asyncio.wait({stopper, failed, exhausted}, return_when=asyncio.FIRST_COMPLETED)
        if failed in done:
            for task in node._tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    _log.critical("node task %s failed: %s", task.get_name(), exc, exc_info=exc,
                                  extra={"event": "node.failed"})
            code = 3
        elif exhausted in done:
            with contextlib.suppress(MemoryError):
                _log.critical("out of memory outside any request: the node stops (restart it; its state is "
                              "durable)", extra={"event": "node.failed", "cause": "memory"})
            code = 3
        stopper.cancel()
        failed.cancel()
        exhausted.cancel()
    finally:
        _log.info("node stopping", extra={"event": "node.stopping"})
        await node.close()
        _log.info("node stopped", extra={"event": "node.stopped", "height": node.ledger.height})
        # collections while the process unwinds are not pauses of a running node
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(_log_gc_pause)
    return code


#: when the hard limit is unlimited, the soft file descriptor limit is raised to this
FD_LIMIT_UNLIMITED_TARGET: Final = 1_048_576


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (a node holds P2P links, the store's files,
    the WAL and up to its gateway's connection bound: a quarter of this). The (soft, hard) after."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_LIMIT_UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. macOS caps the soft limit lower
            _log.warning("cannot raise the file descriptor limit: %s", exc,
                         extra={"event": "node.fd_limit", "soft": soft, "hard": hard})
    return int(soft), int(hard)


def run_node(home: str | os.PathLike[str], options: Sequence[tuple[str, Any]] = (), *,
             node_class: type[ConsensusNode] = ConsensusNode) -> int:
    """Run the node in ``home`` in the foreground until SIGTERM/SIGINT; returns the exit code.
    ``node_class``: a subclass to run instead (the tests' byzantine node runs this way)."""
    home_path = Path(home)
    config = load_node_config(home_path)
    configure_logging(os.environ.get("PILOTCHAIN_LOG_LEVEL", config.log_level))
    soft, hard = raise_fd_limit()
    _log.info("file descriptor limit", extra={"event": "node.fd_limit", "soft": soft, "hard": hard})
    return run_to_exit(_run(home_path, dict(options), node_class))


def run_to_exit(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on a new event loop and return its exit code, even when closing the loop fails
    afterwards (as at a memory limit, where the executor's shutdown cannot start its thread)."""
    runner = asyncio.Runner()
    try:
        code = runner.run(main)
    except BaseException:
        with contextlib.suppress(RuntimeError, MemoryError):
            runner.close()
        raise
    try:
        runner.close()
    except (RuntimeError, MemoryError) as exc:
        # closing the loop joins its executor, which needs a thread: at a memory limit none can
        # start. The node has already stopped and its state is durable; its exit code stands.
        with contextlib.suppress(MemoryError):
            _log.warning("the event loop did not close cleanly: %s", exc, extra={"event": "node.close_failed"})
    return code
