"""The ledger: blocks built, checked, committed and read back with proofs.

Theory of operation
-------------------
:class:`Ledger` joins the pure pieces (transaction checks, execution, Merkle roots, block
hashing) to the embedded store (:mod:`pilotchain.storage`). Three verbs move it forward:

* :meth:`Ledger.build_block` (the proposer): check each candidate transaction, drop the ones that
  cannot be included (a malformed, badly signed, duplicate or expired one), execute the rest on
  the committed state, and return a :class:`~pilotchain.ledger.block.Block` whose header carries
  the transaction, receipt and post-execution state roots;
* :meth:`Ledger.verify_block` (every validator, and block sync): re-execute and compare every root;
  a mismatch raises :class:`BlockInvalid` and changes nothing;
* :meth:`Ledger.commit_block`: store block, receipts and state diff atomically (the store's
  commit is the single atomic point; a crash at any instant recovers to height h or h + 1).

Execution results are cached by block hash between verify and commit, so a validator executes a
block once. The only clock is the block's proposer timestamp.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pilotchain.codec import CodecError, decode, encode
from pilotchain.contracts.governance import governed_chain_params, validator_set_at
from pilotchain.contracts.membership import GovernedAuthenticator
from pilotchain.contracts.resolver import ChainContracts
from pilotchain.crypto import Suite, get_suite
from pilotchain.errors import CoreError, InvariantBroken
from pilotchain.ledger.block import (
    BLOCK_VERSION,
    ZERO_HASH,
    Block,
    BlockHeader,
    Receipt,
    TxProof,
    block_hash,
    make_tx_proof,
    receipt_root,
    tx_root,
)
from pilotchain.ledger.commitment import StateProof
from pilotchain.ledger.execution import (
    STATE_KEY_BYTES_MAX,
    BlockOverlay,
    Caller,
    ContractError,
    ContractResolver,
    ContractState,
    TxContext,
    execute_transactions,
)
from pilotchain.ledger.genesis import (
    GENESIS_STATE_KEY,
    ChainParams,
    Genesis,
    ValidatorInfo,
    validator_roster_hash,
)
from pilotchain.ledger.tx import (
    RejectCode,
    SignedTx,
    TxLimits,
    TxRejected,
    check_transaction,
    recheck_transaction,
)
from pilotchain.storage import LedgerStore

__all__ = [
    "BlockInvalid",
    "ChainRules",
    "GenesisRules",
    "GovernedRules",
    "Ledger",
    "PendingChecks",
    "SignerAuthenticator",
    "TxRecord",
    "maintenance_phase",
    "open_governed_ledger",
]

#: Executed-but-uncommitted blocks kept between verify and commit.
PREPARED_BLOCKS_MAX = 8
#: Transactions (wire bytes) whose signature this node already verified (mempool, then block).
VERIFIED_SIGNATURES_MAX = 200_000
#: Of those, the most recent kept decoded, so a block of mempool transactions is not decoded again
#: (the mempool's own bound: a transaction normally waits there between admission and block).
DECODED_TXS_MAX = 50_000


class BlockInvalid(CoreError):
    """A block that does not follow from the chain (its reason says which check failed)."""


class SignerAuthenticator(Protocol):
    """Turns a transaction's signer certificate into a checked identity (the membership layer)."""

    def public_key_of(self, certificate: bytes, now_ms: int) -> bytes:
        """SPKI DER of the signer's key; raises TxRejected when no member vouches for it then."""
        ...

    def caller_of(self, certificate: bytes, now_ms: int) -> Caller:
        """The authenticated caller; raises TxRejected (UNKNOWN_SIGNER / SIGNER_REJECTED)."""
        ...

    def reader(self, certificate: bytes, now_ms: int) -> tuple[bytes, Caller]:
        """Key and caller of a member who may read through a gateway (client, admin or auditor)."""
        ...


@dataclass(frozen=True, slots=True)
class TxRecord:
    """A committed transaction with everything a client needs to check it against a header."""

    tx_raw: bytes
    receipt: Receipt
    header: BlockHeader
    proof: TxProof


