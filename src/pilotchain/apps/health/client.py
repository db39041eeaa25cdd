"""What a hospital, a patient (through a hospital's app) and the health commission's reviewer do,
as Python calls over the SDK. Every call is a signed transaction or query of the ``health``
contract; a patient's statements are signed with the patient's own key (:class:`PatientKey`),
which the hospital never holds.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotchain.apps.health.consent import appoint_text, consent_text, sign_text, withdraw_text
from pilotchain.crypto import PrivateKey, Suite, get_suite
from pilotchain.errors import CoreError
from pilotchain.sdk import Client, Identity, TxResult

__all__ = ["CONTRACT", "HealthClient", "HealthError", "PatientKey"]

CONTRACT = "health"


class HealthError(CoreError):
    """A health call the contract refused (``code``: its RejectCode), with the contract's reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PatientKey:
    """A patient's (or a guardian's or proxy's) own key pair, in the chain's suite."""

    suite: Suite
    private_key: PrivateKey

    @classmethod
    def generate(cls, suite_name: str) -> PatientKey:
        suite = get_suite(suite_name)
        return cls(suite, suite.generate_private_key())

    @classmethod
    def load(cls, path: Path, suite_name: str) -> PatientKey:
        suite = get_suite(suite_name)
        return cls(suite, suite.load_private_key_pem(path.read_bytes()))

    def save(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(self.private_key.to_pem())

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().to_der()

    def sign(self, text: str) -> bytes:
        return sign_text(self.private_key, text)


class HealthClient:
    """One member (a hospital's client, or the commission's reviewer) acting on the chain."""

    def __init__(self, client: Client, identity: Identity) -> None:
        self.client = client
        self.identity = identity

    def _invoke(self, method: str, args: dict[str, Any]) -> Any:
        result: TxResult = self.client.invoke(self.identity, CONTRACT, method, args, check=False)
        if result.receipt is None or result.receipt.status != "OK":
            raise HealthError(result.receipt.status if result.receipt else (result.code or result.state),
                              result.receipt.message if result.receipt else str(result.message))
        return result.result

    def _query(self, method: str, args: dict[str, Any] | None = None) -> Any:
        return self.client.query(CONTRACT, method, args)

    # -- patients

    def enroll(self, patient: str, key: PatientKey | bytes) -> None:
        """Vouch for a patient's public key (the patient keeps the private half)."""
        public_key = key.public_key if isinstance(key, PatientKey) else key
        self._invoke("enroll", {"patient": patient, "public_key": public_key})

    def next_seq(self, patient: str) -> int:
        record = self._query("patient", {"patient": patient})
        if record is None:
            raise HealthError("NOT_ENROLLED", f"patient {patient} is not enrolled")
        return int(record["seq"]) + 1

    def appoint(self, patient: str, proxy: str, proxy_key: PatientKey, role: str, until_ms: int,
                signer_key: PatientKey, signer: str = "patient") -> None:
        seq = self.next_seq(patient)
        text = appoint_text(self.client.chain_id(), patient, proxy, role, until_ms, proxy_key.public_key, seq)
        self._invoke("appoint", {"patient": patient, "proxy": proxy, "public_key": proxy_key.public_key, "role": role,
                                 "until_ms": until_ms, "signer": signer, "seq": seq,
                                 "signature": signer_key.sign(text)})

    def grant(self, consent: dict[str, Any], key: PatientKey, signer: str = "patient") -> None:
        """Record ``consent`` (canonical form) signed by the patient (or the proxy ``signer``)."""
        seq = self.next_seq(consent["patient"])
        signature = key.sign(consent_text(self.client.chain_id(), consent, seq))
        self._invoke("grant", {"consent": consent, "signer": signer, "seq": seq, "signature": signature})

    def withdraw(self, patient: str, consent_id: str, key: PatientKey, signer: str = "patient") -> None:
        seq = self.next_seq(patient)
        signature = key.sign(withdraw_text(self.client.chain_id(), patient, consent_id, seq))
        self._invoke("withdraw", {"consent_id": consent_id, "signer": signer, "seq": seq, "signature": signature})

    # -- hospitals asking

    def request(self, payload_id: str, purpose: str, *, break_glass: bool = False, reason: str = "") -> dict[str, Any]:
        """Ask for a record: PERMIT (the vault will release it) or DENY, with the rule."""
        request_id = secrets.token_hex(16)
        result: dict[str, Any] = self._invoke("request", {"payload_id": payload_id, "purpose": purpose,
                                                          "request_id": request_id, "break_glass": break_glass,
                                                          "reason": reason})
        return {**result, "request_id": request_id}

    def end_break_glass(self, request_id: str) -> None:
        self._invoke("end_break_glass", {"request_id": request_id})

    # -- the commission

    def review_queue(self) -> list[dict[str, Any]]:
        return list(self._query("review_queue") or [])

    def review(self, request_id: str, finding: str) -> None:
        self._invoke("review", {"request_id": request_id, "finding": finding})

    # -- transparency

    def disclosures(self, patient: str) -> list[dict[str, Any]]:
        """Every request for the patient's records: who, when, purpose, decision, break-glass."""
        return list(self._query("disclosures", {"patient": patient}) or [])

    def consents(self, patient: str) -> list[dict[str, Any]]:
        return list(self._query("consents_of", {"patient": patient}) or [])
