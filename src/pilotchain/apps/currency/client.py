"""What the central bank's officers, an operator, a wallet holder (through the operator's app), a
merchant and the auditor do, as Python calls over the SDK.

Every call is a signed transaction or a query of the ``currency`` contract. A holder's
instructions are signed with the holder's own key (:class:`HolderKey`), which the operator never
holds: the operator's member identity signs the transaction that carries the instruction, and the
contract verifies both.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilotchain.apps.currency.statements import check_id, statement
from pilotchain.crypto import PrivateKey, Suite, get_suite
from pilotchain.errors import CoreError
from pilotchain.sdk import Client, Identity, TxResult, build_transaction

__all__ = ["CONTRACT", "CurrencyClient", "CurrencyError", "HolderKey", "new_client_key", "wallet_id_of"]

CONTRACT = "currency"


class CurrencyError(CoreError):
    """A currency call the contract refused (``code``: its RejectCode), with the contract's reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def new_client_key() -> str:
    """A fresh idempotency key for one instruction (128 random bits)."""
    return secrets.token_hex(16)


@dataclass
class HolderKey:
    """A wallet holder's (or an offline device's) own key pair, in the chain's suite, and the
    sequence numbers it signs with: microseconds of the holder's clock, always rising, so a
    device needs no round trip before it signs (the contract only asks that each one exceeds
    the last it accepted)."""

    suite: Suite
    private_key: PrivateKey
    _last_seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def generate(cls, suite_name: str) -> HolderKey:
        suite = get_suite(suite_name)
        return cls(suite, suite.generate_private_key())

    @classmethod
    def load(cls, path: Path, suite_name: str) -> HolderKey:
        suite = get_suite(suite_name)
        return cls(suite, suite.load_private_key_pem(path.read_bytes()))

    def save(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(self.private_key.to_pem())

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().to_der()

    def next_seq(self, after: int = 0) -> int:
        with self._lock:
            self._last_seq = max(time.time_ns() // 1000, self._last_seq + 1, after + 1)
            return self._last_seq

    def sign(self, text: str) -> bytes:
        return self.private_key.sign(text.encode("utf-8"))


def wallet_id_of(key: HolderKey, prefix: str = "w") -> str:
    """A pseudonymous wallet id derived from the key (the operator may choose another)."""
    return f"{prefix}-{key.suite.hash(key.public_key).hex()[:20]}"


class CurrencyClient:
    """One member identity (an officer, an operator's app, the regulator) acting on the chain."""

    def __init__(self, client: Client, identity: Identity, contract: str = CONTRACT, *,
                 clock_ms: Callable[[], int] | None = None) -> None:
        """``clock_ms``: the time transactions are built at (default: this machine's clock); a
        test that moves a development chain's clock passes the chain's."""
        self.client = client
        self.identity = identity
        self.contract = contract
        self.clock_ms = clock_ms
        self._chain_id: str | None = None

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = self.client.chain_id()
        return self._chain_id

    def _invoke(self, method: str, args: dict[str, Any]) -> Any:
        if self.clock_ms is None:
            result: TxResult = self.client.invoke(self.identity, self.contract, method, args, check=False)
        else:
            tx = build_transaction(self.identity, self.chain_id, self.contract, method, args, now_ms=self.clock_ms())
            result = self.client.submit_and_wait(tx)
        if result.receipt is None or result.receipt.status != "OK":
            raise CurrencyError(result.receipt.status if result.receipt else (result.code or result.state),
                                result.receipt.message if result.receipt else str(result.message))
        return result.result

    def query(self, method: str, args: dict[str, Any] | None = None) -> Any:
        return self.client.query(self.contract, method, args)

    def sign(self, key: HolderKey, kind: str, wallet: str, fields: Sequence[object], seq: int | None = None
             ) -> tuple[int, bytes]:
        seq = key.next_seq() if seq is None else seq
        return seq, key.sign(statement(self.chain_id, kind, wallet, seq, fields))

    # -- the central bank: maker-checker

    def propose(self, action: str, args: dict[str, Any], proposal_id: str | None = None) -> dict[str, Any]:
        proposal_id = proposal_id or f"{action}-{secrets.token_hex(6)}"
        result: dict[str, Any] = self._invoke("propose", {"proposal_id": proposal_id, "action": action, "args": args})
        return result

    def approve(self, proposal_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("approve", {"proposal_id": proposal_id})
        return result

    def reject(self, proposal_id: str, reason: str = "") -> None:
        self._invoke("reject", {"proposal_id": proposal_id, "reason": reason})

    # -- operators

    def open_wallet(self, wallet: str, key: HolderKey, *, kind: str = "personal", tier: int = 4, linked: str = "",
                    kyc: str = "") -> dict[str, Any]:
        """Open ``wallet`` for the holder of ``key`` (the holder signs the opening)."""
        check_id("wallet", wallet)
        operator = self.identity.org
        text = statement(self.chain_id, "open", wallet, 0, [operator, kind, tier, key.public_key])
        result: dict[str, Any] = self._invoke("open_wallet", {
            "wallet": wallet, "public_key": key.public_key, "kind": kind, "tier": tier, "linked": linked, "kyc": kyc,
            "signature": key.sign(text)})
        return result

    def load(self, wallet: str, amount: int, ref: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("load", {"wallet": wallet, "amount": amount, "ref": ref})
        return result

    def unload(self, key: HolderKey, wallet: str, amount: int, client_key: str | None = None) -> dict[str, Any]:
        client_key = client_key or new_client_key()
        seq, signature = self.sign(key, "unload", wallet, [amount, client_key])
        result: dict[str, Any] = self._invoke("unload", {"wallet": wallet, "amount": amount, "client_key": client_key,
                                                         "seq": seq, "signature": signature})
        return result

    def set_tier(self, wallet: str, tier: int, *, linked: str = "", kyc: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("set_tier", {"wallet": wallet, "tier": tier, "linked": linked, "kyc": kyc})
        return result

    def freeze(self, wallet: str, mode: str = "full", reason: str = "") -> None:
        self._invoke("freeze", {"wallet": wallet, "mode": mode, "reason": reason})

    def unfreeze(self, wallet: str, reason: str = "") -> None:
        self._invoke("unfreeze", {"wallet": wallet, "reason": reason})

    # -- holders (through their operator)

    def close(self, key: HolderKey, wallet: str, to: str = "", client_key: str | None = None) -> dict[str, Any]:
        """Close ``wallet``; its balance goes to the linked account (``to`` empty) or wallet ``to``."""
        client_key = client_key or new_client_key()
        seq, signature = self.sign(key, "close", wallet, [to, client_key])
        result: dict[str, Any] = self._invoke("close", {"wallet": wallet, "to": to, "client_key": client_key,
                                                        "seq": seq, "signature": signature})
        return result

    def open_sub_wallet(self, key: HolderKey, parent: str, sub: str, merchant: str, cap: int) -> dict[str, Any]:
        seq, signature = self.sign(key, "sub", parent, [sub, merchant, cap])
        result: dict[str, Any] = self._invoke("open_sub_wallet", {"parent": parent, "sub": sub, "merchant": merchant,
                                                                  "cap": cap, "seq": seq, "signature": signature})
        return result

    def fund_sub(self, key: HolderKey, parent: str, sub: str, amount: int) -> dict[str, Any]:
        seq, signature = self.sign(key, "fund_sub", parent, [sub, amount])
        result: dict[str, Any] = self._invoke("fund_sub", {"parent": parent, "sub": sub, "amount": amount, "seq": seq,
                                                           "signature": signature})
        return result

    def close_sub(self, key: HolderKey, parent: str, sub: str) -> dict[str, Any]:
        seq, signature = self.sign(key, "close_sub", parent, [sub])
        result: dict[str, Any] = self._invoke("close_sub", {"parent": parent, "sub": sub, "seq": seq,
                                                            "signature": signature})
        return result

    def charge(self, merchant_key: HolderKey, merchant: str, sub: str, amount: int,
               client_key: str | None = None) -> dict[str, Any]:
        """A merchant charges a sub-wallet pushed to it (the merchant's key signs)."""
        client_key = client_key or new_client_key()
        seq, signature = self.sign(merchant_key, "charge", merchant, [sub, amount, client_key])
        result: dict[str, Any] = self._invoke("charge", {"merchant": merchant, "sub": sub, "amount": amount,
                                                         "client_key": client_key, "seq": seq, "signature": signature})
        return result

    def pay_args(self, key: HolderKey, payer: str, payee: str, amount: int, client_key: str | None = None,
                 memo: str = "", seq: int | None = None) -> dict[str, Any]:
        """The arguments of a signed payment instruction (what a holder's device hands its operator)."""
        client_key = client_key or new_client_key()
        seq, signature = self.sign(key, "pay", payer, [payee, amount, client_key], seq)
        return {"payer": payer, "payee": payee, "amount": amount, "client_key": client_key, "seq": seq,
                "signature": signature, "memo": memo}

    def pay(self, key: HolderKey, payer: str, payee: str, amount: int, client_key: str | None = None,
            memo: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("pay", self.pay_args(key, payer, payee, amount, client_key, memo))
        return result

    def pay_batch(self, instructions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Submit many holders' signed payment instructions (``pay_args``) in one transaction this
        operator signs; one result per instruction, in order: ``{"ok": True, "payment": ...}`` or
        ``{"ok": False, "id", "code", "message"}`` (a refused one changed nothing)."""
        result: list[dict[str, Any]] = self._invoke("pay_batch", {"payments": list(instructions)})
        return result

    # -- programmable money

    def envelope_campaign(self, funder_key: HolderKey, funder: str, campaign: str, *, face: int, count: int,
                          merchants: Sequence[str], from_ms: int, until_ms: int) -> dict[str, Any]:
        seq, signature = self.sign(funder_key, "campaign", funder,
                                   [campaign, face, count, ",".join(merchants), from_ms, until_ms])
        result: dict[str, Any] = self._invoke("envelope_campaign", {
            "campaign": campaign, "funder": funder, "face": face, "count": count, "merchants": list(merchants),
            "from_ms": from_ms, "until_ms": until_ms, "seq": seq, "signature": signature})
        return result

    def envelope_grant(self, campaign: str, wallet: str) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("envelope_grant", {"campaign": campaign, "wallet": wallet})
        return result

    def envelope_expire(self, campaign: str, limit: int = 200) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("envelope_expire", {"campaign": campaign, "limit": limit})
        return result

    def refund(self, payee_key: HolderKey, payee: str, payment_id: str, amount: int,
               client_key: str | None = None) -> dict[str, Any]:
        client_key = client_key or new_client_key()
        seq, signature = self.sign(payee_key, "refund", payee, [payment_id, amount, client_key])
        result: dict[str, Any] = self._invoke("refund", {"payment_id": payment_id, "amount": amount,
                                                         "client_key": client_key, "seq": seq, "signature": signature})
        return result

    def escrow_open(self, key: HolderKey, payer: str, merchant: str, *, unit_price: int, units: int, until_ms: int,
                    client_key: str | None = None) -> dict[str, Any]:
        client_key = client_key or new_client_key()
        seq, signature = self.sign(key, "escrow", payer, [merchant, unit_price, units, until_ms, client_key])
        result: dict[str, Any] = self._invoke("escrow_open", {
            "payer": payer, "merchant": merchant, "unit_price": unit_price, "units": units, "until_ms": until_ms,
            "client_key": client_key, "seq": seq, "signature": signature})
        return result

    def escrow_deliver(self, merchant_key: HolderKey, merchant: str, escrow_id: str, units: int) -> dict[str, Any]:
        seq, signature = self.sign(merchant_key, "deliver", merchant, [escrow_id, units])
        result: dict[str, Any] = self._invoke("escrow_deliver", {"escrow_id": escrow_id, "units": units, "seq": seq,
                                                                 "signature": signature})
        return result

    def escrow_stop(self, escrow_id: str, signer: str, key: HolderKey | None = None,
                    wallet: str | None = None) -> dict[str, Any]:
        """``signer``: merchant or payer (with that wallet's ``key``), or operator (no key)."""
        args: dict[str, Any] = {"escrow_id": escrow_id, "signer": signer}
        if key is not None and wallet is not None:
            seq, signature = self.sign(key, "stop", wallet, [escrow_id])
            args |= {"seq": seq, "signature": signature}
        result: dict[str, Any] = self._invoke("escrow_stop", args)
        return result

    def hold(self, key: HolderKey, payer: str, payee: str, amount: int, *, until_ms: int, arbiter: str = "",
             client_key: str | None = None) -> dict[str, Any]:
        client_key = client_key or new_client_key()
        seq, signature = self.sign(key, "hold", payer, [payee, amount, until_ms, arbiter, client_key])
        result: dict[str, Any] = self._invoke("hold", {
            "payer": payer, "payee": payee, "amount": amount, "until_ms": until_ms, "arbiter": arbiter,
            "client_key": client_key, "seq": seq, "signature": signature})
        return result

    def decide_hold(self, decision: str, key: HolderKey, signer: str, hold_id: str) -> dict[str, Any]:
        """``decision``: execute (to the payee) or release (back to the payer), signed by ``signer``."""
        seq, signature = self.sign(key, decision, signer, [hold_id])
        result: dict[str, Any] = self._invoke(f"hold_{decision}", {"hold_id": hold_id, "signer": signer, "seq": seq,
                                                                   "signature": signature})
        return result

    def pay_interest(self, wallet: str) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("pay_interest", {"wallet": wallet})
        return result

    # -- offline payments

    def offline_fund(self, key: HolderKey, wallet: str, device: str, device_key: bytes, amount: int) -> dict[str, Any]:
        """Move ``amount`` of the wallet's funds into offline device ``device`` (its public key)."""
        seq, signature = self.sign(key, "offline_fund", wallet, [device, device_key, amount])
        result: dict[str, Any] = self._invoke("offline_fund", {
            "wallet": wallet, "device": device, "device_key": device_key, "amount": amount, "seq": seq,
            "signature": signature})
        return result

    def settle(self, payee: str, vouchers: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Settle vouchers the payee received offline; one verdict per voucher."""
        result: list[dict[str, Any]] = self._invoke("settle", {"payee": payee, "vouchers": list(vouchers)})
        return result

    def offline_reclaim(self, device: str) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("offline_reclaim", {"device": device})
        return result

    # -- the regulator

    def disclosure_request(self, wallet: str, basis: str, reason: str = "",
                           request_id: str | None = None) -> dict[str, Any]:
        request_id = request_id or f"req-{secrets.token_hex(8)}"
        result: dict[str, Any] = self._invoke("disclosure_request", {"request_id": request_id, "wallet": wallet,
                                                                     "basis": basis, "reason": reason})
        return result

    def disclosure_approve(self, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._invoke("disclosure_approve", {"request_id": request_id})
        return result

    def submit(self, method: str, args: dict[str, Any]) -> Any:
        """Submit already-signed arguments (e.g. an instruction a holder's device prepared)."""
        return self._invoke(method, args)

    # -- reading

    def wallet(self, wallet: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.query("wallet", {"wallet_id": wallet})
        return result

    def payment(self, payment_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.query("payment", {"payment_id": payment_id})
        return result

    def operator(self, org: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.query("operator", {"org": org})
        return result

    def supply(self) -> dict[str, Any]:
        result: dict[str, Any] = self.query("supply_audit")
        return result

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self.query("config")
        return result