@dataclass(frozen=True, slots=True)
class _Prepared:
    block: Block
    block_hash: bytes
    state: Any  # the store's prepared state diff
    txs: tuple[SignedTx, ...]


class _Decoded:
    __slots__ = ("tx", "limits", "verified")

    def __init__(self, tx: SignedTx, limits: TxLimits, verified: bool) -> None:
        self.tx = tx
        self.limits = limits
        self.verified = verified


@dataclass
class PendingChecks:
    """Transactions checked up to their signatures (:meth:`Ledger.precheck_txs`)."""

    #: one per input: the decoded transaction, or why it was refused
    results: list[SignedTx | TxRejected]
    #: (index in results, transaction, signer public key, wire bytes) still to verify
    verify: list[tuple[int, SignedTx, bytes, bytes]]
    #: committed height when checked (a later commit may have included some of them)
    height: int

    def signatures(self) -> list[tuple[bytes, bytes, bytes]]:
        """``(public key, message, signature)`` for :meth:`Suite.verify_batch`, in order."""
        return [(public_key, tx.signed_message(), tx.signature) for _, tx, public_key, _ in self.verify]


class ChainRules(Protocol):
    """What committed state says about the chain itself: the validators that certify a height
    and the parameters in force for the next block. Deterministic functions of the state."""

    def validators_at(self, state: LedgerStore, height: int) -> tuple[ValidatorInfo, ...]: ...

    def params(self, state: LedgerStore) -> ChainParams: ...


