"""Properties of the bucket-tree commitment and its proofs (pure, no disk)."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from pilotchain.codec import decode, encode
from pilotchain.ledger.commitment import (
    BucketTree,
    StateProof,
    bucket_of,
    compute_state_root,
    empty_subtree_hashes,
    leaf_hash,
    verify_state_proof,
)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


keys = st.binary(min_size=0, max_size=12)
values = st.binary(min_size=0, max_size=16)
states = st.dictionaries(keys, values, max_size=40)
bits = st.integers(min_value=1, max_value=6)
hashes = st.sampled_from([sha256, sm3])


class Model:
    """A from-scratch tree over a dict: the reference the incremental code must match."""

    def __init__(self, state: dict[bytes, bytes], bucket_bits: int, hash_fn) -> None:  # type: ignore[no-untyped-def]
        self.state, self.bits, self.hash_fn = state, bucket_bits, hash_fn
        self.tree = BucketTree(bucket_bits, hash_fn)
        self.tree.apply(self.tree.compute_update(self.leaves(range(1 << bucket_bits))))

    def entries(self, bucket: int) -> tuple[tuple[bytes, bytes], ...]:
        return tuple(
            sorted(
                (k, v)
                for k, v in self.state.items()
                if bucket_of(k, self.bits, self.hash_fn) == bucket
            )
        )

    def leaves(self, buckets) -> dict[int, bytes]:  # type: ignore[no-untyped-def]
        return {b: leaf_hash(self.entries(b), self.hash_fn) for b in buckets}

    def proof(self, key: bytes) -> StateProof:
        bucket = bucket_of(key, self.bits, self.hash_fn)
        return StateProof(self.bits, bucket, self.entries(bucket), self.tree.siblings(bucket))


@settings(max_examples=60, deadline=None)
@given(state=states, bucket_bits=bits, hash_fn=hashes, probe=keys)
def test_proofs_verify_for_present_and_absent_keys(state, bucket_bits, hash_fn, probe) -> None:
    model = Model(state, bucket_bits, hash_fn)
    root = model.tree.root
    assert root == compute_state_root(state.items(), bucket_bits, hash_fn)
    for key, value in state.items():
        assert verify_state_proof(root, key, value, model.proof(key), hash_fn)
    expected = state.get(probe)
    proof = model.proof(probe)
    assert verify_state_proof(root, probe, expected, proof, hash_fn, bucket_bits=bucket_bits)
    # round trip through the canonical codec, as a client would receive it
    assert verify_state_proof(root, probe, expected, decode(encode(proof), StateProof), hash_fn)


@settings(max_examples=60, deadline=None)
@given(state=states, bucket_bits=bits, hash_fn=hashes, probe=keys, other=values)
def test_proofs_fail_for_wrong_value_key_or_root(state, bucket_bits, hash_fn, probe, other) -> None:
    model = Model(state, bucket_bits, hash_fn)
    root = model.tree.root
    actual = state.get(probe)
    proof = model.proof(probe)
    if other != actual:
        assert not verify_state_proof(root, probe, other, proof, hash_fn)
    if actual is not None:
        assert not verify_state_proof(root, probe, None, proof, hash_fn)  # forged absence
    assert not verify_state_proof(sha256(root), probe, actual, proof, hash_fn)
    assert not verify_state_proof(root, probe, actual, proof, hash_fn, bucket_bits=bucket_bits + 1)
    for key, value in state.items():
        if key != probe and bucket_of(key, bucket_bits, hash_fn) != proof.bucket:
            assert not verify_state_proof(root, key, value, proof, hash_fn)  # other bucket
    if proof.entries:
        # dropping an entry (to prove a present key absent) breaks the leaf hash
        key, value = proof.entries[0]
        forged = StateProof(bucket_bits, proof.bucket, proof.entries[1:], proof.siblings)
        assert not verify_state_proof(root, key, None, forged, hash_fn)
        tampered = StateProof(
            bucket_bits, proof.bucket, ((key, value + b"x"),) + proof.entries[1:], proof.siblings
        )
        assert not verify_state_proof(root, key, value + b"x", tampered, hash_fn)
    if len(proof.entries) >= 2:
        unsorted = StateProof(bucket_bits, proof.bucket, proof.entries[::-1], proof.siblings)
        assert not verify_state_proof(root, probe, actual, unsorted, hash_fn)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.dictionaries(keys, st.none() | values, max_size=15), max_size=6),
    bucket_bits=bits,
    seed=st.randoms(use_true_random=False),
)
def test_incremental_root_equals_recomputation_in_any_write_order(
    batches, bucket_bits, seed
) -> None:
    hash_fn = sha256
    state: dict[bytes, bytes] = {}
    tree = BucketTree(bucket_bits, hash_fn)
    for batch in batches:
        for key, value in batch.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        touched = {bucket_of(k, bucket_bits, hash_fn) for k in batch}
        model = Model(state, bucket_bits, hash_fn)
        tree.apply(tree.compute_update(model.leaves(touched)))
        assert tree.root == compute_state_root(state.items(), bucket_bits, hash_fn)
        assert tree.first_inconsistent_node() is None
    shuffled = list(state.items())
    seed.shuffle(shuffled)
    assert compute_state_root(shuffled, bucket_bits, hash_fn) == tree.root


def test_empty_tree_and_malformed_proofs() -> None:
    tree = BucketTree(4, sha256)
    assert tree.root == empty_subtree_hashes(4, sha256)[4]
    assert tree.root == compute_state_root([], 4, sha256)
    proof = StateProof(4, bucket_of(b"k", 4, sha256), (), tree.siblings(bucket_of(b"k", 4, sha256)))
    assert verify_state_proof(tree.root, b"k", None, proof, sha256)
    assert not verify_state_proof(tree.root, b"k", b"", proof, sha256)
    bad_bucket = StateProof(4, (proof.bucket + 1) % 16, (), proof.siblings)
    assert not verify_state_proof(tree.root, b"k", None, bad_bucket, sha256)
    short = StateProof(4, proof.bucket, (), proof.siblings[:-1])
    assert not verify_state_proof(tree.root, b"k", None, short, sha256)
    garbage = StateProof(4, proof.bucket, ((1, 2),), proof.siblings)  # type: ignore[arg-type]
    assert not verify_state_proof(tree.root, b"k", None, garbage, sha256)
    assert not verify_state_proof(tree.root, b"k", None, "not a proof", sha256)  # type: ignore[arg-type]
    zero_bits = StateProof(0, 0, (), ())
    assert not verify_state_proof(tree.root, b"k", None, zero_bits, sha256)


def test_commitment_module_is_pure() -> None:
    """The commitment is consensus-critical: no I/O, clock or randomness may reach it."""
    import ast
    import inspect

    import pilotchain.ledger.commitment as commitment

    banned = {"os", "time", "random", "socket", "asyncio", "lmdb", "threading", "pathlib"}
    tree = ast.parse(inspect.getsource(commitment))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & banned, imported & banned
