"""State commitment: a bucket tree (Fabric 0.6 style) with proofs of values and of absence.

Theory of operation
-------------------
The world state is a map ``bytes -> bytes``. Every key belongs to exactly one of
``2**bucket_bits`` buckets::

    bucket_of(key) = int.from_bytes(hash_fn(key)[:4], "big") >> (32 - bucket_bits)

``bucket_bits`` is fixed at genesis. A bucket's *leaf hash* commits to its whole content::

    leaf_hash(entries) = hash_fn(0x00 || encode(entries))

where ``entries`` is the list of ``(key, value)`` pairs of that bucket sorted by key (bytewise,
strictly increasing) and ``encode`` is the canonical codec (a MessagePack array of 2-arrays of
``bin``). The empty bucket hashes to the constant ``leaf_hash([])``. The root is a complete
binary Merkle tree over the ``2**bucket_bits`` leaf hashes, in bucket order::

    node_hash(left, right) = hash_fn(0x01 || left || right)

The 0x00 / 0x01 prefixes separate leaves from internal nodes, so no leaf can pose as a node and
a proof cannot claim a different tree depth. The tree is stored as a heap-ordered array: index 1
is the root, node ``i`` has children ``2i`` and ``2i+1``, bucket ``b`` is the leaf at index
``2**bucket_bits + b``. Untouched subtrees are the precomputed "empty subtree" hashes, so a
fresh tree costs ``bucket_bits`` hashes, not ``2**bucket_bits``.

Updating the state recomputes only the leaf hashes of the buckets that were written and the
internal nodes on their paths to the root (:meth:`BucketTree.compute_update`, pure).

A proof (:class:`StateProof`) for a key is the full entry list of its bucket plus the
``bucket_bits`` sibling hashes from the leaf up. :func:`verify_state_proof` recomputes the root
from them; because the entry list is the *whole* bucket, strictly sorted, it proves absence as
well as presence. Proofs are canonical Records: ship them with ``codec.encode`` and read them
with ``codec.decode(data, StateProof)``.

Cost (the reason for this design in Python): a block writing N keys costs about N bucket reads
and re-hashes plus ``N * (bucket_bits - log2 N) + N`` node hashes, each a single C-level hash
call over 65 bytes. The known weakness: a bucket's cost and proof size grow with the number of
keys in it, and keys can be ground to land in one bucket (see docs/storage.md).

This module is pure: no I/O, clock or randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from pilotchain.codec import Record, encode
from pilotchain.errors import InvariantBroken

__all__ = [
    "HashFn",
    "StateProof",
    "BucketTree",
    "BUCKET_BITS_MIN",
    "BUCKET_BITS_MAX",
    "DIGEST_BYTES",
    "bucket_of",
    "leaf_hash",
    "leaf_hash_of_row",
    "node_hash",
    "empty_subtree_hashes",
    "compute_state_root",
    "verify_state_proof",
]

HashFn = Callable[[bytes], bytes]

#: Smallest and largest supported ``bucket_bits`` (2**20 buckets = 2M cached nodes, 64 MiB).
BUCKET_BITS_MIN = 1
BUCKET_BITS_MAX = 20
#: Every supported suite hash (SHA-256, SM3) yields 32 bytes.
DIGEST_BYTES = 32

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_EMPTY_ROW = encode(())


class StateProof(Record, frozen=True):
    """Everything a client needs to check one key's value (or absence) against a state root."""

    bucket_bits: int
    bucket: int
    #: the bucket's complete content, sorted by key, keys strictly increasing
    entries: tuple[tuple[bytes, bytes], ...]
    #: sibling hashes from the leaf level up to (excluding) the root; ``bucket_bits`` of them
    siblings: tuple[bytes, ...]


def check_bucket_bits(bucket_bits: int) -> None:
    """Raise ``ValueError`` unless ``bucket_bits`` is a supported tree depth."""
    if not isinstance(bucket_bits, int) or isinstance(bucket_bits, bool):
        raise ValueError(f"bucket_bits must be an int, got {type(bucket_bits).__name__}")
    if not BUCKET_BITS_MIN <= bucket_bits <= BUCKET_BITS_MAX:
        raise ValueError(
            f"bucket_bits is {bucket_bits}, supported {BUCKET_BITS_MIN}..{BUCKET_BITS_MAX}"
        )


