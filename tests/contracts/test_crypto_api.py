"""The contract crypto API (``hash``, ``verify_signature``) on a governed chain of each suite: a
deployed contract checks signatures by keys outside the consortium, hashes in the chain's own
hash, pays the documented steps whatever a node has cached, and runs out of steps at the
documented rate; no mangled key or signature makes it raise; the bare builtin name ``hash``
stays refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotchain.codec import encode
from pilotchain.contracts import bench
from pilotchain.contracts.api import API_NAMES
from pilotchain.contracts.runtime import (
    CRYPTO_COSTS,
    VERIFY_MESSAGE_BYTES_MAX,
    VERIFY_PUBLIC_KEY_BYTES_MAX,
    VERIFY_SIGNATURE_BYTES_MAX,
)
from pilotchain.contracts.sandbox import BUILTIN_NAMES, CodeRejected, compile_contract
from pilotchain.crypto import get_suite
from pilotchain.ledger.execution import ContractError
from pilotchain.ledger.genesis import GENESIS_STATE_KEY
from pilotchain.ledger.tx import RejectCode
from pilotchain.sdk import Client, TxResult
from pilotchain.testing import LocalChain

from .harness import MemoryStore, run
from .helpers import deploy, governed_chain

ALLOWED = BUILTIN_NAMES | frozenset(API_NAMES)

SIGCHECK = """
from pilotchain.contracts.api import hash, verify_signature

def check(public_key, message, signature):
    return verify_signature(public_key, message, signature)

def check_many(public_key, message, signature, count):
    valid = 0
    for i in range(count):
        if verify_signature(public_key, message, signature):
            valid += 1
    return valid

def check_sized(public_key, signature, size):
    return verify_signature(public_key, b"y" * size, signature)

def sized(size):
    message = b"y" * size
    return None

def digest(data):
    return hash(data)

def idle():
    return None
"""

MESSAGE = b"pilotchain consent v1: patient p-17 lets hospital-b read record 42 until 2026-01-01"
OTHER_SUITE = {"intl": "gm", "gm": "intl"}


class Signed:
    """A key pair of the chain's suite that no consortium member holds, and one signature."""

    def __init__(self, suite_name: str) -> None:
        self.suite = get_suite(suite_name)
        self.private_key = self.suite.generate_private_key()
        self.public_key = self.private_key.public_key().to_der()
        self.signature = self.private_key.sign(MESSAGE)


@pytest.fixture(scope="module", params=["intl", "gm"])
def chain(request: pytest.FixtureRequest) -> Iterator[LocalChain]:
    with governed_chain(orgs=2, suite=request.param) as chain:
        deploy(chain, "sigcheck", SIGCHECK)
        yield chain


@pytest.fixture(scope="module")
def signer(chain: LocalChain) -> Signed:
    return Signed(chain.consortium.genesis.suite)


def _invoke(chain: LocalChain, method: str, args: dict[str, Any]) -> TxResult:
    client: Client = chain.client()
    return client.invoke(
        chain.identity(next(iter(chain.consortium.clients))), "sigcheck", method, args, check=False
    )


def _check(chain: LocalChain, public_key: bytes, message: Any, signature: bytes) -> Any:
    result = _invoke(
        chain, "check", {"public_key": public_key, "message": message, "signature": signature}
    )
    assert result.ok, result.receipt
    return result.result


def _steps(result: TxResult) -> int:
    assert result.receipt is not None
    return result.receipt.steps_used


# ------------------------------------------------------------------------------- answers


def test_a_signature_by_a_key_outside_the_consortium(chain: LocalChain) -> None:
    signer = Signed(chain.consortium.genesis.suite)
    assert _check(chain, signer.public_key, MESSAGE, signer.signature) is True
    # a str message is its UTF-8 bytes
    assert _check(chain, signer.public_key, MESSAGE.decode(), signer.signature) is True


