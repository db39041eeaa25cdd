"""verify_commit_certificate: a pure function anyone holding the validator set can run."""

from __future__ import annotations

import pytest

from pilotchain.consensus import (
    CommitCertificate,
    CommitSignature,
    InvalidCertificate,
    Validator,
    ValidatorSet,
    verify_commit_certificate,
)
from tests.consensus.helpers import (
    CHAIN_ID,
    KEYS,
    PREVOTE,
    PUBLIC_KEYS,
    SUITE,
    VALIDATOR_SET,
    make_block,
    make_certificate,
    sign_vote,
)

_, BLOCK_HASH = make_block()
_, OTHER_HASH = make_block(payload=b"other")


def _verify(certificate: CommitCertificate, block_hash: bytes = BLOCK_HASH, validator_set: ValidatorSet = VALIDATOR_SET, **kwargs: object) -> None:
    verify_commit_certificate(certificate, block_hash, validator_set, SUITE, **kwargs)  # type: ignore[arg-type]


def test_quorum_of_precommits_verifies() -> None:
    _verify(make_certificate(1, 0, BLOCK_HASH, [0, 1, 2]), chain_id=CHAIN_ID, height=1)
    _verify(make_certificate(1, 3, BLOCK_HASH, [0, 1, 2, 3]))


def test_wrong_block() -> None:
    with pytest.raises(InvalidCertificate, match="another block"):
        _verify(make_certificate(1, 0, BLOCK_HASH, [0, 1, 2]), OTHER_HASH)


def test_signatures_over_another_block_relabelled() -> None:
    certificate = make_certificate(1, 0, OTHER_HASH, [0, 1, 2])
    relabelled = CommitCertificate(CHAIN_ID, 1, 0, BLOCK_HASH, certificate.signatures)
    with pytest.raises(InvalidCertificate, match="bad signature"):
        _verify(relabelled)


def test_duplicate_signer() -> None:
    certificate = make_certificate(1, 0, BLOCK_HASH, [0, 1, 2])
    duplicated = CommitCertificate(CHAIN_ID, 1, 0, BLOCK_HASH, (certificate.signatures[0],) * 3)
    with pytest.raises(InvalidCertificate, match="ascending"):
        _verify(duplicated)


def test_unsorted_signers() -> None:
    certificate = make_certificate(1, 0, BLOCK_HASH, [0, 1, 2])
    unsorted = CommitCertificate(CHAIN_ID, 1, 0, BLOCK_HASH, tuple(reversed(certificate.signatures)))
    with pytest.raises(InvalidCertificate, match="ascending"):
        _verify(unsorted)


def test_below_quorum() -> None:
    with pytest.raises(InvalidCertificate, match="not above 2/3"):
        _verify(make_certificate(1, 0, BLOCK_HASH, [0, 1]))


def test_unknown_signer() -> None:
    certificate = make_certificate(1, 0, BLOCK_HASH, [0, 1, 2])
    extra = CommitSignature(7, KEYS[4].sign(b"x"))
    with pytest.raises(InvalidCertificate, match="unknown validator"):
        _verify(CommitCertificate(CHAIN_ID, 1, 0, BLOCK_HASH, certificate.signatures + (extra,)))


def test_signer_outside_the_set_cannot_sign_for_a_member() -> None:
    outsider_set = ValidatorSet(VALIDATOR_SET.validators[:3] + (Validator(PUBLIC_KEYS[4], 1),))
    certificate = make_certificate(1, 0, BLOCK_HASH, [0, 1, 3])  # 3 signed, but the set lists key 4
    with pytest.raises(InvalidCertificate, match="bad signature by validator 3"):
        _verify(certificate, validator_set=outsider_set)


def test_bad_signature() -> None:
    certificate = make_certificate(1, 0, BLOCK_HASH, [0, 1, 2])
    broken = certificate.signatures[:2] + (CommitSignature(2, bytes(64)),)
    with pytest.raises(InvalidCertificate, match="bad signature by validator 2"):
        _verify(CommitCertificate(CHAIN_ID, 1, 0, BLOCK_HASH, broken))


def test_prevotes_are_not_precommits() -> None:
    votes = [sign_vote(i, PREVOTE, 1, 0, BLOCK_HASH) for i in (0, 1, 2)]
    certificate = CommitCertificate(CHAIN_ID, 1, 0, BLOCK_HASH, tuple(CommitSignature(v.validator_index, v.signature) for v in votes))
    with pytest.raises(InvalidCertificate, match="bad signature"):
        _verify(certificate)


def test_replayed_from_another_height() -> None:
    certificate = make_certificate(2, 0, BLOCK_HASH, [0, 1, 2])
    with pytest.raises(InvalidCertificate, match="height 2, expected 1"):
        _verify(certificate, height=1)
    relabelled = CommitCertificate(CHAIN_ID, 1, 0, BLOCK_HASH, certificate.signatures)
    with pytest.raises(InvalidCertificate, match="bad signature"):
        _verify(relabelled)


def test_replayed_from_another_round() -> None:
    certificate = make_certificate(1, 1, BLOCK_HASH, [0, 1, 2])
    with pytest.raises(InvalidCertificate, match="bad signature"):
        _verify(CommitCertificate(CHAIN_ID, 1, 0, BLOCK_HASH, certificate.signatures))


def test_forged_for_another_chain() -> None:
    certificate = make_certificate(1, 0, BLOCK_HASH, [0, 1, 2])
    with pytest.raises(InvalidCertificate, match="another chain"):
        _verify(certificate, chain_id=b"other-chain")
    relabelled = CommitCertificate(b"other-chain", 1, 0, BLOCK_HASH, certificate.signatures)
    with pytest.raises(InvalidCertificate, match="bad signature"):
        _verify(relabelled)


def test_weighted_quorum_counts_power_not_heads() -> None:
    weighted = ValidatorSet(tuple(Validator(PUBLIC_KEYS[i], power) for i, power in enumerate((5, 1, 1, 1))))
    _verify(make_certificate(1, 0, BLOCK_HASH, [0, 1]), validator_set=weighted)  # 6 of 8 > 2/3
    with pytest.raises(InvalidCertificate, match="not above 2/3"):
        _verify(make_certificate(1, 0, BLOCK_HASH, [1, 2, 3]), validator_set=weighted)  # 3 of 8


def test_exactly_two_thirds_is_not_enough() -> None:
    six = ValidatorSet(tuple(Validator(PUBLIC_KEYS[i], 1) for i in range(3)) + (Validator(PUBLIC_KEYS[3], 3),))
    # total 6: 4 is exactly 2/3 -> rejected; 5 is above
    with pytest.raises(InvalidCertificate, match="not above 2/3"):
        _verify(make_certificate(1, 0, BLOCK_HASH, [0, 3]), validator_set=six)
    _verify(make_certificate(1, 0, BLOCK_HASH, [0, 1, 3]), validator_set=six)


def test_nil_hash_is_never_certified() -> None:
    with pytest.raises(InvalidCertificate):
        _verify(make_certificate(1, 0, b"", [0, 1, 2]), b"")