def bucket_of(key: bytes, bucket_bits: int, hash_fn: HashFn) -> int:
    """The bucket holding ``key``: the top ``bucket_bits`` bits of ``hash_fn(key)``."""
    return int.from_bytes(hash_fn(key)[:4], "big") >> (32 - bucket_bits)


def leaf_hash(entries: Sequence[tuple[bytes, bytes]], hash_fn: HashFn) -> bytes:
    """The hash of one bucket's sorted ``(key, value)`` entries."""
    return hash_fn(_LEAF_PREFIX + encode(entries))


def leaf_hash_of_row(row: bytes | None, hash_fn: HashFn) -> bytes:
    """:func:`leaf_hash` from the entries' canonical encoding (None: the empty bucket)."""
    return hash_fn(_LEAF_PREFIX + (row if row is not None else _EMPTY_ROW))


def node_hash(left: bytes, right: bytes, hash_fn: HashFn) -> bytes:
    """The hash of an internal node from its children's hashes."""
    return hash_fn(_NODE_PREFIX + left + right)


def empty_subtree_hashes(bucket_bits: int, hash_fn: HashFn) -> list[bytes]:
    """``result[h]`` is the hash of an all-empty subtree of height ``h`` (0 = an empty leaf)."""
    hashes = [leaf_hash((), hash_fn)]
    for _ in range(bucket_bits):
        hashes.append(node_hash(hashes[-1], hashes[-1], hash_fn))
    return hashes


class BucketTree:
    """The in-memory Merkle tree over bucket hashes (heap-ordered array of node hashes)."""

    __slots__ = ("bucket_bits", "_hash_fn", "_nodes", "_leaf_base")

    def __init__(self, bucket_bits: int, hash_fn: HashFn) -> None:
        check_bucket_bits(bucket_bits)
        self.bucket_bits = bucket_bits
        self._hash_fn = hash_fn
        self._leaf_base = 1 << bucket_bits
        empty = empty_subtree_hashes(bucket_bits, hash_fn)
        if not (all(len(h) == DIGEST_BYTES for h in empty)):
            raise InvariantBroken("hash_fn must return 32-byte digests")
        nodes: list[bytes] = [b""]  # index 0 is unused
        for depth in range(bucket_bits + 1):
            nodes.extend([empty[bucket_bits - depth]] * (1 << depth))
        self._nodes = nodes
        if not (len(nodes) == 2 * self._leaf_base):
            raise InvariantBroken('invariant broken: len(nodes) == 2 * self._leaf_base')

    @property
    def root(self) -> bytes:
        return self._nodes[1]

    @property
    def node_count(self) -> int:
        """Number of nodes (leaves included); valid indexes are ``1 .. node_count``."""
        return len(self._nodes) - 1

    def node(self, index: int) -> bytes:
        if not (1 <= index < len(self._nodes)):
            raise InvariantBroken(f"invariant broken: unexpected index {index!r}")
        return self._nodes[index]

    def leaf_index(self, bucket: int) -> int:
        if not (0 <= bucket < self._leaf_base):
            raise InvariantBroken(f"invariant broken: unexpected bucket {bucket!r}")
        return self._leaf_base + bucket

    def siblings(self, bucket: int) -> tuple[bytes, ...]:
        """The proof path for ``bucket``: sibling hashes from the leaf level upward."""
        index = self.leaf_index(bucket)
        path = []
        while index > 1:
            path.append(self._nodes[index ^ 1])
            index >>= 1
        if not (len(path) == self.bucket_bits):
            raise InvariantBroken('invariant broken: len(path) == self.bucket_bits')
        return tuple(path)

    def compute_update(self, leaves: Mapping[int, bytes]) -> dict[int, bytes]:
        """The nodes that change when ``leaves`` (bucket -> new leaf hash) are set. Pure.

        Returns ``{node index: new hash}`` for changed leaves and every ancestor recomputed
        (the root, index 1, is included whenever anything changed).
        """
        nodes = self._nodes
        changes: dict[int, bytes] = {}
        for bucket, digest in leaves.items():
            if not (len(digest) == DIGEST_BYTES):
                raise InvariantBroken('invariant broken: len(digest) == DIGEST_BYTES')
            index = self.leaf_index(bucket)
            if nodes[index] != digest:
                changes[index] = digest
        hash_fn = self._hash_fn
        get = changes.get
        level = sorted(changes)
        while level and level[0] > 1:
            parents: list[int] = []
            previous = 0
            for index in level:
                parent = index >> 1
                if parent == previous:
                    continue  # both children changed; computed once
                previous = parent
                # ``level`` is sorted: a right child seen first means its left sibling is unchanged
                if index & 1:
                    digest = hash_fn(_NODE_PREFIX + nodes[index - 1] + changes[index])
                else:
                    digest = hash_fn(_NODE_PREFIX + changes[index] + (get(index + 1) or nodes[index + 1]))
                changes[parent] = digest
                parents.append(parent)
            level = parents
        return changes

    def apply(self, changes: Mapping[int, bytes]) -> None:
        """Install node hashes computed by :meth:`compute_update` (or loaded from disk)."""
        nodes = self._nodes
        if changes:
            # checked once for the batch, not per node: this runs for every node a block changes
            if not (min(changes) >= 1 and max(changes) < len(nodes)):
                raise InvariantBroken("node index outside the tree")
            # one C-level pass (a generator over ~1,000 nodes a block was a tenth of the commit)
            if not (set(map(len, changes.values())) == {DIGEST_BYTES}):
                raise InvariantBroken("node hashes are 32 bytes")
        for index, digest in changes.items():
            nodes[index] = digest

    def rebuild_internal(self) -> None:
        """Recompute every internal node from the leaves (2**bucket_bits - 1 hashes)."""
        nodes = self._nodes
        hash_fn = self._hash_fn
        for index in range(self._leaf_base - 1, 0, -1):
            nodes[index] = hash_fn(_NODE_PREFIX + nodes[2 * index] + nodes[2 * index + 1])

    def first_inconsistent_node(self) -> int | None:
        """Recompute every internal node from its children; the first mismatch, or None."""
        nodes = self._nodes
        hash_fn = self._hash_fn
        for index in range(self._leaf_base - 1, 0, -1):
            if nodes[index] != hash_fn(_NODE_PREFIX + nodes[2 * index] + nodes[2 * index + 1]):
                return index
        return None


