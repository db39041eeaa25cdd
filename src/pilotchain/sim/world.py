"""The simulated world: network, clocks, disks, clients and faults around real replicas.

Theory of operation
-------------------
One :class:`World` runs ``n`` unmodified :class:`~pilotchain.consensus.Replica` instances in one
process. Everything nondeterministic lives here and comes from one ``random.Random(seed)``:
message delay, loss, duplication and reordering, partitions, crashes (with a torn last WAL
write), clock offset and rate drift, client submissions and byzantine behaviour. Time is a
virtual integer millisecond counter advanced by a heap of events, so a seed replays exactly.

The shell contract is honoured exactly as a real node would: effects are executed in order,
a ``Persist`` is "durable" before any later ``Send``; a crash can strike *during* a Persist (the
write is torn, i.e. lost, and nothing after it happens) -- which is the only way a torn write
can occur if the disk honours fsync.

Every honest commit is checked as it happens (:meth:`World._check_commit`): agreement per height,
hash links, certificate validity against the validator set of that height, and that every
transaction in the payload was really submitted by a simulated client.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.consensus import (
    BLOCK_HASH_NIL,
    Block,
    BlockHeader,
    BlockResponse,
    Broadcast,
    ChainTip,
    Commit,
    CommitCertificate,
    CommitSignature,
    CommittedBlock,
    ConsensusConfig,
    ConsensusMessage,
    ConsensusWal,
    EvidenceFound,
    InvalidCertificate,
    Persist,
    Proposal,
    Replica,
    RequestPayload,
    Send,
    SetTimer,
    Validator,
    ValidatorSet,
    Vote,
    compute_block_hash,
    decode_message,
    get_proposal_signing_bytes,
    get_vote_signing_bytes,
    verify_commit_certificate,
)
from pilotchain.crypto import PrivateKey, PublicKey, Suite

__all__ = ["FAULTS", "CachingSuite", "SimParameters", "SimPayload", "World"]

#: Every fault the simulator can inject (``--faults all``).
FAULTS = (
    "crash",
    "torn-write",
    "loss",
    "duplicate",
    "reorder",
    "delay",
    "partition",
    "asymmetric-partition",
    "isolate-leader",
    "clock-drift",
    "byzantine",
    "reconfigure",
    "weighted-power",
)
BYZANTINE_BEHAVIOURS = (
    "silent",
    "equivocate",
    "double-vote",
    "bad-signature",
    "forge-certificate",
    "withhold",
    "replay",
    "lock-breaker",
    "lock-attack",
)
#: The lock attack is the one that needs luck with timing; give it more seeds.
BYZANTINE_WEIGHTS = {"lock-attack": 4}
TXS_PER_BLOCK_MAX = 32
TX_BYTES = 16
MEMPOOL_TXS_MAX = 512
CLIENT_TXS_MAX = 2000
REPLAY_BUFFER_MAX = 64


class SimPayload(Record, frozen=True):
    """The simulated application's block payload."""

    txs: tuple[bytes, ...]
    validator_set: ValidatorSet | None


