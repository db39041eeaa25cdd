"""The simulated world: network, clocks, disks, clients and faults around real node cores.

Theory of operation
-------------------
One :class:`World` runs ``n`` validators (plus an observer for the ``reconfigure`` fault) in one
process. Each is the node core the validator process runs — a
:class:`~pilotchain.node.core.NodeCore`: the real replica, the real governed ledger (real
transaction checks, execution, commit, governance, validator schedule) on its own store in a
temporary folder, and a mempool. Everything nondeterministic lives here and comes from one
``random.Random(seed)``: message delay, loss, duplication and reordering, partitions, crashes
(with a torn last WAL write), clock offset and rate drift, client transactions, governance and
byzantine behaviour. Time is a virtual integer millisecond counter advanced by a heap of events,
so a seed replays exactly.

The shell contract is honoured exactly as the validator process honours it: the core's effects
are executed in order, a ``Persist`` is "durable" before any later ``Send``; a crash can strike
*during* a Persist (the write is torn, i.e. lost, and nothing after it happens — the core is
discarded mid-drain, so a Commit after it is never applied). A crashed node restarts from what
survived: its WAL record and its ledger store (stores are opened with ``durable=False``: a
simulated crash ends the node object, not the machine, so nothing written is lost).

Clients sign real ``kv`` transactions with identities issued by each organisation's CA; the
``reconfigure`` fault has the organisations' admins replace a validator with the observer
through ``gov`` proposals and approvals (add, then remove), as an operator would.

Every honest commit is checked as it happens (:meth:`World._check_commit`): agreement per height,
hash links, certificate validity against the validator set of that height, the ledger block bound
to its consensus header, the ledger's head and state root after the commit, every transaction
submitted by a client and committed once, and validator sets changed only as governance asked.
An honest node that halts or raises is a safety violation: a real validator would have stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from pilotchain.codec import CodecError, decode, encode
from pilotchain.consensus import (
    BLOCK_HASH_NIL,
    BlockResponse,
    Broadcast,
    CommitCertificate,
    CommitSignature,
    CommittedBlock,
    ConsensusBlock,
    ConsensusConfig,
    ConsensusHeader,
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
    ValidatorSet,
    Vote,
    compute_block_hash,
    decode_message,
    get_proposal_signing_bytes,
    get_vote_signing_bytes,
    verify_commit_certificate,
)
from pilotchain.crypto import PrivateKey, PublicKey, Suite
from pilotchain.errors import InvariantBroken
from pilotchain.identity.authority import CertificateAuthority
from pilotchain.ledger.block import Block as LedgerBlock
from pilotchain.ledger.block import block_hash as ledger_block_hash
from pilotchain.ledger.block import verify_block_body
from pilotchain.ledger.commit import consensus_validator_set
from pilotchain.ledger.genesis import ChainParams, Genesis, ValidatorInfo
from pilotchain.ledger.tx import (
    TxBody,
    TxRejected,
    decode_args,
    encode_args,
    sign_transaction,
    tx_id_of_body,
)
from pilotchain.node.chain import Ledger, open_governed_ledger
from pilotchain.node.core import Committed, NodeCore, NodeHalted, Note
from pilotchain.node.mempool import Mempool

__all__ = ["FAULTS", "CachingSuite", "SimConsortium", "SimParameters", "World"]

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
    "bad-state-root",
)
#: The lock attack is the one that needs luck with timing; give it more seeds.
BYZANTINE_WEIGHTS = {"lock-attack": 4}
MEMPOOL_TXS_MAX = 512
CLIENT_TXS_MAX = 2000
#: time between two client transactions (each is signed, checked by the nodes it reaches and
#: executed by every validator: the real ledger's cost per seed grows with it)
CLIENT_GAP_MS_MIN = 20
CLIENT_GAP_MS_MAX = 300
REPLAY_BUFFER_MAX = 64
#: how long a client transaction stays valid (the chain refuses it after)
TX_TTL_MS = 60_000
#: blocks carry at most this many transactions in the simulation (small blocks, many heights)
SIM_BLOCK_TXS_MAX = 32
#: governance transactions are sent again this often until the step they belong to is done
GOVERNANCE_RETRY_MS = 700
#: identities and CAs are valid for this long from time 0 (the whole of any simulation)
VALID_MS = 10**12


class CachingSuite(Suite):
    """A suite whose ``verify`` is memoised: every node verifies the same vote and transaction,
    so the simulator checks each distinct (key, message, signature) once. Verification is a pure
    function, so this changes no outcome, only the run time."""

    VERIFY_CACHE_MAX = 200_000

    def __init__(self, inner: Suite) -> None:
        self.inner = inner
        self.name = inner.name
        self.hash_name = inner.hash_name
        self.digest_size = inner.digest_size
        self.aead_key_size = inner.aead_key_size
        self.aead_nonce_size = inner.aead_nonce_size
        self.signature_name = inner.signature_name
        self.aead_name = inner.aead_name
        self._cache: dict[tuple[bytes, bytes, bytes], bool] = {}
        # the inner suite's bound method itself: a wrapper per call cost ~5 % of a seed's time
        self.hash = inner.hash  # type: ignore[method-assign]

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


@dataclass(frozen=True)
class SimIdentity:
    name: str
    org: str
    key: PrivateKey
    certificate: bytes


class SimConsortium:
    """One seed's consortium, all from the seed: an organisation per genesis validator, each with
    a CA, an admin and a client identity; the validators' consensus keys; the genesis."""

    def __init__(self, seed: int, suite: Suite, validators: int, observers: int, powers: Sequence[int]) -> None:
        self.chain_id = f"sim-{seed}"
        self.orgs = [f"org{i}" for i in range(validators)]
        admins: list[SimIdentity] = []
        clients: list[SimIdentity] = []
        authorities: list[CertificateAuthority] = []
        for index, org in enumerate(self.orgs):
            ca = CertificateAuthority.create(
                suite, suite.private_key_from_seed(_seed_bytes(b"ca", seed, index)), org_id=org,
                display_name=f"Organisation {index}", now_ms=0, valid_ms=VALID_MS,
            )
            authorities.append(ca)
            for role, group in (("admin", admins), ("client", clients)):
                key = suite.private_key_from_seed(_seed_bytes(role.encode(), seed, index))
                certificate = ca.issue(f"{org}-{role}", (role,), key.public_key().to_der(), now_ms=0, valid_ms=VALID_MS)
                group.append(SimIdentity(f"{org}-{role}", org, key, encode(certificate)))
        self.admins = admins
        self.clients = clients
        self.node_keys = [suite.private_key_from_seed(_seed_bytes(b"validator", seed, i))
                          for i in range(validators + observers)]
        self.node_names = [f"v{i}" for i in range(validators + observers)]
        self.genesis = Genesis(
            chain_id=self.chain_id,
            suite=suite.name,
            genesis_time_ms=0,
            organizations=tuple(encode(ca.org_certificate) for ca in authorities),
            validators=tuple(
                ValidatorInfo(name=self.node_names[i], org=self.orgs[i], public_key=self.node_keys[i].public_key().to_der(),
                              power=powers[i])
                for i in range(validators)
            ),
            params=ChainParams(block_txs_max=SIM_BLOCK_TXS_MAX, state_bucket_bits=8),
        )
        self.genesis.check()


