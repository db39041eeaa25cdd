"""Transactions from real consortium identities: who may transact, and who may not."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotchain.codec import encode
from pilotchain.contracts.kv import KvContract
from pilotchain.crypto import get_suite
from pilotchain.identity.authority import CertificateAuthority
from pilotchain.identity.membership import Membership
from pilotchain.ledger.auth import MembershipAuthenticator
from pilotchain.ledger.execution import ContractRegistry
from pilotchain.ledger.genesis import Genesis, ValidatorInfo
from pilotchain.ledger.tx import RejectCode, TxRejected
from pilotchain.node.chain import BlockInvalid, Ledger

from .helpers import make_tx

DAY_MS = 86_400_000
T0 = 1_700_000_000_000


@pytest.mark.parametrize("suite_name", ["intl", "gm"])
def test_membership_decides_who_may_transact(suite_name: str, tmp_path: Path) -> None:
    suite = get_suite(suite_name)
    bank = CertificateAuthority.create(suite, suite.private_key_from_seed(b"bank-ca" * 5), org_id="bank-a",
                                       display_name="Bank A", now_ms=T0, valid_ms=3650 * DAY_MS)
    outsider = CertificateAuthority.create(suite, suite.private_key_from_seed(b"evil-ca" * 5), org_id="bank-a",
                                           display_name="Not Bank A", now_ms=T0, valid_ms=3650 * DAY_MS)
    membership = Membership(suite, [bank.org_certificate])
    validator_key = suite.private_key_from_seed(b"v" * 32)
    genesis = Genesis(chain_id="auth-chain", suite=suite_name, genesis_time_ms=T0,
                      organizations=(encode(bank.org_certificate),),
                      validators=(ValidatorInfo(name="v0", org="bank-a", public_key=validator_key.public_key().to_der()),))
    registry = ContractRegistry()
    registry.register(KvContract())
    ledger = Ledger.open(tmp_path / "l", genesis, MembershipAuthenticator(membership), registry)

    def identity(ca: CertificateAuthority, name: str, roles: tuple[str, ...], valid_ms: int = 365 * DAY_MS):  # type: ignore[no-untyped-def]
        key = suite.private_key_from_seed(name.encode() * 8)
        cert = ca.issue(name, roles, key.public_key().to_der(), now_ms=T0, valid_ms=valid_ms)
        return key, encode(cert)

    def code_of(raw: bytes, now_ms: int = T0 + 1000) -> RejectCode:
        with pytest.raises(TxRejected) as info:
            ledger.check_tx(raw, now_ms)
        return info.value.code

    try:
        client_key, client_cert = identity(bank, "teller", ("client",))
        auditor_key, auditor_cert = identity(bank, "auditor", ("auditor",))
        short_key, short_cert = identity(bank, "temp", ("client",), valid_ms=2000)
        fake_key, fake_cert = identity(outsider, "mallory", ("admin",))
        kw = {"chain_id": "auth-chain", "expires_at_ms": T0 + 100_000}

        ok = make_tx(suite, client_key, client_cert, **kw)
        assert ledger.check_tx(ok, T0 + 1000).body.contract == "kv"
        assert code_of(make_tx(suite, auditor_key, auditor_cert, **kw)) == RejectCode.PERMISSION_DENIED
        assert code_of(make_tx(suite, fake_key, fake_cert, **kw)) in {RejectCode.UNKNOWN_SIGNER, RejectCode.SIGNER_REJECTED}
        with pytest.raises(TxRejected, match="BAD_CA_SIGNATURE|UNKNOWN_ISSUER"):
            ledger.check_tx(make_tx(suite, fake_key, fake_cert, **kw), T0 + 1000)
        expired = make_tx(suite, short_key, short_cert, **kw)
        assert code_of(expired, now_ms=T0 + 5000) == RejectCode.SIGNER_REJECTED

        # revoked from T0 + 2000: accepted before, refused after (and a block that includes it is invalid)
        membership.apply_revocation(bank.revoke(1, "key lost", T0 + 2000))
        assert ledger.check_tx(ok, T0 + 1500)
        assert code_of(ok, now_ms=T0 + 2500) == RejectCode.SIGNER_REJECTED
        block = ledger.build_block([ok], proposer="v0", timestamp_ms=T0 + 1500)
        assert len(block.txs) == 1
        late = ledger.build_block([ok], proposer="v0", timestamp_ms=T0 + 2500)
        assert late.txs == ()
        import msgspec

        forged = msgspec.structs.replace(block, header=msgspec.structs.replace(block.header, timestamp_ms=T0 + 2500))
        with pytest.raises(BlockInvalid):
            ledger.verify_block(forged)
    finally:
        ledger.close()


@pytest.mark.parametrize("suite_name", ["intl", "gm"])
def test_remembered_authentications_still_follow_time_and_membership(suite_name: str) -> None:
    """The authenticator remembers a certificate's answer only for the window and membership
    version it depends on: expiry, revocation, removal and a CA's cut-over all still apply."""
    suite = get_suite(suite_name)
    bank = CertificateAuthority.create(suite, suite.private_key_from_seed(b"bank-ca" * 5), org_id="bank-a",
                                       display_name="Bank A", now_ms=T0, valid_ms=3650 * DAY_MS)
    membership = Membership(suite, [bank.org_certificate])
    auth = MembershipAuthenticator(membership)

    def certificate(name: str, valid_ms: int, ca: CertificateAuthority = bank, at: int = T0) -> bytes:
        key = suite.private_key_from_seed(name.encode() * 8)
        return encode(ca.issue(name, ("client",), key.public_key().to_der(), now_ms=at, valid_ms=valid_ms))

    def refused(cert: bytes, now_ms: int) -> RejectCode:
        with pytest.raises(TxRejected) as info:
            auth.public_key_of(cert, now_ms)
        return info.value.code

    short = certificate("temp", 10_000)
    assert auth.caller_of(short, T0 + 1).name == "temp"
    assert auth.caller_of(short, T0 + 9_999).org == "bank-a"  # remembered, inside the window
    assert refused(short, T0 + 10_000) == RejectCode.SIGNER_REJECTED  # expired, though remembered
    assert refused(short, T0 - 1) == RejectCode.SIGNER_REJECTED  # not valid yet

    teller = certificate("teller", 365 * DAY_MS)
    assert auth.public_key_of(teller, T0 + 5)
    membership.apply_revocation(bank.revoke(2, "key lost", T0 + 2_000))
    assert auth.public_key_of(teller, T0 + 1_999)  # revoked from T0 + 2000 only
    assert refused(teller, T0 + 2_000) == RejectCode.SIGNER_REJECTED

    # rotation: certificates of the old key are accepted until the cut-over, then refused
    clerk = certificate("clerk", 365 * DAY_MS)
    assert auth.public_key_of(clerk, T0 + 10)
    new_bank, rotation = bank.rotate(suite.private_key_from_seed(b"bank-ca2" * 5), now_ms=T0 + 100,
                                     valid_ms=3000 * DAY_MS, cutover_ms=T0 + 50_000)
    membership.apply_rotation(rotation, T0 + 100)
    assert auth.public_key_of(clerk, T0 + 49_999)
    assert refused(clerk, T0 + 50_000) == RejectCode.SIGNER_REJECTED
    fresh = certificate("clerk2", 365 * DAY_MS, ca=new_bank, at=T0 + 200)
    assert auth.public_key_of(fresh, T0 + 60_000)

    membership.remove_org("bank-a")
    assert refused(fresh, T0 + 60_001) in {RejectCode.UNKNOWN_SIGNER, RejectCode.SIGNER_REJECTED}
