"""Binary Merkle trees over ordered lists (RFC 6962 / RFC 9162 shape), with inclusion proofs.

Theory of operation
-------------------
Leaves are hashed as ``H(0x00 || leaf)``, interior nodes as ``H(0x01 || left || right)``: the
domain separation keeps a leaf from ever being read as an interior node (second-preimage
attacks). A list of n > 1 items splits at k, the largest power of two smaller than n; the root
of the empty list is ``H(b"")``. An inclusion proof for item i is the list of sibling hashes from
the leaf up; :func:`verify_inclusion` recomputes the root from (i, n, leaf, path) exactly as
RFC 9162 §2.1.3.2 describes, so the same proofs interoperate with certificate-transparency
tooling when the hash is SHA-256.

``H`` is the network's hash (SHA-256 or SM3), passed in. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pilotchain.errors import InvariantBroken

HashFn = Callable[[bytes], bytes]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

#: The deepest tree pilotchain builds (2**40 leaves): proofs longer than this are refused.
PROOF_LENGTH_MAX = 40


def _split(count: int) -> int:
    """Largest power of two strictly smaller than ``count`` (count >= 2)."""
    if not (count >= 2):
        raise InvariantBroken('invariant broken: count >= 2')
    return 1 << ((count - 1).bit_length() - 1)


def leaf_hash(hash_fn: HashFn, leaf: bytes) -> bytes:
    return hash_fn(LEAF_PREFIX + leaf)


def node_hash(hash_fn: HashFn, left: bytes, right: bytes) -> bytes:
    return hash_fn(NODE_PREFIX + left + right)


def root_from_leaf_hashes(hash_fn: HashFn, hashes: Sequence[bytes]) -> bytes:
    """Root over already-hashed leaves (bottom-up, O(n) hashes, no recursion)."""
    if not hashes:
        return hash_fn(b"")
    level = list(hashes)
    # RFC 6962's split-at-largest-power-of-two tree equals this bottom-up pairing in which an
    # odd node at the end of a level is promoted unchanged.
    while len(level) > 1:
        paired = [node_hash(hash_fn, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def merkle_root(hash_fn: HashFn, leaves: Sequence[bytes]) -> bytes:
    """Root over ``leaves`` (raw bytes, hashed here)."""
    return root_from_leaf_hashes(hash_fn, [leaf_hash(hash_fn, leaf) for leaf in leaves])


def inclusion_proof(hash_fn: HashFn, leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for ``leaves[index]``: sibling hashes from the leaf level up."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} out of range for {len(leaves)} leaves")
    level = [leaf_hash(hash_fn, leaf) for leaf in leaves]
    path: list[bytes] = []
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        # else: the node is promoted unchanged and contributes no sibling at this level
        paired = [node_hash(hash_fn, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
        position //= 2
    return path


def verify_inclusion(
    hash_fn: HashFn, root: bytes, leaf: bytes, index: int, count: int, path: Sequence[bytes]
) -> bool:
    """True when ``leaf`` is item ``index`` of a ``count``-item list whose root is ``root``.

    RFC 9162 §2.1.3.2; never raises for malformed input.
    """
    if not 0 <= index < count or len(path) > PROOF_LENGTH_MAX:
        return False
    fn, sn = index, count - 1
    computed = leaf_hash(hash_fn, leaf)
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            computed = node_hash(hash_fn, sibling, computed)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            computed = node_hash(hash_fn, computed, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and computed == root
