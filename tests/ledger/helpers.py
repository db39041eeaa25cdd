"""Shared test fixtures for ledger tests: a consortium-free authenticator over fixed keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from pilotchain.codec import encode
from pilotchain.crypto import PrivateKey, Suite
from pilotchain.ledger.execution import Caller
from pilotchain.ledger.tx import RejectCode, TxBody, TxRejected, encode_args, sign_transaction


@dataclass
class FakeAuthenticator:
    """Certificates here are just encode((name, org, roles, public key DER, not_after_ms))."""

    suite: Suite
    revoked: set[bytes] = field(default_factory=set)

    def _parse(self, certificate: bytes, now_ms: int) -> tuple[str, str, tuple[str, ...], bytes]:
        from pilotchain.codec import CodecError, decode

        try:
            name, org, roles, key, not_after = decode(certificate, tuple[str, str, tuple[str, ...], bytes, int])
        except CodecError as exc:
            raise TxRejected(RejectCode.UNKNOWN_SIGNER, "not a certificate") from exc
        if certificate in self.revoked:
            raise TxRejected(RejectCode.SIGNER_REJECTED, "revoked")
        if now_ms > not_after:
            raise TxRejected(RejectCode.SIGNER_REJECTED, "expired")
        return name, org, roles, key

    def public_key_of(self, certificate: bytes, now_ms: int) -> bytes:
        return self._parse(certificate, now_ms)[3]

    def caller_of(self, certificate: bytes, now_ms: int) -> Caller:
        name, org, roles, _ = self._parse(certificate, now_ms)
        return Caller(name=name, org=org, roles=roles, certificate_id=self.suite.hash(certificate))

    def reader(self, certificate: bytes, now_ms: int) -> tuple[bytes, Caller]:
        return self.public_key_of(certificate, now_ms), self.caller_of(certificate, now_ms)


def make_certificate(key: PrivateKey, name: str, org: str, roles: tuple[str, ...] = ("client",),
                     not_after_ms: int = 10**13) -> bytes:
    return encode((name, org, roles, key.public_key().to_der(), not_after_ms))


def make_tx(suite: Suite, key: PrivateKey, certificate: bytes, *, chain_id: str = "test-chain",
            contract: str = "kv", method: str = "put", args: object = None, nonce: bytes = b"n1",
            expires_at_ms: int = 2_000_000) -> bytes:
    body = TxBody(
        chain_id=chain_id,
        signer_certificate=certificate,
        nonce=nonce,
        expires_at_ms=expires_at_ms,
        contract=contract,
        method=method,
        args=encode_args(args if args is not None else {"key": "k", "value": 1}),
    )
    return sign_transaction(suite, key, body)