class CachingSuite(Suite):
    """A suite whose ``verify`` is memoised: every node verifies the same vote, so the
    simulator checks each distinct (key, message, signature) once. Verification is a pure
    function, so this changes no outcome, only the run time."""

    VERIFY_CACHE_MAX = 200_000

    def __init__(self, inner: Suite) -> None:
        self.inner = inner
        self.name = inner.name
        self.hash_name = inner.hash_name
        self.digest_size = inner.digest_size
        self.aead_key_size = inner.aead_key_size
        self.aead_nonce_size = inner.aead_nonce_size
        self._cache: dict[tuple[bytes, bytes, bytes], bool] = {}

    def hash(self, data: bytes) -> bytes:
        return self.inner.hash(data)

    def verify(self, public_key_der: bytes, message: bytes, signature: bytes) -> bool:
        key = (public_key_der, message, signature)
        result = self._cache.get(key)
        if result is None:
            if len(self._cache) >= self.VERIFY_CACHE_MAX:
                self._cache.clear()
            result = self._cache[key] = self.inner.verify(public_key_der, message, signature)
        return result

    def verify_batch(self, items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
        return [self.verify(*item) for item in items]

    def generate_private_key(self) -> PrivateKey:
        return self.inner.generate_private_key()

    def private_key_from_seed(self, seed: bytes) -> PrivateKey:
        return self.inner.private_key_from_seed(seed)

    def load_private_key_pem(self, pem: bytes) -> PrivateKey:
        return self.inner.load_private_key_pem(pem)

    def _load_public_key_der(self, der: bytes) -> PublicKey:
        return self.inner.public_key(der)

    def load_public_key_pem(self, pem: bytes) -> PublicKey:
        return self.inner.load_public_key_pem(pem)

    def aead_encrypt(self, key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        return self.inner.aead_encrypt(key, nonce, plaintext, associated_data)

    def aead_decrypt(self, key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes = b"") -> bytes:
        return self.inner.aead_decrypt(key, nonce, ciphertext, associated_data)


@dataclass
class SimParameters:
    """Per-seed knobs, all drawn from the seed's generator (see :meth:`World.draw`)."""

    nodes: int
    faults: frozenset[str]
    safety_phase_ms: int = 10_000
    liveness_bound_ms: int = 60_000
    liveness_heights: int = 3
    events_max: int = 3_000_000
    #: fixed heal time (scripted scenarios); None draws it from the seed
    heal_at_ms: int | None = None


@dataclass
class Disk:
    """What survives a crash: the WAL record and the committed chain."""

    wal: bytes | None = None
    blocks: list[tuple[Block, bytes, CommitCertificate]] = field(default_factory=list)
    next_validator_set: ValidatorSet | None = None
    committed_txs: set[bytes] = field(default_factory=set)
    applied_updates: set[bytes] = field(default_factory=set)


class SimApplication:
    """The node's side of the Application protocol, backed by the node's simulated disk."""

    def __init__(self, world: World, disk: Disk) -> None:
        self.world = world
        self.disk = disk

    def validate_payload(self, header: BlockHeader, payload: bytes) -> bool:
        height = header.height
        if height != len(self.disk.blocks) + 1:
            self.world.safety_violations.append(
                f"validate_payload({height}) called while the node's ledger is at {len(self.disk.blocks)}: "
                "the replica must not judge a block before the shell has run the parent's Commit"
            )
        try:
            decoded = decode(payload, SimPayload)
        except CodecError:
            return False
        if len(decoded.txs) > TXS_PER_BLOCK_MAX or len(set(decoded.txs)) != len(decoded.txs):
            return False
        for tx in decoded.txs:
            if not self.world.is_well_formed_tx(tx) or tx in self.disk.committed_txs:
                return False
        return decoded.validator_set is None or encode(decoded.validator_set) in self.world.authorised_updates

    def get_validator_set_update(self, height: int, payload: bytes) -> ValidatorSet | None:
        return decode(payload, SimPayload).validator_set

    def load_commit(self, height: int) -> tuple[Block, CommitCertificate] | None:
        if 1 <= height <= len(self.disk.blocks):
            block, _, certificate = self.disk.blocks[height - 1]
            return block, certificate
        return None


class Node:
    def __init__(self, world: World, node_id: int, private_key: PrivateKey) -> None:
        self.world = world
        self.node_id = node_id
        self.private_key = private_key
        self.public_key = private_key.public_key().to_der()
        self.disk = Disk()
        self.application = SimApplication(world, self.disk)
        self.replica: Replica | None = None
        self.timer_generation = 0
        self.incarnation = 0  # bumped at every start, so events of a crashed run are ignored
        self.clock_offset_ms = 0
        self.clock_rate_ppm = 0
        self.crash_on_next_persist = False
        self.mempool: dict[bytes, None] = {}
        self.byzantine: str | None = None
        self.replay_buffer: list[bytes] = []
        self.attacks: dict[int, tuple[int, int]] = {}  # lock-attack: height -> (round, target)

    def local_time(self, global_ms: int) -> int:
        return global_ms + self.clock_offset_ms + (global_ms * self.clock_rate_ppm) // 1_000_000

    def global_time(self, local_ms: int) -> int:
        estimate = (local_ms - self.clock_offset_ms) * 1_000_000 // (1_000_000 + self.clock_rate_ppm)
        estimate = max(estimate - 2, 0)
        while self.local_time(estimate) < local_ms:
            estimate += 1
        return estimate

    @property
    def height(self) -> int:
        return len(self.disk.blocks)


class World:
    """One seed's simulation. ``run()`` returns nothing; read ``safety_violations`` etc."""

    def __init__(
        self,
        seed: int,
        parameters: SimParameters,
        suite: Suite,
        *,
        replica_factory: Callable[..., Replica] = Replica,
    ) -> None:
        self.seed = seed
        self.parameters = parameters
        self.rng = random.Random(seed)
        self.suite = suite
        self.replica_factory = replica_factory
        self.now_ms = 0
        self._events: list[tuple[int, int, str, tuple[object, ...]]] = []
        self._event_sequence = 0
        self.events_processed = 0
        self.safety_violations: list[str] = []
        self.liveness_failure: str | None = None
        self.evidence_count = 0
        self.chain_id = b"sim-%d" % seed
        self.config = ConsensusConfig(
            chain_id=self.chain_id,
            timeout_propose_ms=600,
            timeout_propose_delta_ms=200,
            timeout_prevote_ms=300,
            timeout_prevote_delta_ms=100,
            timeout_precommit_ms=300,
            timeout_precommit_delta_ms=100,
            timeout_max_ms=5000,
            retransmit_interval_ms=500,
            catchup_delay_ms=100,
            catchup_retry_ms=300,
            clock_drift_max_ms=1000,
        )
        self.tx_secret = hashlib.sha256(b"sim tx secret %d" % seed).digest()
        self.submitted: set[bytes] = set()
        self.authorised_updates: set[bytes] = set()
        self.canonical: list[bytes] = []  # block hash per height (index = height - 1)
        self.validator_sets: list[ValidatorSet] = []  # the set of height h at index h - 1
        self.healed = False
        self.liveness_target = 0
        self.liveness_deadline_ms = 0
        self.faults: frozenset[str] = frozenset()
        self.loss_rate = 0.0
        self.duplicate_rate = 0.0
        self.delay_ms_max = 20
        self.slow_rate = 0.0
        self.blocked_links: set[tuple[int, int]] = set()
        self.nodes: list[Node] = []
        #: called after every event (scripted scenarios inject faults from here)
        self.after_event_hooks: list[Callable[[World], None]] = []
        self.genesis_hash = suite.hash(b"pilotchain simulated genesis " + self.chain_id)
        self.draw()

    # ------------------------------------------------------------------ setup

    def draw(self) -> None:
        """Draw this seed's fault mix and build the nodes."""
        rng = self.rng
        enabled = self.parameters.faults
        self.faults = frozenset(fault for fault in sorted(enabled) if rng.random() < 0.7)
        n = self.parameters.nodes
        f = (n - 1) // 3
        observer = "reconfigure" in self.faults
        total = n + (1 if observer else 0)
        keys = [self.suite.private_key_from_seed(b"sim validator key %d/%d " % (self.seed, i) + bytes(32)) for i in range(total)]
        self.nodes = [Node(self, i, keys[i]) for i in range(total)]
        if "clock-drift" in self.faults:
            for node in self.nodes:
                node.clock_offset_ms = rng.randint(-200, 200)
                node.clock_rate_ppm = rng.randint(-2000, 2000)
        if "loss" in self.faults:
            self.loss_rate = rng.uniform(0.0, 0.3)
        if "duplicate" in self.faults:
            self.duplicate_rate = rng.uniform(0.0, 0.2)
        if "reorder" in self.faults:
            self.delay_ms_max = rng.choice((50, 100, 200))
        if "delay" in self.faults:
            self.slow_rate = rng.uniform(0.0, 0.1)
        byzantine_ids: list[int] = []
        if "byzantine" in self.faults and f > 0:
            byzantine_ids = rng.sample(range(n), rng.randint(1, f))
            for node_id in byzantine_ids:
                weights = [BYZANTINE_WEIGHTS.get(name, 1) for name in BYZANTINE_BEHAVIOURS]
                self.nodes[node_id].byzantine = rng.choices(BYZANTINE_BEHAVIOURS, weights)[0]
        self.honest_ids = [node.node_id for node in self.nodes if node.byzantine is None]
        powers = self._draw_voting_powers(n, byzantine_ids)
        genesis_set = ValidatorSet(tuple(Validator(self.nodes[i].public_key, powers[i]) for i in range(n)))
        self.validator_sets.append(genesis_set)
        for node in self.nodes:
            node.disk.next_validator_set = genesis_set
        safety_ms = self.parameters.safety_phase_ms
        self.heal_at_ms = rng.randint(safety_ms // 2, safety_ms)
        if self.parameters.heal_at_ms is not None:
            self.heal_at_ms = self.parameters.heal_at_ms
        for node in self.nodes:
            self._start_node(node, at_ms=rng.randint(0, 50))
        self._schedule_clients()
        self._schedule_faults(n, byzantine_ids, observer)
        self._push(self.heal_at_ms, "heal", ())

    def _draw_voting_powers(self, n: int, byzantine_ids: list[int]) -> list[int]:
        """Equal powers, or (weighted-power) random ones with byzantine power below one third."""
        if "weighted-power" not in self.faults:
            return [10] * n
        powers = [self.rng.randint(1, 20) for _ in range(n)]
        honest = [i for i in range(n) if i not in byzantine_ids]
        for _ in range(100_000):  # bounded; each step adds honest power
            if 3 * sum(powers[i] for i in byzantine_ids) < sum(powers):
                return powers
            powers[self.rng.choice(honest)] += 1
        raise AssertionError("could not keep byzantine power below one third")

    def _schedule_clients(self) -> None:
        at_ms = 0
        for index in range(CLIENT_TXS_MAX):
            at_ms += self.rng.randint(10, 150)
            if at_ms > self.heal_at_ms + self.parameters.liveness_bound_ms:
                break
            self._push(at_ms, "client", (index,))

    def _schedule_faults(self, n: int, byzantine_ids: list[int], observer: bool) -> None:
        rng = self.rng
        end = self.heal_at_ms
        if "crash" in self.faults or "torn-write" in self.faults:
            for _ in range(rng.randint(1, 4)):
                at_ms = rng.randint(0, end)
                node_id = rng.choice(self.honest_ids)
                torn = "torn-write" in self.faults and ("crash" not in self.faults or rng.random() < 0.5)
                self._push(at_ms, "crash", (node_id, torn))
                self._push(at_ms + rng.randint(50, 2000), "restart", (node_id,))
        if "partition" in self.faults and len(self.nodes) >= 2:
            for _ in range(rng.randint(1, 3)):
                at_ms = rng.randint(0, end)
                side = set(rng.sample(range(len(self.nodes)), rng.randint(1, len(self.nodes) - 1)))
                links = {(a, b) for a in range(len(self.nodes)) for b in range(len(self.nodes)) if (a in side) != (b in side)}
                self._push(at_ms, "block", (frozenset(links),))
                self._push(min(at_ms + rng.randint(100, 3000), end), "unblock", (frozenset(links),))
        if "asymmetric-partition" in self.faults:
            for _ in range(rng.randint(1, 3)):
                at_ms = rng.randint(0, end)
                links = {(rng.randrange(len(self.nodes)), rng.randrange(len(self.nodes))) for _ in range(rng.randint(1, 2 * n))}
                self._push(at_ms, "block", (frozenset(links),))
                self._push(min(at_ms + rng.randint(100, 3000), end), "unblock", (frozenset(links),))
        if "isolate-leader" in self.faults:
            for _ in range(rng.randint(1, 4)):
                at_ms = rng.randint(0, end)
                self._push(at_ms, "isolate-leader", (rng.randint(100, 2000),))
        if observer:
            replaced = rng.choice([i for i in range(n) if i not in byzantine_ids])
            current = self.validator_sets[0].validators
            update = ValidatorSet(
                tuple(
                    Validator(self.nodes[n].public_key, v.voting_power) if i == replaced else v
                    for i, v in enumerate(current)
                )
            )
            self.authorised_updates.add(encode(update))
            self._push(rng.randint(0, end), "governance", (update,))

    # ------------------------------------------------------------------ event loop

    def _push(self, at_ms: int, kind: str, data: tuple[object, ...]) -> None:
        self._event_sequence += 1
        heapq.heappush(self._events, (at_ms, self._event_sequence, kind, data))

    def run(self) -> None:
        parameters = self.parameters
        while self._events:
            at_ms, _, kind, data = heapq.heappop(self._events)
            assert at_ms >= self.now_ms
            self.now_ms = at_ms
            self.events_processed += 1
            if self.events_processed > parameters.events_max:
                self.liveness_failure = f"event budget {parameters.events_max} exhausted at {self.now_ms} ms"
                return
            if self.healed:
                if self._is_liveness_reached():
                    return
                if self.now_ms > self.liveness_deadline_ms:
                    self.liveness_failure = self._describe_stall()
                    return
            getattr(self, "_on_" + kind.replace("-", "_"))(*data)
            for hook in self.after_event_hooks:
                hook(self)
        if not self._is_liveness_reached():
            self.liveness_failure = self._describe_stall()

    def _is_liveness_reached(self) -> bool:
        return all(self.nodes[i].height >= self.liveness_target for i in self.honest_ids)

    def _describe_stall(self) -> str:
        heights = {i: self.nodes[i].height for i in self.honest_ids}
        rounds = {node.node_id: node.replica.round for node in self.nodes if node.replica is not None and node.byzantine is None}
        return (
            f"no progress within {self.parameters.liveness_bound_ms} ms after healing at {self.heal_at_ms} ms: "
            f"target height {self.liveness_target}, honest heights {heights}, rounds {rounds}"
        )

    # ------------------------------------------------------------------ events

    def _on_heal(self) -> None:
        self.healed = True
        self.blocked_links.clear()
        self.loss_rate = 0.0
        self.duplicate_rate = 0.0
        self.slow_rate = 0.0
        for node_id in self.honest_ids:
            node = self.nodes[node_id]
            node.crash_on_next_persist = False
            if node.replica is None:
                self._start_node(node, at_ms=self.now_ms)
        self.liveness_target = max(self.nodes[i].height for i in self.honest_ids) + self.parameters.liveness_heights
        self.liveness_deadline_ms = self.now_ms + self.parameters.liveness_bound_ms

    def _on_client(self, index: int) -> None:
        tx_id = self.rng.getrandbits(64).to_bytes(8, "big")
        tx = tx_id + hashlib.sha256(self.tx_secret + tx_id).digest()[:8]
        self.submitted.add(tx)
        for node in self.rng.sample(self.nodes, self.rng.randint(1, len(self.nodes))):
            if len(node.mempool) < MEMPOOL_TXS_MAX:
                node.mempool[tx] = None

    def is_well_formed_tx(self, tx: bytes) -> bool:
        return len(tx) == TX_BYTES and hashlib.sha256(self.tx_secret + tx[:8]).digest()[:8] == tx[8:]

    def _on_governance(self, update: ValidatorSet) -> None:
        self.pending_update = update

    pending_update: ValidatorSet | None = None

    def schedule(self, at_ms: int, kind: str, *data: object) -> None:
        """Script an event: crash(node_id, torn), restart(node_id), block(links), unblock(links)."""
        self._push(at_ms, kind, data)

    def crash_node(self, node_id: int, *, torn: bool = False) -> None:
        self._on_crash(node_id, torn)

    def restart_node(self, node_id: int) -> None:
        self._on_restart(node_id)

    def _on_crash(self, node_id: int, torn: bool) -> None:
        node = self.nodes[node_id]
        if node.replica is None or self.healed:
            return
        if torn:
            node.crash_on_next_persist = True
        else:
            self._crash(node)

    def _crash(self, node: Node) -> None:
        node.replica = None
        node.crash_on_next_persist = False
        node.timer_generation += 1

    def _on_restart(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.replica is None:
            self._start_node(node, at_ms=self.now_ms)

    def _on_block(self, links: frozenset[tuple[int, int]]) -> None:
        if not self.healed:
            self.blocked_links |= links

    def _on_unblock(self, links: frozenset[tuple[int, int]]) -> None:
        self.blocked_links -= links

    def _on_isolate_leader(self, duration_ms: int) -> None:
        live = [self.nodes[i] for i in self.honest_ids if self.nodes[i].replica is not None]
        if not live:
            return
        leader_replica = max((node.replica for node in live if node.replica is not None), key=lambda r: (r.height, r.round))
        leader = leader_replica.validators.get_proposer_index(leader_replica.height, max(leader_replica.round, 0))
        leader_key = leader_replica.validators.public_keys[leader]
        leader_id = next(node.node_id for node in self.nodes if node.public_key == leader_key)
        links = frozenset({(leader_id, b) for b in range(len(self.nodes))} | {(a, leader_id) for a in range(len(self.nodes))})
        self._on_block(links)
        self._push(min(self.now_ms + duration_ms, self.heal_at_ms), "unblock", (links,))

    def _on_deliver(self, source: int, target: int, data: bytes) -> None:
        node = self.nodes[target]
        if node.replica is None:
            return
        try:
            message = decode_message(data)
        except CodecError:
            return
        if node.byzantine == "lock-attack" and not self.healed and isinstance(message, Vote) and message.vote_type == 2:
            return  # stays undecided so that it can vote for a second value at this height
        if node.byzantine == "replay" and len(node.replay_buffer) < REPLAY_BUFFER_MAX:
            node.replay_buffer.append(data)
        node.replica.receive(message, source, node.local_time(self.now_ms))
        self._run_effects(node)

    def _on_payload(self, node_id: int, incarnation: int, request: RequestPayload) -> None:
        node = self.nodes[node_id]
        if node.replica is None or incarnation != node.incarnation or node.replica.height != request.height:
            return
        payload = self._make_payload(node)
        node.replica.propose_payload(request.height, request.round, payload, node.local_time(self.now_ms))
        self._run_effects(node)

    def _on_tick(self, node_id: int, generation: int) -> None:
        node = self.nodes[node_id]
        if node.replica is None or generation != node.timer_generation:
            return
        node.replica.tick(node.local_time(self.now_ms))
        self._run_effects(node)
        if node.byzantine in ("forge-certificate", "replay"):
            self._misbehave_periodically(node)

    # ------------------------------------------------------------------ node shell

    def _start_node(self, node: Node, at_ms: int) -> None:
        disk = node.disk
        if disk.blocks:
            block, block_hash, _ = disk.blocks[-1]
            tip = ChainTip(block.header.height, block_hash, block.header.timestamp_ms, disk.next_validator_set)  # type: ignore[arg-type]
        else:
            tip = ChainTip(0, self.genesis_hash, 0, disk.next_validator_set)  # type: ignore[arg-type]
        wal = decode(disk.wal, ConsensusWal) if disk.wal is not None else None
        factory = self.replica_factory
        if node.byzantine in ("lock-breaker", "lock-attack"):
            from pilotchain.sim.broken import ReplicaSkippingLockCheck

            factory = ReplicaSkippingLockCheck
        node.replica = factory(
            config=self.config, suite=self.suite, private_key=node.private_key,
            application=node.application, chain_tip=tip, wal=wal,
        )
        node.timer_generation += 1
        node.incarnation += 1
        node.replica.start(node.local_time(max(at_ms, self.now_ms)))
        self._run_effects(node)

    def _run_effects(self, node: Node) -> None:
        """Execute effects in order, exactly like a node shell would (bounded: the replica only
        produces effects in response to an input, and RequestPayload adds one input)."""
        for _ in range(8):
            replica = node.replica
            if replica is None:
                return
            effects = replica.take_effects()
            if not effects:
                return
            for effect in effects:
                if isinstance(effect, Persist):
                    if node.crash_on_next_persist:
                        self._crash(node)  # the write is torn: lost, and nothing after it happens
                        return
                    node.disk.wal = encode(effect.record)
                elif isinstance(effect, Broadcast):
                    self._send_out(node, None, effect.message)
                elif isinstance(effect, Send):
                    self._send_out(node, effect.to, effect.message)
                elif isinstance(effect, Commit):
                    self._commit(node, effect)
                elif isinstance(effect, SetTimer):
                    node.timer_generation += 1
                    self._push(max(node.global_time(effect.deadline_ms), self.now_ms), "tick", (node.node_id, node.timer_generation))
                elif isinstance(effect, RequestPayload):  # the application takes a moment
                    self._push(self.now_ms + self.rng.randint(1, 10), "payload", (node.node_id, node.incarnation, effect))
                elif isinstance(effect, EvidenceFound):
                    self.evidence_count += 1
                    self._check_evidence(replica, effect)
        raise AssertionError("effects keep coming without new input")

    def _check_evidence(self, replica: Replica, effect: EvidenceFound) -> None:
        """An honest validator must never sign two conflicting votes (WAL + restart logic)."""
        vote = effect.evidence.vote_a
        key = replica.validators.public_keys[vote.validator_index]
        culprit = next(node for node in self.nodes if node.public_key == key)
        if culprit.byzantine is None:
            self.safety_violations.append(
                f"honest node {culprit.node_id} equivocated at height {vote.height} round {vote.round} type {vote.vote_type}"
            )

    def _make_payload(self, node: Node) -> bytes:
        txs = [tx for tx in node.mempool if tx not in node.disk.committed_txs][:TXS_PER_BLOCK_MAX]
        update = self.pending_update
        if update is not None and encode(update) in node.disk.applied_updates:
            update = None
        return encode(SimPayload(tuple(txs), update))

    def _commit(self, node: Node, effect: Commit) -> None:
        block = effect.block
        disk = node.disk
        assert block.header.height == len(disk.blocks) + 1, "replica committed out of order"
        payload = decode(block.payload, SimPayload)
        disk.blocks.append((block, effect.block_hash, effect.certificate))
        disk.committed_txs.update(payload.txs)
        for tx in payload.txs:
            node.mempool.pop(tx, None)
        if payload.validator_set is not None:
            disk.next_validator_set = payload.validator_set
            disk.applied_updates.add(encode(payload.validator_set))
        if node.byzantine is None:
            self._check_commit(node, block, effect.block_hash, effect.certificate, payload)

    def _check_commit(
        self, node: Node, block: Block, block_hash: bytes, certificate: CommitCertificate, payload: SimPayload
    ) -> None:
        height = block.header.height
        prefix = f"node {node.node_id} height {height}"
        expected_parent = self.genesis_hash if height == 1 else node.disk.blocks[height - 2][1]
        if block.header.parent_hash != expected_parent:
            self.safety_violations.append(f"{prefix}: hash link broken")
        if compute_block_hash(self.suite, block.header) != block_hash:
            self.safety_violations.append(f"{prefix}: block hash does not match header")
        if height <= len(self.canonical):
            if self.canonical[height - 1] != block_hash:
                self.safety_violations.append(
                    f"{prefix}: agreement violated: committed {block_hash.hex()[:16]}, "
                    f"another honest node committed {self.canonical[height - 1].hex()[:16]}"
                )
                return
        else:
            assert height == len(self.canonical) + 1
            self.canonical.append(block_hash)
            next_set = payload.validator_set if payload.validator_set is not None else self.validator_sets[height - 1]
            self.validator_sets.append(next_set)
        try:
            verify_commit_certificate(
                certificate, block_hash, self.validator_sets[height - 1], self.suite, chain_id=self.chain_id, height=height
            )
        except InvalidCertificate as exc:
            self.safety_violations.append(f"{prefix}: commit certificate does not verify: {exc}")
        invented = [tx.hex() for tx in payload.txs if tx not in self.submitted]
        if invented:
            self.safety_violations.append(f"{prefix}: committed transactions no client submitted: {invented[:3]}")
        if payload.validator_set is not None and encode(payload.validator_set) not in self.authorised_updates:
            self.safety_violations.append(f"{prefix}: committed an unauthorised validator set")

    # ------------------------------------------------------------------ network

    def _send_out(self, node: Node, to: int | None, message: ConsensusMessage) -> None:
        if node.byzantine is not None:
            for target, forged in self._byzantine_rewrite(node, to, message):
                self._transmit(node.node_id, target, encode(forged) if not isinstance(forged, bytes) else forged)
            return
        data = encode(message)
        if to is None:
            for target in range(len(self.nodes)):
                if target != node.node_id:
                    self._transmit(node.node_id, target, data)
        else:
            self._transmit(node.node_id, to, data)

    def _transmit(self, source: int, target: int, data: bytes) -> None:
        rng = self.rng
        if (source, target) in self.blocked_links or rng.random() < self.loss_rate:
            return
        copies = 2 if rng.random() < self.duplicate_rate else 1
        for _ in range(copies):
            delay_ms = rng.randint(1, self.delay_ms_max)
            if rng.random() < self.slow_rate:
                delay_ms += rng.randint(200, 2000)
            self._push(self.now_ms + delay_ms, "deliver", (source, target, data))

    # ------------------------------------------------------------------ byzantine behaviour

    def _byzantine_rewrite(
        self, node: Node, to: int | None, message: ConsensusMessage
    ) -> list[tuple[int, ConsensusMessage | bytes]]:
        """Rewrite one outgoing message of a byzantine node into what it really sends."""
        rng = self.rng
        others = [i for i in range(len(self.nodes)) if i != node.node_id]
        targets = others if to is None else [to]
        behaviour = node.byzantine
        if behaviour == "silent":
            return []
        if behaviour == "withhold":
            if isinstance(message, Vote) and message.vote_type == 2:
                return []
            return [(t, message) for t in targets if rng.random() < 0.5]
        if behaviour == "bad-signature":
            if isinstance(message, (Vote, Proposal)) and rng.random() < 0.7:
                signature = bytes([message.signature[0] ^ 1]) + message.signature[1:]
                message = _replace_signature(message, signature)
            if rng.random() < 0.05:
                return [(t, message) for t in targets] + [(rng.choice(others), rng.randbytes(rng.randint(0, 64)))]
            return [(t, message) for t in targets]
        if behaviour in ("equivocate", "double-vote", "lock-breaker") and to is None:
            conflicting = self._make_conflicting(node, message)
            if conflicting is None:
                return [(t, message) for t in targets]
            if behaviour == "equivocate":
                return [(t, message if rng.random() < 0.5 else conflicting) for t in targets]
            return [(t, m) for t in targets for m in (message, conflicting)]
        if behaviour == "lock-attack" and to is None:
            return [(t, message) for t in self._aim_lock_attack(node, message, others)]
        if behaviour == "forge-certificate" and isinstance(message, BlockResponse) and rng.random() < 0.7:
            return [(t, self._forge_response(node, message.commits[0].block.header.height)) for t in targets]
        return [(t, message) for t in targets]

    def _aim_lock_attack(self, node: Node, message: ConsensusMessage, others: list[int]) -> list[int]:
        """Try to make one honest node decide while the others stay unlocked or locked alone.

        In a round this node proposes: hide the proposal from the next round's proposer (so it
        proposes something fresh next round), show the byzantine precommit to a single node (so
        only it can reach a commit quorum) and silence that node for a while (the adversary owns
        the network in the safety phase). Only the lock rule stops the others from deciding a
        second value in the next round."""
        replica = node.replica
        assert replica is not None
        if not isinstance(message, (Proposal, Vote)):
            return others
        validators = replica.validators
        if validators.get_proposer_index(message.height, message.round) != replica.validator_index:
            return others
        attack = node.attacks.get(message.height)
        if attack is not None and attack[0] != message.round:
            return others  # once per height, in the first round it proposes
        next_key = validators.public_keys[validators.get_proposer_index(message.height, message.round + 1)]
        next_proposer = next((n.node_id for n in self.nodes if n.public_key == next_key), -1)
        candidates = [t for t in others if t != next_proposer]
        if attack is None:
            if not candidates:
                return others
            attack = node.attacks[message.height] = (message.round, self.rng.choice(candidates))
        if isinstance(message, Proposal) or message.vote_type == 1:
            return candidates
        if message.block_hash == BLOCK_HASH_NIL:
            return others
        chosen = attack[1]
        if not self.healed:
            links = frozenset((chosen, t) for t in range(len(self.nodes)) if t != chosen)
            self._on_block(links)
            self._push(min(self.now_ms + self.rng.randint(2000, 5000), self.heal_at_ms), "unblock", (links,))
        return [chosen]

    def _make_conflicting(self, node: Node, message: ConsensusMessage) -> ConsensusMessage | None:
        replica = node.replica
        assert replica is not None
        chain_id = self.chain_id
        if isinstance(message, Vote):
            other = BLOCK_HASH_NIL if message.block_hash != BLOCK_HASH_NIL else self.rng.randbytes(32)
            signature = node.private_key.sign(
                get_vote_signing_bytes(chain_id, message.vote_type, message.height, message.round, other)
            )
            return Vote(message.vote_type, message.height, message.round, other, message.validator_index, signature)
        if isinstance(message, Proposal) and message.valid_round == -1:
            header = message.block.header
            txs = list(decode(message.block.payload, SimPayload).txs)
            self.rng.shuffle(txs)
            payload = encode(SimPayload(tuple(txs[: max(0, len(txs) - 1)]), None))
            forged_header = BlockHeader(
                header.chain_id, header.height, header.round, header.parent_hash, header.proposer_index,
                header.timestamp_ms + 1, header.validator_set_hash, self.suite.hash(payload),
            )
            block = Block(forged_header, payload)
            block_hash = compute_block_hash(self.suite, forged_header)
            signature = node.private_key.sign(
                get_proposal_signing_bytes(chain_id, message.height, message.round, block_hash, -1)
            )
            return Proposal(message.height, message.round, block, -1, (), message.proposer_index, signature)
        return None

    def _forge_response(self, node: Node, height: int) -> BlockResponse:
        """A block the network never decided, with a certificate that must not verify."""
        replica = node.replica
        assert replica is not None
        parent = self.genesis_hash if height <= 1 or height - 1 > len(node.disk.blocks) else node.disk.blocks[height - 2][1]
        payload = encode(SimPayload((), None))
        validators = replica.validators
        header = BlockHeader(
            self.chain_id, height, 0, parent, validators.get_proposer_index(height, 0),
            self.now_ms + 1, validators.hash, self.suite.hash(payload),
        )
        block_hash = compute_block_hash(self.suite, header)
        mode = self.rng.randrange(3)
        if mode == 0 and node.disk.blocks:  # replay a real certificate of another height
            certificate = node.disk.blocks[-1][2]
        else:
            index = validators.get_index(node.public_key) or 0
            signature = node.private_key.sign(get_vote_signing_bytes(self.chain_id, 2, height, 0, block_hash))
            entries = [CommitSignature(index, signature)]
            if mode == 2:  # pad with garbage signatures of other validators
                entries += [CommitSignature(i, bytes(64)) for i in range(len(validators)) if i != index]
                entries.sort(key=lambda entry: entry.validator_index)
            certificate = CommitCertificate(self.chain_id, height, 0, block_hash, tuple(entries))
        return BlockResponse((CommittedBlock(Block(header, payload), certificate),), height + self.rng.randint(1, 100))

    def _misbehave_periodically(self, node: Node) -> None:
        replica = node.replica
        if replica is None or self.rng.random() < 0.5:
            return
        if node.byzantine == "forge-certificate":
            forged = self._forge_response(node, replica.height)
            for target in range(len(self.nodes)):
                if target != node.node_id:
                    self._transmit(node.node_id, target, encode(forged))
        elif node.byzantine == "replay" and node.replay_buffer:
            for _ in range(3):
                self._transmit(node.node_id, self.rng.randrange(len(self.nodes)), self.rng.choice(node.replay_buffer))


def _replace_signature(message: Vote | Proposal, signature: bytes) -> Vote | Proposal:
    if isinstance(message, Vote):
        return Vote(message.vote_type, message.height, message.round, message.block_hash, message.validator_index, signature)
    return Proposal(
        message.height, message.round, message.block, message.valid_round, message.polka, message.proposer_index, signature
    )
