"""Merkle roots and inclusion proofs against an independent recursive RFC 6962 reference."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotchain.crypto import get_suite
from pilotchain.ledger import merkle


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written recursively as the RFC states it."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:]))


def reference_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    if len(leaves) <= 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if index < k:
        return reference_path(index, leaves[:k]) + [reference_root(leaves[k:])]
    return reference_path(index - k, leaves[k:]) + [reference_root(leaves[:k])]


leaf_lists = st.lists(st.binary(max_size=16), min_size=0, max_size=70)


@given(leaf_lists)
def test_root_matches_rfc6962_reference(leaves: list[bytes]) -> None:
    assert merkle.merkle_root(sha256, leaves) == reference_root(leaves)


@given(leaf_lists.filter(bool), st.data())
def test_every_proof_matches_the_reference_and_verifies(leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    path = merkle.inclusion_proof(sha256, leaves, index)
    assert path == reference_path(index, leaves)
    root = merkle.merkle_root(sha256, leaves)
    assert merkle.verify_inclusion(sha256, root, leaves[index], index, len(leaves), path)


@given(leaf_lists.filter(lambda x: len(x) >= 2), st.data())
def test_a_proof_fails_for_another_leaf_index_count_or_root(leaves: list[bytes], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    path = merkle.inclusion_proof(sha256, leaves, index)
    root = merkle.merkle_root(sha256, leaves)
    n = len(leaves)
    assert not merkle.verify_inclusion(sha256, root, leaves[index] + b"x", index, n, path)
    assert not merkle.verify_inclusion(sha256, sha256(root), leaves[index], index, n, path)
    other = (index + 1) % n
    if leaves[other] != leaves[index]:
        assert not merkle.verify_inclusion(sha256, root, leaves[index], other, n, path)
    if path:
        tampered = [bytes(32)] + path[1:]
        assert not merkle.verify_inclusion(sha256, root, leaves[index], index, n, tampered)
        assert not merkle.verify_inclusion(sha256, root, leaves[index], index, n, path[:-1])
    assert not merkle.verify_inclusion(sha256, root, leaves[index], index, n, [*path, bytes(32)])


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    left, right = b"a" * 32, b"b" * 32
    # a 64-byte leaf equal to left||right must not hash like the interior node over (left, right)
    assert merkle.merkle_root(sha256, [left + right]) != merkle.node_hash(sha256, left, right)


def test_known_answer_two_leaves() -> None:
    expected = sha256(b"\x01" + sha256(b"\x00a") + sha256(b"\x00b"))
    assert merkle.merkle_root(sha256, [b"a", b"b"]) == expected
    assert merkle.merkle_root(sha256, []) == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_out_of_range_arguments() -> None:
    with pytest.raises(IndexError):
        merkle.inclusion_proof(sha256, [b"a"], 1)
    assert not merkle.verify_inclusion(sha256, b"", b"a", 0, 0, [])
    assert not merkle.verify_inclusion(sha256, b"", b"a", -1, 3, [])


def test_suite_hash_works_as_merkle_hash() -> None:
    suite = get_suite("intl")
    assert merkle.merkle_root(suite.hash, [b"x"]) == sha256(b"\x00x")