def compute_state_root(
    items: Iterable[tuple[bytes, bytes]], bucket_bits: int, hash_fn: HashFn
) -> bytes:
    """The state root of ``items`` computed from scratch (the reference for tests and audits)."""
    check_bucket_bits(bucket_bits)
    buckets: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value in items:
        buckets.setdefault(bucket_of(key, bucket_bits, hash_fn), []).append((key, value))
    tree = BucketTree(bucket_bits, hash_fn)
    leaves = {bucket: leaf_hash(sorted(entries), hash_fn) for bucket, entries in buckets.items()}
    tree.apply(tree.compute_update(leaves))
    return tree.root


def verify_state_proof(
    root: bytes,
    key: bytes,
    value: bytes | None,
    proof: StateProof,
    hash_fn: HashFn,
    *,
    bucket_bits: int | None = None,
) -> bool:
    """True when ``proof`` shows that, under ``root``, ``key`` maps to ``value`` (None: absent).

    Pure and total: malformed proofs yield False, never an exception. Pass ``bucket_bits`` to
    pin the network's tree depth (the leaf/node domain separation already binds it).
    """
    try:
        return _verify_state_proof(root, key, value, proof, hash_fn, bucket_bits)
    except (TypeError, ValueError, AttributeError):
        return False  # a hand-built proof with wrongly typed fields


def _verify_state_proof(
    root: bytes,
    key: bytes,
    value: bytes | None,
    proof: StateProof,
    hash_fn: HashFn,
    bucket_bits: int | None,
) -> bool:
    if not isinstance(proof, StateProof) or not isinstance(key, bytes):
        return False
    bits = proof.bucket_bits
    if bucket_bits is not None and bits != bucket_bits:
        return False
    if not isinstance(bits, int) or not BUCKET_BITS_MIN <= bits <= BUCKET_BITS_MAX:
        return False
    if len(proof.siblings) != bits or any(len(s) != DIGEST_BYTES for s in proof.siblings):
        return False
    if proof.bucket != bucket_of(key, bits, hash_fn):
        return False
    entries = proof.entries
    found: bytes | None = None
    previous: bytes | None = None
    for entry_key, entry_value in entries:
        if previous is not None and entry_key <= previous:
            return False  # not strictly sorted: absence would be unprovable
        previous = entry_key
        if entry_key == key:
            found = entry_value
    if found != value:
        return False
    digest = leaf_hash(entries, hash_fn)
    index = proof.bucket
    for sibling in proof.siblings:
        if index & 1:
            digest = node_hash(sibling, digest, hash_fn)
        else:
            digest = node_hash(digest, sibling, hash_fn)
        index >>= 1
    return digest == root