def _seed_bytes(kind: bytes, seed: int, index: int) -> bytes:
    return hashlib.sha256(b"pilotchain sim %s %d/%d" % (kind, seed, index)).digest()


@dataclass
class Disk:
    """What survives a crash: the WAL record, the ledger store (in ``directory``) and, for the
    checks, the consensus view of what that store committed."""

    directory: Path
    wal: bytes | None = None
    blocks: list[tuple[ConsensusBlock, bytes, CommitCertificate]] = field(default_factory=list)


class Node:
    def __init__(self, world: World, node_id: int, name: str, private_key: PrivateKey, directory: Path) -> None:
        self.world = world
        self.node_id = node_id
        self.name = name
        self.private_key = private_key
        self.public_key = private_key.public_key().to_der()
        self.disk = Disk(directory)
        self.core: NodeCore | None = None
        self.timer_generation = 0
        self.incarnation = 0  # bumped at every start, so events of a crashed run are ignored
        self.clock_offset_ms = 0
        self.clock_rate_ppm = 0
        self.crash_on_next_persist = False
        self.byzantine: str | None = None
        self.replay_buffer: list[bytes] = []
        self.attacks: dict[int, tuple[int, int]] = {}  # lock-attack: height -> (round, target)
        self.halted: str | None = None

    @property
    def replica(self) -> Replica | None:
        return self.core.replica if self.core is not None else None

    @property
    def ledger(self) -> Ledger | None:
        return self.core.ledger if self.core is not None else None

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
    """One seed's simulation. ``run()`` returns nothing; read ``safety_violations`` etc. Holds a
    temporary folder (the nodes' stores) until :meth:`close` (or the ``with`` block) ends it."""

    def __init__(
        self,
        seed: int,
        parameters: SimParameters,
        suite: Suite,
        *,
        replica_factory: Callable[..., Replica] = Replica,
        core_factory: Callable[..., NodeCore] = NodeCore,
    ) -> None:
        self.seed = seed
        self.parameters = parameters
        self.rng = random.Random(seed)
        self.suite = suite
        self.replica_factory = replica_factory
        self.core_factory = core_factory
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
        self.submitted: set[bytes] = set()
        self.committed_txs: dict[bytes, int] = {}  # tx id -> the height that committed it
        self.canonical: list[bytes] = []  # consensus block hash per height (index = height - 1)
        self.validator_sets: list[ValidatorSet] = []  # the set of height h at index h - 1
        self.allowed_validator_keys: set[bytes] = set()
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
        self.governance: _Governance | None = None
        #: called after every event (scripted scenarios inject faults from here)
        self.after_event_hooks: list[Callable[[World], None]] = []
        root = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
        self.directory = Path(tempfile.mkdtemp(prefix=f"pilotchain-sim-{seed}-", dir=root))
        try:
            self.draw()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close every store and remove the world's folder (idempotent)."""
        for node in self.nodes:
            if node.core is not None:
                node.core.ledger.close()
                node.core = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ setup

    def draw(self) -> None:
        """Draw this seed's fault mix, build the consortium and start the nodes."""
        rng = self.rng
        enabled = self.parameters.faults
        self.faults = frozenset(fault for fault in sorted(enabled) if rng.random() < 0.7)
        n = self.parameters.nodes
        f = (n - 1) // 3
        observer = "reconfigure" in self.faults
        byzantine_ids: list[int] = []
        behaviours: dict[int, str] = {}
        if "byzantine" in self.faults and f > 0:
            byzantine_ids = rng.sample(range(n), rng.randint(1, f))
            for node_id in byzantine_ids:
                weights = [BYZANTINE_WEIGHTS.get(name, 1) for name in BYZANTINE_BEHAVIOURS]
                behaviours[node_id] = rng.choices(BYZANTINE_BEHAVIOURS, weights)[0]
        powers = self._draw_voting_powers(n, byzantine_ids)
        self.consortium = SimConsortium(self.seed, self.suite, n, 1 if observer else 0, powers)
        names = self.consortium.node_names
        self.nodes = [Node(self, i, names[i], self.consortium.node_keys[i], self.directory / names[i])
                      for i in range(len(names))]
        for node_id, behaviour in behaviours.items():
            self.nodes[node_id].byzantine = behaviour
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
        self.honest_ids = [node.node_id for node in self.nodes if node.byzantine is None]
        genesis = self.consortium.genesis
        self.validator_sets.append(consensus_validator_set(genesis.validators))
        self.allowed_validator_keys = {v.public_key for v in genesis.validators}
        safety_ms = self.parameters.safety_phase_ms
        self.heal_at_ms = rng.randint(safety_ms // 2, safety_ms)
        if self.parameters.heal_at_ms is not None:
            self.heal_at_ms = self.parameters.heal_at_ms
        for node in self.nodes:
            self._start_node(node, at_ms=rng.randint(0, 50))
        first = next(node for node in self.nodes if node.core is not None)
        if not (first.core is not None):
            raise InvariantBroken('invariant broken: first.core is not None')
        #: the ledger's block 0: the parent of height 1 at every node
        self.genesis_hash = first.core.ledger.head_hash
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
        raise RuntimeError("could not keep byzantine power below one third")

    def _schedule_clients(self) -> None:
        at_ms = 0
        for index in range(CLIENT_TXS_MAX):
            at_ms += self.rng.randint(CLIENT_GAP_MS_MIN, CLIENT_GAP_MS_MAX)
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
            self.governance = _Governance(self, replaced=replaced, newcomer=n)
            self.allowed_validator_keys.add(self.nodes[n].public_key)
            self._push(rng.randint(0, end), "governance", ())

    # ------------------------------------------------------------------ event loop

    def _push(self, at_ms: int, kind: str, data: tuple[object, ...]) -> None:
        self._event_sequence += 1
        heapq.heappush(self._events, (at_ms, self._event_sequence, kind, data))

    def run(self) -> None:
        parameters = self.parameters
        while self._events:
            at_ms, _, kind, data = heapq.heappop(self._events)
            if at_ms < self.now_ms:
                raise RuntimeError(f"the event heap went back in time: {at_ms} < {self.now_ms}")
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
            if node.core is None and node.halted is None:
                self._start_node(node, at_ms=self.now_ms)
        self.liveness_target = max(self.nodes[i].height for i in self.honest_ids) + self.parameters.liveness_heights
        self.liveness_deadline_ms = self.now_ms + self.parameters.liveness_bound_ms

    def _on_client(self, index: int) -> None:
        client = self.consortium.clients[self.rng.randrange(len(self.consortium.clients))]
        body = TxBody(
            chain_id=self.consortium.chain_id,
            signer_certificate=client.certificate,
            nonce=self.rng.getrandbits(64).to_bytes(8, "big"),
            expires_at_ms=self.now_ms + TX_TTL_MS,
            contract="kv",
            method="put",
            args=encode_args({"key": f"k{index % 64}", "value": index}),
        )
        self.submit(sign_transaction(self.suite, client.key, body), body)

    def submit(self, raw: bytes, body: TxBody, targets: Sequence[Node] | None = None) -> None:
        """A client hands ``raw`` to some nodes (a random non-empty subset unless ``targets``)."""
        self.submitted.add(tx_id_of_body(self.suite, encode(body)))
        if targets is None:
            targets = self.rng.sample(self.nodes, self.rng.randint(1, len(self.nodes)))
        for node in targets:
            core = node.core
            if core is None or len(core.mempool) >= MEMPOOL_TXS_MAX:
                continue
            # refused (a duplicate, expired, already committed): the client moves on
            with contextlib.suppress(TxRejected):
                core.mempool.add(raw, node.local_time(self.now_ms), core.ledger.check_tx)

    def _on_governance(self) -> None:
        if self.governance is not None:
            self.governance.begin()

    def _on_gov_retry(self) -> None:
        if self.governance is not None and self.governance.step != "done":
            self.governance.retry()
            self._push(self.now_ms + GOVERNANCE_RETRY_MS, "gov-retry", ())

    def schedule(self, at_ms: int, kind: str, *data: object) -> None:
        """Script an event: crash(node_id, torn), restart(node_id), block(links), unblock(links)."""
        self._push(at_ms, kind, data)

    def crash_node(self, node_id: int, *, torn: bool = False) -> None:
        self._on_crash(node_id, torn)

    def restart_node(self, node_id: int) -> None:
        self._on_restart(node_id)

    def _on_crash(self, node_id: int, torn: bool) -> None:
        node = self.nodes[node_id]
        if node.core is None or self.healed:
            return
        if torn:
            node.crash_on_next_persist = True
        else:
            self._crash(node)

    def _crash(self, node: Node) -> None:
        if node.core is not None:
            node.core.ledger.close()
        node.core = None
        node.crash_on_next_persist = False
        node.timer_generation += 1

    def _on_restart(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.core is None and node.halted is None:
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
        core = node.core
        if core is None:
            return
        try:
            message = decode_message(data)
        except CodecError:
            return
        if node.byzantine == "lock-attack" and not self.healed and isinstance(message, Vote) and message.vote_type == 2:
            return  # stays undecided so that it can vote for a second value at this height
        if node.byzantine == "replay" and len(node.replay_buffer) < REPLAY_BUFFER_MAX:
            node.replay_buffer.append(data)
        self._input(node, core.receive, message, source, node.local_time(self.now_ms))

    def _on_payload(self, node_id: int, incarnation: int, request: RequestPayload) -> None:
        node = self.nodes[node_id]
        core = node.core
        if core is None or incarnation != node.incarnation or core.replica.height != request.height:
            return
        self._input(node, core.propose, request, node.local_time(self.now_ms))

    def _on_tick(self, node_id: int, generation: int) -> None:
        node = self.nodes[node_id]
        core = node.core
        if core is None or generation != node.timer_generation:
            return
        self._input(node, core.tick, node.local_time(self.now_ms))
        if node.byzantine in ("forge-certificate", "replay"):
            self._misbehave_periodically(node)

    # ------------------------------------------------------------------ node shell

    def _start_node(self, node: Node, at_ms: int) -> None:
        ledger = open_governed_ledger(node.disk.directory, self.consortium.genesis, node_name=node.name,
                                      durable=False, suite=self.suite)
        wal = decode(node.disk.wal, ConsensusWal) if node.disk.wal is not None else None
        factory = self.replica_factory
        if node.byzantine in ("lock-breaker", "lock-attack"):
            from pilotchain.sim.broken import ReplicaSkippingLockCheck

            factory = ReplicaSkippingLockCheck
        core_factory = self.core_factory if node.byzantine is None else NodeCore
        try:
            node.core = core_factory(ledger, Mempool(), name=node.name, private_key=node.private_key,
                                     config=self.config, wal=wal, replica_factory=factory)
        except BaseException:
            ledger.close()
            raise
        node.timer_generation += 1
        node.incarnation += 1
        self._input(node, node.core.start, node.local_time(max(at_ms, self.now_ms)))

    def _input(self, node: Node, action: Callable[..., Any], *args: Any) -> None:
        """Run one core input and execute its effects, as the validator process does. A halt or
        any other exception of an honest node's core is a safety violation (a real validator
        would have stopped); the node stays down."""
        try:
            action(*args)
            self._run_effects(node)
        except NodeHalted as exc:
            self._node_failed(node, f"halted: {exc}")
        except Exception as exc:  # noqa: BLE001 - the simulator reports every failure of the core
            self._node_failed(node, f"raised {type(exc).__name__}: {exc}")

    def _node_failed(self, node: Node, reason: str) -> None:
        if node.byzantine is None:
            self.safety_violations.append(f"node {node.node_id} {reason}")
        node.halted = reason
        self._crash(node)

    def _run_effects(self, node: Node) -> None:
        """Execute the core's effects in order, exactly like the node shell does (bounded: the
        replica only produces effects in response to an input)."""
        core = node.core
        if core is None:
            return
        for count, effect in enumerate(core.drain()):
            if count > 100_000:
                raise RuntimeError("effects keep coming without new input")
            if isinstance(effect, Persist):
                if node.crash_on_next_persist:
                    self._crash(node)  # the write is torn: lost, and nothing after it happens
                    return
                node.disk.wal = encode(effect.record)
            elif isinstance(effect, Broadcast):
                self._send_out(node, None, effect.message)
            elif isinstance(effect, Send):
                self._send_out(node, effect.to, effect.message)
            elif isinstance(effect, Committed):
                self._commit(node, effect)
            elif isinstance(effect, SetTimer):
                node.timer_generation += 1
                self._push(max(node.global_time(effect.deadline_ms), self.now_ms), "tick", (node.node_id, node.timer_generation))
            elif isinstance(effect, RequestPayload):  # the application takes a moment
                self._push(self.now_ms + self.rng.randint(1, 10), "payload", (node.node_id, node.incarnation, effect))
            elif isinstance(effect, EvidenceFound):
                self.evidence_count += 1
                self._check_evidence(core.replica, effect)
            elif isinstance(effect, Note):
                pass  # the validator process logs these; nothing here depends on them

    def _check_evidence(self, replica: Replica, effect: EvidenceFound) -> None:
        """An honest validator must never sign two conflicting votes (WAL + restart logic)."""
        vote = effect.evidence.vote_a
        # the index is into the validator set of the vote's height (governance may have changed
        # the set since: an added validator shifts nobody, a removed one shifts those after it)
        if vote.height <= len(self.validator_sets):
            validators = self.validator_sets[vote.height - 1].validators
            key = validators[vote.validator_index].public_key if vote.validator_index < len(validators) else b""
        else:
            key = replica.validators.public_keys[vote.validator_index]
        culprit = next((node for node in self.nodes if node.public_key == key), None)
        if culprit is None:
            self.safety_violations.append(f"evidence names validator {vote.validator_index}, who is in no set of "
                                          f"height {vote.height}")
            return
        if culprit.byzantine is None:
            self.safety_violations.append(
                f"honest node {culprit.node_id} equivocated at height {vote.height} round {vote.round} type {vote.vote_type}"
            )

    def _commit(self, node: Node, committed: Committed) -> None:
        header = committed.header
        disk = node.disk
        if header.height != len(disk.blocks) + 1:
            self.safety_violations.append(
                f"node {node.node_id} committed height {header.height} after {len(disk.blocks)}: out of order")
            return
        block_hash = compute_block_hash(self.suite, header)
        block = ConsensusBlock(header, encode(committed.block))
        disk.blocks.append((block, block_hash, committed.certificate))
        if node.byzantine is None:
            self._check_commit(node, committed, block_hash)

    def _check_commit(self, node: Node, committed: Committed, block_hash: bytes) -> None:
        header, ledger_block, certificate = committed.header, committed.block, committed.certificate
        height = header.height
        prefix = f"node {node.node_id} height {height}"
        expected_parent = self.genesis_hash if height == 1 else node.disk.blocks[height - 2][1]
        if header.parent_hash != expected_parent:
            self.safety_violations.append(f"{prefix}: hash link broken")
        if (header.payload_hash != ledger_block_hash(self.suite, ledger_block.header)
                or verify_block_body(self.suite, ledger_block) is not None):
            self.safety_violations.append(f"{prefix}: the ledger block is not the payload the header names")
        first = height > len(self.canonical)
        if not first and self.canonical[height - 1] != block_hash:
            self.safety_violations.append(
                f"{prefix}: agreement violated: committed {block_hash.hex()[:16]}, "
                f"another honest node committed {self.canonical[height - 1].hex()[:16]}"
            )
            return
        self._check_ledger(node, committed, prefix)
        if first:
            if height != len(self.canonical) + 1:
                self.safety_violations.append(f"{prefix}: the canonical chain skipped a height")
                return
            self.canonical.append(block_hash)
            ledger = node.ledger
            following = consensus_validator_set(ledger.validators_at(height + 1)) if ledger is not None else None
            self.validator_sets.append(following if following is not None else self.validator_sets[height - 1])
            if following is not None and not {v.public_key for v in following.validators} <= self.allowed_validator_keys:
                self.safety_violations.append(f"{prefix}: the validator set changed in a way governance did not ask for")
            for receipt in ledger_block.receipts:
                if receipt.tx_id not in self.submitted:
                    self.safety_violations.append(f"{prefix}: committed transaction {receipt.tx_id.hex()[:16]} no client submitted")
                earlier = self.committed_txs.setdefault(receipt.tx_id, height)
                if earlier != height:
                    self.safety_violations.append(
                        f"{prefix}: transaction {receipt.tx_id.hex()[:16]} committed again (first at {earlier})")
            if self.governance is not None:
                self.governance.observe(ledger_block)
        try:
            verify_commit_certificate(
                certificate, block_hash, self.validator_sets[height - 1], self.suite, chain_id=self.chain_id, height=height
            )
        except InvalidCertificate as exc:
            self.safety_violations.append(f"{prefix}: commit certificate does not verify: {exc}")

    def _check_ledger(self, node: Node, committed: Committed, prefix: str) -> None:
        """The core applied exactly this block: the ledger's head is it, bound to the header."""
        header, block = committed.header, committed.block
        ledger = node.ledger
        if ledger is None:
            return
        if block.header.height != header.height or block.header.timestamp_ms != header.timestamp_ms:
            self.safety_violations.append(f"{prefix}: the ledger block's height or time differs from its header's")
        if ledger.height != header.height:
            self.safety_violations.append(f"{prefix}: the ledger is at {ledger.height} after the commit")
        elif ledger.head_hash != committed.digest or ledger.store.state_root != block.header.state_root:
            self.safety_violations.append(f"{prefix}: the ledger's head or state root is not the committed block's")

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
        if behaviour == "bad-state-root" and isinstance(message, Proposal) and message.valid_round == -1:
            forged = self._forge_state_root(node, message)
            return [(t, forged if forged is not None else message) for t in targets]
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
        if replica is None:
            raise RuntimeError("a crashed node sends nothing")
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
        if replica is None:
            raise RuntimeError("a crashed node sends nothing")
        chain_id = self.chain_id
        if isinstance(message, Vote):
            other = BLOCK_HASH_NIL if message.block_hash != BLOCK_HASH_NIL else self.rng.randbytes(32)
            signature = node.private_key.sign(
                get_vote_signing_bytes(chain_id, message.vote_type, message.height, message.round, other)
            )
            return Vote(message.vote_type, message.height, message.round, other, message.validator_index, signature)
        if isinstance(message, Proposal) and message.valid_round == -1:
            # a second, valid block for the same height: the same transactions less one, later
            core = node.core
            if core is None or core.ledger.height != message.height - 1:
                return None
            try:
                proposed = core.block_of(message.block.payload)
            except CodecError:
                return None
            txs = list(proposed.txs)
            self.rng.shuffle(txs)
            timestamp_ms = message.block.header.timestamp_ms + 1
            block = core.ledger.build_block(txs[: max(0, len(txs) - 1)], proposer=proposed.header.proposer,
                                            timestamp_ms=timestamp_ms)
            return self._resign_proposal(node, message, encode(block), timestamp_ms)
        return None

    def _forge_state_root(self, node: Node, message: Proposal) -> Proposal | None:
        """The proposal's ledger block with a state root that execution does not produce."""
        core = node.core
        if core is None:
            return None
        try:
            block = core.block_of(message.block.payload)
        except CodecError:
            return None
        wrong = bytes(b ^ 0xFF for b in block.header.state_root)
        forged = LedgerBlock(header=msgspec.structs.replace(block.header, state_root=wrong), txs=block.txs,
                             receipts=block.receipts)
        return self._resign_proposal(node, message, encode(forged), message.block.header.timestamp_ms)

    def _resign_proposal(self, node: Node, message: Proposal, payload: bytes, timestamp_ms: int) -> Proposal:
        header = message.block.header
        # the payload hash a node computes (the ledger block's): a forgery that honest nodes must
        # refuse on re-execution, not on arrival
        forged_header = ConsensusHeader(
            header.chain_id, header.height, header.round, header.parent_hash, header.proposer_index,
            timestamp_ms, header.validator_set_hash, ledger_block_hash(self.suite, decode(payload, LedgerBlock).header),
        )
        block_hash = compute_block_hash(self.suite, forged_header)
        signature = node.private_key.sign(
            get_proposal_signing_bytes(self.chain_id, message.height, message.round, block_hash, -1)
        )
        return Proposal(message.height, message.round, ConsensusBlock(forged_header, payload), -1, (),
                        message.proposer_index, signature)

    def _forge_response(self, node: Node, height: int) -> BlockResponse:
        """A block the network never decided, with a certificate that must not verify."""
        replica = node.replica
        if replica is None:
            raise RuntimeError("a crashed node sends nothing")
        parent = self.genesis_hash if height <= 1 or height - 1 > len(node.disk.blocks) else node.disk.blocks[height - 2][1]
        payload = b"pilotchain sim: a block nobody decided"
        validators = replica.validators
        header = ConsensusHeader(
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
        return BlockResponse((CommittedBlock(ConsensusBlock(header, payload), certificate),), height + self.rng.randint(1, 100))

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


class _Governance:
    """The organisations' admins replace validator ``replaced`` with node ``newcomer`` through
    ``gov`` proposals, as operators would: propose adding it, the others approve; once executed,
    propose removing the replaced one, the others approve. Outstanding transactions are sent
    again every GOVERNANCE_RETRY_MS until their step is done (duplicates are refused)."""

    def __init__(self, world: World, *, replaced: int, newcomer: int) -> None:
        self.world = world
        self.replaced = world.nodes[replaced]
        self.newcomer = world.nodes[newcomer]
        self.step = "idle"
        self.outstanding: list[tuple[bytes, TxBody]] = []
        self._nonce = 0

    def _tx(self, admin: SimIdentity, method: str, args: dict[str, Any]) -> tuple[bytes, TxBody]:
        world = self.world
        self._nonce += 1
        body = TxBody(chain_id=world.consortium.chain_id, signer_certificate=admin.certificate,
                      nonce=b"gov-%d" % self._nonce, expires_at_ms=world.now_ms + TX_TTL_MS,
                      contract="gov", method=method, args=encode_args(args))
        return sign_transaction(world.suite, admin.key, body), body

    def _send(self, txs: list[tuple[bytes, TxBody]]) -> None:
        self.outstanding = txs
        self.retry()

    def begin(self) -> None:
        if self.step != "idle":
            return
        genesis = self.world.consortium.genesis
        power = next((v.power for v in genesis.validators if v.name == self.replaced.name), 1)
        admin = self.world.consortium.admins[0]
        self.step = "adding"
        self._send([self._tx(admin, "propose", {"kind": "add_validator", "payload": {
            "name": self.newcomer.name, "org": admin.org, "public_key": self.newcomer.public_key, "power": power}})])
        self.world._push(self.world.now_ms + GOVERNANCE_RETRY_MS, "gov-retry", ())

    def retry(self) -> None:
        world = self.world
        if not self.outstanding or self.step == "done":
            return
        live = [node for node in world.nodes if node.core is not None]
        for raw, body in self.outstanding:
            world.submit(raw, body, targets=live)

    def observe(self, block: LedgerBlock) -> None:
        """React to the governance events of a newly committed (canonical) block."""
        admins = self.world.consortium.admins
        for receipt in block.receipts:
            for event in receipt.events:
                if event.contract != "gov":
                    continue
                try:
                    data = decode_args(event.data)
                except CodecError:
                    continue
                if not isinstance(data, dict):
                    continue
                kind, proposal_id = data.get("kind"), data.get("id")
                if event.name == "proposed" and isinstance(proposal_id, int):
                    wanted = {"adding": "add_validator", "removing": "remove_validator"}.get(self.step)
                    if kind == wanted:
                        self._send([self._tx(admin, "approve", {"id": proposal_id}) for admin in admins[1:]])
                elif event.name == "executed" and kind == "add_validator" and self.step == "adding":
                    self.step = "removing"
                    self._send([self._tx(admins[0], "propose", {"kind": "remove_validator",
                                                                "payload": {"name": self.replaced.name}})])
                elif event.name == "executed" and kind == "remove_validator" and self.step == "removing":
                    self.step = "done"
                    self.outstanding = []