def test_what_does_not_verify_is_false(chain: LocalChain) -> None:
    suite_name = chain.consortium.genesis.suite
    signer, stranger = Signed(suite_name), Signed(suite_name)
    key, signature = signer.public_key, signer.signature
    tampered_signature = bytes([signature[0], signature[1] ^ 1]) + signature[2:]
    cases = {
        "tampered message": (key, MESSAGE + b".", signature),
        "wrong key": (stranger.public_key, MESSAGE, signature),
        "another signer's signature": (key, MESSAGE, stranger.signature),
        "tampered signature": (key, MESSAGE, tampered_signature),
        "garbage key": (b"\x30\x2a garbage", MESSAGE, signature),
        "empty key": (b"", MESSAGE, signature),
        "key with a flipped byte": (key[:-1] + bytes([key[-1] ^ 1]), MESSAGE, signature),
        "key of the other suite": (Signed(OTHER_SUITE[suite_name]).public_key, MESSAGE, signature),
        "garbage signature": (key, MESSAGE, b"\x30" * 70),
        "empty signature": (key, MESSAGE, b""),
        "oversized key": (key + b"\x00" * VERIFY_PUBLIC_KEY_BYTES_MAX, MESSAGE, signature),
        "oversized signature": (key, MESSAGE, signature + b"\x00" * VERIFY_SIGNATURE_BYTES_MAX),
    }
    for case, (public_key, message, sig) in cases.items():
        assert _check(chain, public_key, message, sig) is False, case


def test_misuse_fails_the_transaction(chain: LocalChain) -> None:
    signer = Signed(chain.consortium.genesis.suite)
    not_bytes = _invoke(
        chain, "check", {"public_key": "hex?", "message": MESSAGE, "signature": signer.signature}
    )
    assert not_bytes.status == RejectCode.EXECUTION_FAILED.value
    assert "takes bytes" in not_bytes.receipt.message
    too_long = _invoke(
        chain,
        "check_sized",
        {
            "public_key": signer.public_key,
            "signature": signer.signature,
            "size": VERIFY_MESSAGE_BYTES_MAX + 1,
        },
    )
    assert too_long.status == RejectCode.EXECUTION_FAILED.value
    assert f"at most {VERIFY_MESSAGE_BYTES_MAX} bytes" in too_long.receipt.message


def test_hash_is_the_chain_suite_hash(chain: LocalChain) -> None:
    suite = get_suite(chain.consortium.genesis.suite)
    for data in (b"", b"abc", b"\x00" * 5000, "consent ✓"):
        result = _invoke(chain, "digest", {"data": data})
        raw = data.encode() if isinstance(data, str) else data
        assert result.ok and result.result == suite.hash(raw), data
    assert len(suite.hash(b"abc")) == 32