class GenesisRules:
    """The genesis validators and parameters, forever (a chain without governance)."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis

    def validators_at(self, state: LedgerStore, height: int) -> tuple[ValidatorInfo, ...]:
        return self.genesis.validators

    def params(self, state: LedgerStore) -> ChainParams:
        return self.genesis.params


class GovernedRules:
    """The validator schedule and parameters that the ``gov`` contract keeps in committed state
    (genesis's until governance changes them)."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis

    def validators_at(self, state: LedgerStore, height: int) -> tuple[ValidatorInfo, ...]:
        return validator_set_at(self.genesis, state, height)

    def params(self, state: LedgerStore) -> ChainParams:
        return governed_chain_params(self.genesis, state)


class Ledger:
    def __init__(self, store: LedgerStore, genesis: Genesis, authenticator: SignerAuthenticator,
                 registry: ContractResolver, rules: ChainRules | None = None, suite: Suite | None = None) -> None:
        self.store = store
        if store.limits.key_bytes_max < STATE_KEY_BYTES_MAX:
            raise InvariantBroken(f"the store holds keys of at most {store.limits.key_bytes_max} bytes, but execution "
                                  f"writes keys of up to {STATE_KEY_BYTES_MAX}: a block could not be stored")
        self.genesis = genesis
        if suite is not None and suite.name != genesis.suite:
            raise ValueError(f"the genesis names suite {genesis.suite!r}, not {suite.name!r}")
        #: the genesis suite (an equivalent object may be passed, e.g. the simulator's caching one)
        self.suite: Suite = suite if suite is not None else get_suite(genesis.suite)
        self.chain_id = genesis.chain_id
        self.authenticator = authenticator
        self.registry = registry
        #: who certifies a height and which parameters are in force (genesis's, or governance's
        #: as committed in state: :class:`GovernedRules`)
        self.rules: ChainRules = rules if rules is not None else GenesisRules(genesis)
        self._params_cache: tuple[int, ChainParams] | None = None
        self._head_cache: BlockHeader | None = None
        #: the decoded transactions of the block last committed (node shells publish events
        #: from them without decoding every transaction again)
        self.last_committed_txs: tuple[SignedTx, ...] = ()
        self._prepared: OrderedDict[bytes, _Prepared] = OrderedDict()
        # digest of the wire bytes -> None; a signature is a pure function of the bytes and the
        # key the certificate names, so a verified one need not be verified again (bounded,
        # FIFO; keyed by a 32-byte digest, not the bytes, so the bound is ~10 MiB, not ~90)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        # wire bytes -> the transaction decoded from them (its ``raw`` is the key object itself,
        # so the key costs no memory), the limits it was checked under and whether its signature
        # verified. Decoding is a pure function of the bytes, so a block validator reuses the
        # admission's decode; what depends on time, membership or committed state (expiry, the
        # signer's certificate, duplicates) is checked again every time.
        self._decoded: OrderedDict[bytes, _Decoded] = OrderedDict()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        genesis: Genesis,
        authenticator: SignerAuthenticator,
        registry: ContractResolver,
        *,
        rules: ChainRules | None = None,
        maintenance_phase: tuple[int, int] = (0, 0),
        durable: bool = True,
        suite: Suite | None = None,
    ) -> Ledger:
        """Open (recovering) or create the ledger at ``path``; writes block 0 when empty.
        ``maintenance_phase``: when the store does its heavy commits (``LedgerStore.open``);
        ``durable=False`` (the simulator only): commits are not fsynced."""
        genesis.check()
        suite = suite if suite is not None else get_suite(genesis.suite)
        store = LedgerStore.open(path, suite.hash, bucket_bits=genesis.params.state_bucket_bits,
                                 maintenance_phase=maintenance_phase, durable=durable)
        ledger = cls(store, genesis, authenticator, registry, rules, suite)
        if store.height < 0:
            ledger._commit_genesis()
        else:
            stored = store.get(GENESIS_STATE_KEY)
            if stored != encode(genesis):
                store.close()
                raise BlockInvalid(
                    f"the ledger at {path} belongs to another genesis; use the genesis it was created with or a new folder"
                )
        return ledger

    def close(self) -> None:
        self.store.close()

    def _commit_genesis(self) -> None:
        writes = {GENESIS_STATE_KEY: encode(self.genesis)}
        prepared = self.store.prepare_state(writes)
        header = BlockHeader(
            version=BLOCK_VERSION,
            chain_id=self.chain_id,
            height=0,
            parent_hash=ZERO_HASH,
            proposer="genesis",
            timestamp_ms=self.genesis.genesis_time_ms,
            tx_count=0,
            tx_root=tx_root(self.suite, []),
            receipt_root=receipt_root(self.suite, []),
            state_root=prepared.root,
            validator_set_hash=validator_roster_hash(self.suite.hash, self.genesis.validators),
        )
        block = Block(header=header, txs=(), receipts=())
        self.store.commit_block(0, block_hash(self.suite, header), encode(block), [], prepared)

    # ------------------------------------------------------------------ reading

    @property
    def height(self) -> int:
        return self.store.height

    @property
    def head_hash(self) -> bytes:
        digest = self.store.last_block_hash
        if not (digest is not None):
            raise InvariantBroken("an open ledger always has block 0")
        return digest

    @property
    def params(self) -> ChainParams:
        """Chain parameters for the next block (read once per committed height)."""
        cached = self._params_cache
        if cached is None or cached[0] != self.store.height:
            cached = self._params_cache = (self.store.height, self.rules.params(self.store))
        return cached[1]

    def validators_at(self, height: int) -> tuple[ValidatorInfo, ...]:
        """The validators that certify block ``height`` (as committed state says now)."""
        return self.rules.validators_at(self.store, height)

    def validator_set_hash_at(self, height: int) -> bytes:
        return validator_roster_hash(self.suite.hash, self.validators_at(height))

    def get_block(self, height: int) -> Block | None:
        raw = self.store.get_block(height)
        return None if raw is None else decode(raw, Block)

    def head(self) -> BlockHeader:
        """The committed head's header (decoded once per height, not once per call)."""
        cached = self._head_cache
        if cached is not None and cached.height == self.store.height:
            return cached
        block = self.get_block(self.height)
        if not (block is not None):
            raise InvariantBroken("the committed head block must be readable")
        self._head_cache = block.header
        return block.header

    def iter_blocks(self, start: int, stop: int) -> Iterator[Block]:
        for _height, raw in self.store.iter_blocks(start, stop):
            yield decode(raw, Block)

    def get_transaction(self, tx_id: bytes) -> TxRecord | None:
        location = self.store.locate_tx(tx_id)
        if location is None:
            return None
        height, index = location
        block = self.get_block(height)
        if not (block is not None and index < len(block.txs)):
            raise InvariantBroken("tx index points at a missing block")
        return TxRecord(
            tx_raw=block.txs[index],
            receipt=block.receipts[index],
            header=block.header,
            proof=make_tx_proof(self.suite, block, index),
        )

    def read_state(self, contract: str, key: bytes) -> tuple[bytes | None, StateProof]:
        """A contract's value and the proof that it is (or is not) under the head's state root."""
        return self.store.get_with_proof(contract.encode() + b"\x00" + key)

    def query(self, contract: str, method: str, args: Any, caller: Caller | None = None) -> Any:
        """A read-only call against the head state: runs the method, discards its writes.

        Raises TxRejected (UNKNOWN_CONTRACT, BAD_ARGUMENTS, EXECUTION_FAILED, ...)."""
        target = self.registry.get(contract, self.store)
        if target is None:
            raise TxRejected(RejectCode.UNKNOWN_CONTRACT, f"no contract named {contract!r} is active")
        head = self.head()
        state = ContractState(contract, BlockOverlay(self.store))
        ctx = TxContext(
            chain_id=self.chain_id,
            height=head.height,
            timestamp_ms=head.timestamp_ms,
            tx_id=b"",
            caller=caller or Caller(name="anonymous", org="", roles=(), certificate_id=b""),
        )
        try:
            result, _steps = target.call(method, args, ctx, state)
        except ContractError as exc:
            raise TxRejected(exc.code, str(exc)) from exc
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise TxRejected(RejectCode.BAD_ARGUMENTS, f"{type(exc).__name__}: {exc}") from exc
        return result

    # ------------------------------------------------------------------ building and checking

    def check_tx(self, raw: bytes, now_ms: int, *, verify_signature: bool = True) -> SignedTx:
        """Stateless and duplicate checks a transaction passes before mempool or block."""
        signer = self._signer_key_at(now_ms)
        tx, verified = self._check_tx(raw, now_ms, self.params.tx_limits, signer)
        if verify_signature and not verified:
            if not self.suite.verify(signer(tx.body.signer_certificate), tx.signed_message(), tx.signature):
                raise TxRejected(RejectCode.BAD_SIGNATURE, "signature does not verify against the signer's certificate key",
                                 tx.tx_id)
            self._mark_verified(raw)
        if self.store.locate_tx(tx.tx_id) is not None:
            raise TxRejected(RejectCode.DUPLICATE, "this transaction is already committed", tx.tx_id)
        return tx

    def _signer_key_at(self, now_ms: int) -> Callable[[bytes], bytes]:
        authenticator = self.authenticator
        return lambda certificate: authenticator.public_key_of(certificate, now_ms)

    def _check_tx(self, raw: bytes, now_ms: int, limits: TxLimits,
                  signer: Callable[[bytes], bytes]) -> tuple[SignedTx, bool]:
        """Every check but the signature and duplicates; the transaction and whether its
        signature is known to verify."""
        if type(raw) is not bytes:
            raw = bytes(raw)  # a bytearray or memoryview: the cache is keyed by immutable bytes
        entry = self._decoded.get(raw)
        if entry is not None and entry.limits == limits:
            # the same bytes decoded and passed the shape checks under these limits before
            tx = entry.tx
            recheck_transaction(self.suite, tx, chain_id=self.chain_id, now_ms=now_ms, signer_public_key=signer,
                                limits=limits, verify_signature=False)
            return tx, entry.verified
        tx = check_transaction(self.suite, raw, chain_id=self.chain_id, now_ms=now_ms, signer_public_key=signer,
                               limits=limits, verify_signature=False)
        verified = _verified_key(raw) in self._verified
        self._decoded[tx.raw] = _Decoded(tx, limits, verified)
        if len(self._decoded) > DECODED_TXS_MAX:
            self._decoded.popitem(last=False)
        return tx, verified

    def _mark_verified(self, raw: bytes) -> None:
        entry = self._decoded.get(raw if type(raw) is bytes else bytes(raw))
        if entry is not None:
            entry.verified = True
        self._verified[_verified_key(raw)] = None
        if len(self._verified) > VERIFIED_SIGNATURES_MAX:
            self._verified.popitem(last=False)

    def check_txs(self, raws: Sequence[bytes], now_ms: int) -> list[SignedTx | TxRejected]:
        """:meth:`check_tx` for many: signatures not yet verified are checked as one batch
        (spread over the cores by the suite). One result per input, in order."""
        pending = self.precheck_txs(raws, now_ms)
        return self.finish_checks(pending, self.suite.verify_batch(pending.signatures()))

    def precheck_txs(self, raws: Sequence[bytes], now_ms: int) -> PendingChecks:
        """The first half of :meth:`check_txs`: every check but the signatures not verified yet.

        A node shell verifies ``pending.signatures()`` where it likes (off its event loop) and
        passes the verdicts, in order, to :meth:`finish_checks`."""
        verify: list[tuple[int, SignedTx, bytes, bytes]] = []
        results: list[SignedTx | TxRejected] = []
        limits = self.params.tx_limits
        signer = self._signer_key_at(now_ms)
        for raw in raws:
            try:
                tx, verified = self._check_tx(raw, now_ms, limits, signer)
            except TxRejected as exc:
                results.append(exc)
                continue
            results.append(tx)
            if not verified:
                verify.append((len(results) - 1, tx, signer(tx.body.signer_certificate), raw))
        duplicates = self._refuse_committed(results)
        verify = [item for item in verify if item[0] not in duplicates]
        return PendingChecks(results=results, verify=verify, height=self.store.height)

    def finish_checks(self, pending: PendingChecks, verdicts: Sequence[bool]) -> list[SignedTx | TxRejected]:
        """The second half of :meth:`check_txs`: apply the signature verdicts; if blocks were
        committed since :meth:`precheck_txs`, look for duplicates again."""
        results = pending.results
        if len(verdicts) != len(pending.verify):
            raise ValueError(f"{len(verdicts)} verdicts for {len(pending.verify)} signatures")
        for (index, tx, _, raw), ok in zip(pending.verify, verdicts, strict=True):
            if ok:
                self._mark_verified(raw)
            else:
                results[index] = TxRejected(
                    RejectCode.BAD_SIGNATURE, "signature does not verify against the signer's certificate key", tx.tx_id
                )
        if self.store.height != pending.height:
            self._refuse_committed(results)
        return results

    def _refuse_committed(self, results: list[SignedTx | TxRejected]) -> set[int]:
        """Replace every already committed transaction in ``results`` by a DUPLICATE refusal."""
        checked = [(index, tx) for index, tx in enumerate(results) if isinstance(tx, SignedTx)]
        committed = self.store.locate_txs([tx.tx_id for _, tx in checked])
        duplicates = {index for (index, _), where in zip(checked, committed, strict=True) if where is not None}
        for index in duplicates:
            duplicate = results[index]
            if not (isinstance(duplicate, SignedTx)):
                raise InvariantBroken('invariant broken: isinstance(duplicate, SignedTx)')
            results[index] = TxRejected(RejectCode.DUPLICATE, "this transaction is already committed",
                                        duplicate.tx_id)
        return duplicates

    def build_block(
        self,
        candidates: Sequence[bytes],
        *,
        proposer: str,
        timestamp_ms: int,
        on_rejected: Callable[[bytes, TxRejected], None] | None = None,
    ) -> Block:
        """The next block from ``candidates`` (in order), executed on the committed state."""
        params = self.params
        head = self.head()
        if timestamp_ms <= head.timestamp_ms:
            timestamp_ms = head.timestamp_ms + 1
        chosen: list[SignedTx] = []
        seen: set[bytes] = set()
        size = 0
        limited: list[bytes] = []
        for raw in candidates:
            if len(limited) >= params.block_txs_max or size + len(raw) > params.block_bytes_max:
                break
            limited.append(raw)
            size += len(raw)
        for raw, checked in zip(limited, self.check_txs(limited, timestamp_ms), strict=True):
            if isinstance(checked, SignedTx) and checked.tx_id in seen:
                checked = TxRejected(RejectCode.DUPLICATE, "the same transaction twice in one block", checked.tx_id)
            if isinstance(checked, TxRejected):
                if on_rejected is not None:
                    on_rejected(raw, checked)
                continue
            seen.add(checked.tx_id)
            chosen.append(checked)
        return self._execute(chosen, proposer=proposer, timestamp_ms=timestamp_ms, parent=head)

    def _execute(self, txs: Sequence[SignedTx], *, proposer: str, timestamp_ms: int,
                 parent: BlockHeader, known_roots: tuple[bytes, bytes] | None = None) -> Block:
        """Execute ``txs`` on the committed state: the block they make. ``known_roots``: the
        transaction and receipt roots when the caller already holds them for these very
        transactions and the receipts it will compare (so they are not hashed twice)."""
        with self.store.snapshot() as committed:
            result = execute_transactions(
                txs,
                base=committed,
                registry=self.registry,
                chain_id=self.chain_id,
                height=parent.height + 1,
                timestamp_ms=timestamp_ms,
                caller_of=lambda tx: self.authenticator.caller_of(tx.body.signer_certificate, timestamp_ms),
            )
        prepared_state = self.store.prepare_state(result.writes)
        raw_txs = tuple(tx.raw for tx in txs)
        roots = known_roots or (tx_root(self.suite, raw_txs), receipt_root(self.suite, result.receipts))
        header = BlockHeader(
            version=BLOCK_VERSION,
            chain_id=self.chain_id,
            height=parent.height + 1,
            parent_hash=block_hash(self.suite, parent),
            proposer=proposer,
            timestamp_ms=timestamp_ms,
            tx_count=len(raw_txs),
            tx_root=roots[0],
            receipt_root=roots[1],
            state_root=prepared_state.root,
            validator_set_hash=self.validator_set_hash_at(parent.height + 1),
        )
        block = Block(header=header, txs=raw_txs, receipts=result.receipts)
        self._remember(_Prepared(block=block, block_hash=block_hash(self.suite, header), state=prepared_state,
                                 txs=tuple(txs)))
        return block

    def _remember(self, prepared: _Prepared) -> None:
        self._prepared[prepared.block_hash] = prepared
        while len(self._prepared) > PREPARED_BLOCKS_MAX:
            self._prepared.popitem(last=False)

    def verify_block(self, block: Block, *, body_checked: bool = False) -> bytes:
        """Re-execute ``block`` on the committed state; its hash when every root matches.

        ``body_checked``: the caller checked the body against the header's counts and roots
        (:func:`~pilotchain.ledger.block.verify_block_body`, as the node core does when it computes
        a proposal's payload hash), so re-execution takes the header's transaction and receipt
        roots instead of hashing the same bytes again: the transactions are the body's, in order,
        and the receipts re-execution produces are compared with the body's one by one."""
        header = block.header
        digest = block_hash(self.suite, header)
        cached = self._prepared.get(digest)
        if cached is not None and cached.block == block and cached.state.base_root == self.store.state_root:
            return digest
        head = self.head()
        checks = [
            (header.version == BLOCK_VERSION, f"unknown block version {header.version}"),
            (header.chain_id == self.chain_id, f"block is for chain {header.chain_id!r}"),
            (header.height == head.height + 1, f"block height {header.height}, expected {head.height + 1}"),
            (header.parent_hash == block_hash(self.suite, head), "parent hash does not match the head block"),
            (header.timestamp_ms > head.timestamp_ms, "timestamp does not advance past the parent's"),
            (header.consensus_data == b"", "consensus_data is reserved and must be empty"),
            (header.validator_set_hash == self.validator_set_hash_at(header.height),
             "validator set hash does not match the validators in force at this height"),
            (len(block.txs) <= self.params.block_txs_max, "too many transactions"),
            (sum(len(raw) for raw in block.txs) <= self.params.block_bytes_max, "transactions exceed the block size"),
        ]
        for ok, reason in checks:
            if not ok:
                raise BlockInvalid(reason)
        # the counts now; the transaction and receipt roots are compared below with the header
        # re-execution builds (computing them here as well doubled the hashing of every block)
        if header.tx_count != len(block.txs) or len(block.receipts) != len(block.txs):
            raise BlockInvalid(f"header says {header.tx_count} transactions, body has {len(block.txs)} "
                               f"and {len(block.receipts)} receipts")
        txs: list[SignedTx] = []
        seen: set[bytes] = set()
        for tx in self.check_txs(block.txs, header.timestamp_ms):
            if isinstance(tx, TxRejected):
                raise BlockInvalid(f"block includes a transaction that may not be included: {tx}")
            if tx.tx_id in seen:
                raise BlockInvalid("block includes the same transaction twice")
            seen.add(tx.tx_id)
            txs.append(tx)
        rebuilt = self._execute(txs, proposer=header.proposer, timestamp_ms=header.timestamp_ms,
                                parent=head, known_roots=(header.tx_root, header.receipt_root) if body_checked else None)
        if rebuilt.header != header or rebuilt.receipts != block.receipts:
            differing = [
                name for name in ("receipt_root", "state_root", "tx_root")
                if getattr(rebuilt.header, name) != getattr(header, name)
            ]
            raise BlockInvalid(f"re-execution disagrees with the block on {', '.join(differing) or 'receipts'}")
        return digest

    # ------------------------------------------------------------------ committing

    def commit_block(self, block: Block, certificate: bytes | None = None, *, encoded: bytes | None = None) -> bytes:
        """Verify (unless already verified) and store ``block`` atomically; returns its hash.

        ``encoded``: the block's canonical bytes when the caller has them (a consensus payload
        that decoded strictly to ``block``), so they are not produced again."""
        digest = self.verify_block(block)
        prepared = self._prepared.pop(digest)
        tx_ids = [r.tx_id for r in block.receipts]
        block_bytes = encode(block) if encoded is None else encoded
        self.store.commit_block(block.header.height, digest, block_bytes, tx_ids, prepared.state,
                                certificate=certificate)
        self._prepared.clear()  # every other prepared block was built on the old head
        # the new head is this block: reading it back from disk and decoding it (megabytes at a
        # few thousand transactions) for the next build or verify was a tenth of a node's time
        self._head_cache = block.header
        self.last_committed_txs = prepared.txs
        return digest


