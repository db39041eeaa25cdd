"""Offline payments: a device (a hard wallet, a phone's secure element) signs counter-bound
vouchers while both payer and payee are offline; the payee checks them offline and its operator
settles them on chain when it reconnects.

A voucher is ``{device, counter, payee, amount, time_ms, signature}``; the device signs the
statement ``pilotchain/currency/v1|<chain>|voucher|<device>|<counter>|<payee>|<amount>|<time_ms>``
with its own key (registered on chain when the holder funded it). The counter rises by one per
voucher and is never reused by an honest device: two different vouchers with one counter are a
double spend, and the chain attributes it to the device whose key signed both.

**Device certificates.** A voucher's signature alone proves only that *some* key signed it. When
the holder funds a device, the operator that submitted the funding issues a
:class:`DeviceCertificate`: the chain id, device, device key, wallet, operator, the device's
offline balance and validity as the chain recorded them, signed by the operator's member identity
(whose certificate the document carries). The device hands it over with every voucher, and the
payee's device checks, with no network, against the currency network's genesis file: the signer's
certificate chains to the operator organisation's CA in genesis and was valid at issue, the
signature verifies, the voucher names this device and key, its amount is within the certified
balance and its time within the certified validity. A forged device — a key nobody funded — has no
certificate an operator signed. The payee cannot know offline what the device spent elsewhere: that
(double spends, overspends) is what settlement catches and attributes.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotchain.apps.currency.client import HolderKey
from pilotchain.apps.currency.statements import VERSION, StatementError, check_id, statement
from pilotchain.codec import CodecError
from pilotchain.crypto import get_suite
from pilotchain.errors import CoreError
from pilotchain.identity.errors import IdentityLayerError
from pilotchain.identity.membership import Membership
from pilotchain.identity.records import OrgCertificate, decode_record
from pilotchain.ledger.genesis import Genesis
from pilotchain.sdk import Identity

__all__ = ["DeviceCertificate", "OfflineDevice", "VoucherError", "check_device_certificate", "check_voucher",
           "issue_device_certificate", "voucher_from_json", "voucher_text", "voucher_to_json"]

VOUCHER_FIELDS = ("amount", "counter", "device", "payee", "signature", "time_ms")


class VoucherError(CoreError):
    """A voucher that does not verify offline or cannot be read."""


@dataclass(frozen=True)
class DeviceCertificate:
    """An operator's signed statement that a device was funded on chain (see the module docstring)."""

    chain_id: str
    device: str
    device_key: bytes
    wallet: str
    operator: str
    #: the device's offline balance when the certificate was issued (fen)
    balance: int
    #: the device's validity as the chain recorded it (the chain's clock, ms)
    from_ms: int
    until_ms: int
    #: the operator identity's canonical certificate bytes, and its signature over :meth:`text`
    signer_certificate: bytes
    signature: bytes

    def text(self) -> str:
        return "|".join([f"{VERSION}/device-certificate", self.chain_id, self.device, self.device_key.hex(),
                         self.wallet, self.operator, str(self.balance), str(self.from_ms), str(self.until_ms)])

    def to_dict(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        for name in ("device_key", "signer_certificate", "signature"):
            document[name] = base64.b64encode(document[name]).decode()
        return document

    @classmethod
    def from_dict(cls, document: Any) -> DeviceCertificate:
        try:
            fields = {f.name for f in dataclasses.fields(cls)}
            if not isinstance(document, dict) or set(document) != fields:
                raise VoucherError("a device certificate has exactly " + ", ".join(sorted(fields)))
            values = dict(document)
            for name in ("device_key", "signer_certificate", "signature"):
                values[name] = base64.b64decode(values[name], validate=True)
            for name in ("balance", "from_ms", "until_ms"):
                if type(values[name]) is not int:
                    raise VoucherError(f"device certificate: {name} is a whole number")
            for name in ("chain_id", "device", "wallet", "operator"):
                if type(values[name]) is not str:
                    raise VoucherError(f"device certificate: {name} is a text")
            return cls(**values)
        except (ValueError, TypeError) as exc:
            raise VoucherError(f"not a device certificate: {exc}") from exc


def issue_device_certificate(operator: Identity, chain_id: str, device: dict[str, Any]) -> DeviceCertificate:
    """The operator signs what the chain recorded of a funded ``device`` (the contract's
    ``device`` query answer) for the holder to carry."""
    wallet_operator = operator.org
    unsigned = DeviceCertificate(chain_id=chain_id, device=str(device["id"]), device_key=bytes(device["key"]),
                                 wallet=str(device["wallet"]), operator=wallet_operator,
                                 balance=int(device["balance"]), from_ms=int(device["from_ms"]),
                                 until_ms=int(device["until_ms"]), signer_certificate=operator.certificate_bytes,
                                 signature=b"")
    return dataclasses.replace(unsigned, signature=operator.sign(unsigned.text().encode()))


def check_device_certificate(certificate: DeviceCertificate, genesis: Genesis) -> None:
    """Offline: ``certificate`` was signed by a client or admin identity of its operator, whose
    certificate chains to that organisation's CA in ``genesis`` and was valid when the device was
    funded; VoucherError saying which check failed otherwise."""
    if certificate.chain_id != genesis.chain_id:
        raise VoucherError(f"the device certificate is for chain {certificate.chain_id!r}, this genesis is "
                           f"{genesis.chain_id!r}")
    try:
        membership = Membership(genesis.suite, [decode_record(raw, OrgCertificate) for raw in genesis.organizations])
        signer = membership.authenticate(certificate.signer_certificate, certificate.from_ms)
    except (IdentityLayerError, CodecError) as exc:
        raise VoucherError(f"the device certificate's signer is not a member identity of this network: {exc}") from exc
    if signer.org_id != certificate.operator:
        raise VoucherError(f"the device certificate names operator {certificate.operator!r} but "
                           f"{signer.org_id!r} signed it")
    if not (signer.has_role("client") or signer.has_role("admin")):
        raise VoucherError("the device certificate was not signed by an operator's client or admin identity")
    if not get_suite(genesis.suite).verify(signer.public_key_der, certificate.text().encode(), certificate.signature):
        raise VoucherError("the device certificate's signature does not verify: it was altered or forged")


def _check_fields(voucher: dict[str, Any], *, signed: bool = True) -> None:
    """Every field has its type: whole numbers (not text, floats or booleans), ids, signature bytes
    (``signed=False``: the voucher before its device signs it, without a signature)."""
    fields = VOUCHER_FIELDS if signed else tuple(name for name in VOUCHER_FIELDS if name != "signature")
    if not isinstance(voucher, dict) or sorted(voucher) != sorted(fields):
        raise VoucherError("a voucher has exactly " + ", ".join(fields))
    for name in ("amount", "counter", "time_ms"):
        value = voucher[name]
        if type(value) is not int or not 0 <= value < 2**63:
            raise VoucherError(f"a voucher's {name} is a whole number 0..2**63-1, not {value!r:.40}")
    for name in ("device", "payee"):
        if type(voucher[name]) is not str:
            raise VoucherError(f"a voucher's {name} is an id (text)")
        try:
            check_id(name, voucher[name])
        except StatementError as exc:
            raise VoucherError(str(exc)) from exc
    if signed and type(voucher["signature"]) is not bytes:
        raise VoucherError("a voucher's signature is bytes (base64 in JSON)")


def voucher_text(chain_id: str, voucher: dict[str, Any]) -> str:
    """The statement a device signs for ``voucher`` (signed or not yet); VoucherError when a field
    cannot be in one."""
    _check_fields(voucher, signed="signature" in voucher)
    return statement(chain_id, "voucher", voucher["device"], voucher["counter"],
                     [voucher["payee"], voucher["amount"], voucher["time_ms"]])


def check_voucher(chain_id: str, voucher: dict[str, Any], device_key: bytes, suite_name: str, *,
                  certificate: DeviceCertificate | None = None, genesis: Genesis | None = None) -> None:
    """What the payee's device checks offline: the fields and the device's signature; with a
    ``genesis``, also the device ``certificate`` (required then) and that the voucher is within it."""
    _check_fields(voucher)
    if voucher["amount"] <= 0 or voucher["counter"] <= 0:
        raise VoucherError("amount and counter are positive")
    if not get_suite(suite_name).verify(device_key, voucher_text(chain_id, voucher).encode(), voucher["signature"]):
        raise VoucherError(f"the voucher is not signed by device {voucher['device']}'s key")
    if genesis is None:
        return
    if certificate is None:
        raise VoucherError("the voucher carries no device certificate: an unfunded key can sign vouchers too; "
                           "refuse it, or ask the payer to pay online")
    check_device_certificate(certificate, genesis)
    if certificate.chain_id != chain_id:
        raise VoucherError("the voucher and the device certificate are for different chains")
    if certificate.device != voucher["device"] or certificate.device_key != device_key:
        raise VoucherError(f"the device certificate is for device {certificate.device}, not for the key that "
                           f"signed this voucher of device {voucher['device']}")
    if voucher["amount"] > certificate.balance:
        raise VoucherError(f"the voucher is for {voucher['amount']} fen; the device was funded with "
                           f"{certificate.balance} fen")
    if not certificate.from_ms <= voucher["time_ms"] < certificate.until_ms:
        raise VoucherError("the voucher's time is outside the device's certified validity")


def voucher_to_json(voucher: dict[str, Any], device_key: bytes, certificate: DeviceCertificate | None = None) -> str:
    """The voucher as it travels between devices (NFC, a QR code): JSON, bytes in base64, with the
    device's certificate when it has one."""
    document = {**voucher, "signature": base64.b64encode(voucher["signature"]).decode(),
                "device_key": base64.b64encode(device_key).decode()}
    if certificate is not None:
        document["device_certificate"] = certificate.to_dict()
    return json.dumps(document, sort_keys=True)


def voucher_from_json(text: str) -> tuple[dict[str, Any], bytes, DeviceCertificate | None]:
    """(voucher, the device key it names, its device certificate or None); VoucherError when the
    text is not one."""
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise VoucherError("a voucher is a JSON object")
        device_key = base64.b64decode(document.pop("device_key"), validate=True)
        raw_certificate = document.pop("device_certificate", None)
        document["signature"] = base64.b64decode(document["signature"], validate=True)
        if sorted(document) != sorted(VOUCHER_FIELDS):
            raise VoucherError("a voucher has exactly " + ", ".join(VOUCHER_FIELDS))
        voucher = {name: document[name] for name in VOUCHER_FIELDS}
    except (ValueError, KeyError, TypeError) as exc:
        raise VoucherError(f"not a voucher: {exc}") from exc
    certificate = None if raw_certificate is None else DeviceCertificate.from_dict(raw_certificate)
    return voucher, device_key, certificate


@dataclass
class OfflineDevice:
    """A device's key and its voucher counter (persisted before a voucher leaves the device, so
    a crash never makes an honest device reuse a counter)."""

    device: str
    key: HolderKey
    chain_id: str
    counter: int = 0
    state_file: Path | None = None
    #: the operator's certificate of the device's funding (handed over with every voucher)
    certificate: DeviceCertificate | None = None

    def __post_init__(self) -> None:
        check_id("device", self.device)

    def voucher(self, payee: str, amount: int, time_ms: int | None = None) -> dict[str, Any]:
        check_id("payee", payee)
        self.counter += 1
        self._persist()
        voucher: dict[str, Any] = {"device": self.device, "counter": self.counter, "payee": payee, "amount": amount,
                                   "time_ms": int(time.time() * 1000) if time_ms is None else time_ms}
        voucher["signature"] = self.key.sign(voucher_text(self.chain_id, voucher))
        return voucher

    def forge_with_counter(self, counter: int, payee: str, amount: int, time_ms: int) -> dict[str, Any]:
        """A voucher with a chosen counter — what a tampered device does to double-spend (tests
        and the demo show the chain catching it)."""
        voucher: dict[str, Any] = {"device": self.device, "counter": counter, "payee": payee, "amount": amount,
                                   "time_ms": time_ms}
        voucher["signature"] = self.key.sign(voucher_text(self.chain_id, voucher))
        return voucher

    def _persist(self) -> None:
        if self.state_file is None:
            return
        tmp = self.state_file.with_suffix(".tmp")
        document: dict[str, Any] = {"device": self.device, "counter": self.counter, "chain_id": self.chain_id}
        if self.certificate is not None:
            document["certificate"] = self.certificate.to_dict()
        tmp.write_text(json.dumps(document))
        os.replace(tmp, self.state_file)

    def certify(self, certificate: DeviceCertificate) -> None:
        """Keep the operator's certificate of this device's (latest) funding."""
        if certificate.device != self.device or certificate.device_key != self.key.public_key:
            raise VoucherError(f"that certificate is for device {certificate.device}, not for this device's key")
        self.certificate = certificate
        self._persist()

    @classmethod
    def load(cls, state_file: Path, key: HolderKey) -> OfflineDevice:
        document = json.loads(state_file.read_text())
        certificate = document.get("certificate")
        return cls(document["device"], key, document["chain_id"], int(document["counter"]), state_file,
                   None if certificate is None else DeviceCertificate.from_dict(certificate))