@st.composite
def _mangled(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` cut, with bits flipped, its tail replaced, or just random bytes."""
    kind = draw(st.sampled_from(["cut", "flip", "tail", "random"]))
    if kind == "cut":
        return valid[: draw(st.integers(0, len(valid)))]
    if kind == "flip":
        at = draw(st.integers(0, len(valid) - 1))
        return valid[:at] + bytes([valid[at] ^ (1 << draw(st.integers(0, 7)))]) + valid[at + 1 :]
    if kind == "tail":
        cut = draw(st.integers(0, len(valid)))
        return valid[:cut] + draw(st.binary(min_size=len(valid) - cut, max_size=len(valid) - cut))
    return draw(st.binary(max_size=VERIFY_PUBLIC_KEY_BYTES_MAX + 8))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_no_key_or_signature_makes_it_raise(
    chain: LocalChain, signer: Signed, data: st.DataObject
) -> None:
    # straight through the runtime (no blocks), over a state that holds the chain's genesis
    store = MemoryStore({GENESIS_STATE_KEY: encode(chain.consortium.genesis)})
    public_key = data.draw(st.one_of(st.just(signer.public_key), _mangled(signer.public_key)))
    signature = data.draw(st.one_of(st.just(signer.signature), _mangled(signer.signature)))
    args = {"public_key": public_key, "message": MESSAGE, "signature": signature}
    result, _state = run(SIGCHECK, "check", args, store=store)
    assert not isinstance(result, ContractError), result
    # only the genuine pair verifies: both suites refuse other encodings of a valid signature
    assert result is (public_key == signer.public_key and signature == signer.signature)


# ------------------------------------------------------------------------------- metering


def test_steps_follow_the_documented_costs_whatever_is_cached(chain: LocalChain) -> None:
    costs = CRYPTO_COSTS[chain.consortium.genesis.suite]
    signer = Signed(chain.consortium.genesis.suite)
    idle = _steps(_invoke(chain, "idle", {}))
    args = {"public_key": signer.public_key, "message": MESSAGE, "signature": signer.signature}
    # the first verification parses the key (no node has seen it), the second finds it cached
    first, second = _invoke(chain, "check", args), _invoke(chain, "check", args)
    assert first.result is True and second.result is True
    assert _steps(first) == _steps(second) == idle + costs.verify_cost(len(MESSAGE))
    garbage = _invoke(chain, "check", {**args, "public_key": b"junk"})
    assert garbage.result is False and _steps(garbage) == _steps(first)
    size = VERIFY_MESSAGE_BYTES_MAX
    built = _steps(_invoke(chain, "sized", {"size": size}))
    costly = _invoke(
        chain,
        "check_sized",
        {"public_key": signer.public_key, "signature": signer.signature, "size": size},
    )
    assert costly.result is False and _steps(costly) == built + costs.verify_cost(size)
    assert costs.verify_cost(size) == costs.verify_steps + 64 * costs.verify_steps_per_kib

    hashed = _invoke(chain, "digest", {"data": b"z" * 3000})
    assert _steps(hashed) == idle + costs.hash_cost(3000)


def test_verifying_in_a_loop_runs_out_of_steps_at_the_documented_rate(chain: LocalChain) -> None:
    costs = CRYPTO_COSTS[chain.consortium.genesis.suite]
    steps_max = chain.client().query("gov", "params")["contract_steps_max"]
    signer = Signed(chain.consortium.genesis.suite)
    args = {"public_key": signer.public_key, "message": MESSAGE, "signature": signer.signature}
    none = _invoke(chain, "check_many", {**args, "count": 0})
    one = _invoke(chain, "check_many", {**args, "count": 1})
    assert none.result == 0 and one.result == 1
    per_verification = _steps(one) - _steps(none)
    # one loop step, one verification, one guarded `valid += 1`
    assert costs.verify_cost(len(MESSAGE)) < per_verification <= costs.verify_cost(len(MESSAGE)) + 3
    fits = (steps_max - _steps(none)) // per_verification
    assert fits <= steps_max // costs.verify_steps  # no verification is cheaper than documented

    full = _invoke(chain, "check_many", {**args, "count": fits})
    assert full.ok and full.result == fits
    assert steps_max - per_verification < _steps(full) <= steps_max
    over = _invoke(chain, "check_many", {**args, "count": fits + 1})
    assert over.status == RejectCode.OUT_OF_STEPS.value
    assert "out of steps" in over.receipt.message


# ------------------------------------------------------------------------------- the sandbox


def test_the_bare_builtin_hash_stays_refused() -> None:
    with pytest.raises(CodeRejected, match="from pilotchain.contracts.api import hash"):
        compile_contract("def attack():\n    return hash('a')\n", ALLOWED)
    with pytest.raises(CodeRejected):
        compile_contract("def attack():\n    return hash\n", ALLOWED)
    compile_contract(SIGCHECK, ALLOWED)
    compile_contract(
        "from pilotchain.contracts.api import verify_signature\n"
        "def ok(k, m, s):\n    return verify_signature(k, m, s)\n",
        ALLOWED,
    )


def test_hash_imports_only_as_itself() -> None:
    with pytest.raises(CodeRejected, match="no 'as'"):
        compile_contract("from pilotchain.contracts.api import hash as h\n", ALLOWED)


def test_the_cost_measurement_runs() -> None:
    report = bench.crypto_api_costs("intl", loop_steps=2_000, verifies=4, rounds=1)
    assert report["per_call"]["verify, new key"]["us_median"] > 0
    assert report["charged_steps"]["hash 32 B"] == CRYPTO_COSTS["intl"].hash_cost(32)