def _verified_key(raw: bytes) -> bytes:
    """Covers the signature too (unlike the transaction id), so a forged copy never hits."""
    return hashlib.blake2b(raw, digest_size=32).digest()


def decode_block(raw: bytes) -> Block:
    try:
        return decode(raw, Block)
    except CodecError as exc:
        raise BlockInvalid(f"not a canonical block: {exc}") from exc


def open_governed_ledger(
    data_dir: str | os.PathLike[str],
    genesis: Genesis,
    *,
    authenticator: SignerAuthenticator | None = None,
    registry: ContractResolver | None = None,
    node_name: str | None = None,
    durable: bool = True,
    suite: Suite | None = None,
) -> Ledger:
    """A ledger whose contracts (kv, gov, deployed Python contracts), membership (genesis plus
    governance's changes), validators and parameters are the chain's, as every node must use
    them. ``node_name`` spreads this node's storage maintenance against the other validators'
    (:func:`maintenance_phase`)."""
    auth = authenticator if authenticator is not None else GovernedAuthenticator(genesis)
    ledger = Ledger.open(data_dir, genesis, auth, registry if registry is not None else ChainContracts(),
                         rules=GovernedRules(genesis), maintenance_phase=maintenance_phase(genesis, node_name),
                         durable=durable, suite=suite)
    if isinstance(auth, GovernedAuthenticator):
        auth.bind(ledger.store)
    return ledger


def maintenance_phase(genesis: Genesis, node_name: str | None) -> tuple[int, int]:
    """This node's slot among the genesis validators (by their order there), so that no two of
    them merge their tx index or checkpoint bucket hashes at the same height: every validator
    commits every height, and four stores syncing megabytes at once stalled the network for
    ~0.4 s every 64 blocks on a long chain. A node that is not a genesis validator takes a slot
    from its name's CRC. Local scheduling only: nothing stored or replicated depends on it."""
    if node_name is None:
        return (0, 0)
    names = [validator.name for validator in genesis.validators]
    slots = max(1, len(names))
    slot = names.index(node_name) if node_name in names else zlib.crc32(node_name.encode()) % slots
    return LedgerStore.spread_phases(slot, slots)
