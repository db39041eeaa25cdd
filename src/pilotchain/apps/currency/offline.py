"""Offline payments: a device (a hard wallet, a phone's secure element) signs counter-bound
vouchers while both payer and payee are offline; the payee checks them offline and its operator
settles them on chain when it reconnects.

A voucher is ``{device, counter, payee, amount, time_ms, signature}``; the device signs the
statement ``pilotchain/currency/v1|<chain>|voucher|<device>|<counter>|<payee>|<amount>|<time_ms>``
with its own key (registered on chain when the holder funded it). The counter rises by one per
voucher and is never reused by an honest device: two different vouchers with one counter are a
double spend, and the chain attributes it to the device whose key signed both.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotchain.apps.currency.client import HolderKey
from pilotchain.apps.currency.statements import check_id, statement
from pilotchain.crypto import get_suite
from pilotchain.errors import CoreError

__all__ = ["OfflineDevice", "VoucherError", "check_voucher", "voucher_from_json", "voucher_text", "voucher_to_json"]

VOUCHER_FIELDS = ("amount", "counter", "device", "payee", "signature", "time_ms")


class VoucherError(CoreError):
    """A voucher that does not verify offline or cannot be read."""


def voucher_text(chain_id: str, voucher: dict[str, Any]) -> str:
    return statement(chain_id, "voucher", voucher["device"], int(voucher["counter"]),
                     [voucher["payee"], int(voucher["amount"]), int(voucher["time_ms"])])


def check_voucher(chain_id: str, voucher: dict[str, Any], device_key: bytes, suite_name: str) -> None:
    """What the payee's device checks offline: the fields and the device's signature."""
    if sorted(voucher) != sorted(VOUCHER_FIELDS):
        raise VoucherError("a voucher has exactly " + ", ".join(VOUCHER_FIELDS))
    if int(voucher["amount"]) <= 0 or int(voucher["counter"]) <= 0:
        raise VoucherError("amount and counter are positive")
    if not get_suite(suite_name).verify(device_key, voucher_text(chain_id, voucher).encode(), voucher["signature"]):
        raise VoucherError(f"the voucher is not signed by device {voucher['device']}'s key")


def voucher_to_json(voucher: dict[str, Any], device_key: bytes) -> str:
    """The voucher as it travels between devices (NFC, a QR code): JSON, bytes in base64."""
    return json.dumps({**voucher, "signature": base64.b64encode(voucher["signature"]).decode(),
                       "device_key": base64.b64encode(device_key).decode()}, sort_keys=True)


def voucher_from_json(text: str) -> tuple[dict[str, Any], bytes]:
    try:
        document = json.loads(text)
        device_key = base64.b64decode(document.pop("device_key"))
        document["signature"] = base64.b64decode(document["signature"])
        voucher = {name: document[name] for name in VOUCHER_FIELDS}
    except (ValueError, KeyError, TypeError) as exc:
        raise VoucherError(f"not a voucher: {exc}") from exc
    return voucher, device_key


@dataclass
class OfflineDevice:
    """A device's key and its voucher counter (persisted before a voucher leaves the device, so
    a crash never makes an honest device reuse a counter)."""

    device: str
    key: HolderKey
    chain_id: str
    counter: int = 0
    state_file: Path | None = None

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
        tmp.write_text(json.dumps({"device": self.device, "counter": self.counter, "chain_id": self.chain_id}))
        os.replace(tmp, self.state_file)

    @classmethod
    def load(cls, state_file: Path, key: HolderKey) -> OfflineDevice:
        document = json.loads(state_file.read_text())
        return cls(document["device"], key, document["chain_id"], int(document["counter"]), state_file)
