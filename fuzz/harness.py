"""What every fuzz target shares: the contract checks and a deterministic consortium.

The contract a target checks, for bytes from a stranger:

* **refusal is documented**: a decoder that refuses raises its own documented error (``CodecError``,
  ``TxRejected``, ``HandshakeFailed``, ...) with a message; any other exception is a finding
  (:func:`accepted` lets only the documented ones through);
* **no hang, bounded memory**: libFuzzer's ``-timeout`` and ``-rss_limit_mb`` (set by
  ``fuzz/run.py``) turn a slow input or a memory blow-up into a finding; the address-space limit
  the runner sets makes a huge allocation a ``MemoryError`` (a finding) instead of swap;
* **canonical round trip**: where an encoder exists, a value decoded from bytes re-encodes to
  exactly those bytes and decodes back to itself (:func:`round_trips`).

A violation raises :class:`ContractViolation`, which libFuzzer reports as a crash and saves.

Known findings (:class:`KnownFinding`) are exceptions in code this project may not change right
now: a target lists them, :func:`accepted` lets a matching exception through and counts it, and
docs/fuzzing.md says where each one is. Everything else still fails.

No ``assert`` here: ``python -O`` would strip the checks.
"""

from __future__ import annotations

import functools
import hashlib
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "NOW_MS",
    "Consortium",
    "ContractViolation",
    "KnownFinding",
    "Member",
    "accepted",
    "consortium",
    "expect",
    "known_hits",
    "nesting_depth",
    "round_trips",
    "seed_bytes",
]

T = TypeVar("T")

#: the fuzz consortium's clock: inside every certificate's validity window
NOW_MS = 1_800_000_000_000
_VALID_FROM_MS = NOW_MS - 10**11
_VALID_MS = 2 * 10**11


class ContractViolation(Exception):  # noqa: N818 - what libFuzzer reports as the crash
    """The target's contract does not hold for this input."""


def expect(condition: bool, message: str) -> None:
    """Raise :class:`ContractViolation` with ``message`` unless ``condition``."""
    if not condition:
        raise ContractViolation(message)


@dataclass(frozen=True)
class KnownFinding:
    """A finding in code this project may not change now: ``error`` raised in ``module_path`` (a
    path ending, e.g. ``pilotchain/apps/currency/offline.py``: the innermost pilotchain frame of
    the traceback is in that file — where it raised, or the pilotchain line that called the
    library that raised)."""

    ident: str
    error: type[BaseException]
    module_path: str
    summary: str

    def matches(self, exc: BaseException) -> bool:
        if not isinstance(exc, self.error):
            return False
        frames = [frame.filename.replace("\\", "/") for frame in traceback.extract_tb(exc.__traceback__)]
        ours = [name for name in frames if "/pilotchain/" in name]
        return bool(ours) and ours[-1].endswith(self.module_path)


_known_hits: Counter[str] = Counter()


def known_hits() -> dict[str, int]:
    """How often each known finding matched in this process."""
    return dict(_known_hits)


def accepted(
    errors: tuple[type[BaseException], ...],
    function: Callable[..., T],
    *args: Any,
    known: Sequence[KnownFinding] = (),
    **kwargs: Any,
) -> T | None:
    """``function(*args, **kwargs)``, or None when it refused with one of ``errors`` (which must
    say why: an empty message is a violation) or matched a ``known`` finding. Any other
    exception propagates: the finding."""
    try:
        return function(*args, **kwargs)
    except errors as exc:
        expect(bool(str(exc).strip()), f"{type(exc).__name__} raised without a message")
        return None
    except Exception as exc:
        for finding in known:
            if finding.matches(exc):
                _known_hits[finding.ident] += 1
                return None
        raise


def round_trips(value: Any, data: bytes, type_: Any) -> None:
    """``value``, decoded from ``data`` as ``type_``, re-encodes to ``data`` exactly and
    decodes back to an equal value."""
    from pilotchain.codec import decode, encode

    encoded = encode(value)
    expect(encoded == bytes(data), f"{getattr(type_, '__name__', type_)} decoded from bytes that it does not re-encode to")
    expect(decode(encoded, type_) == value, f"{getattr(type_, '__name__', type_)} does not decode back to itself")


def nesting_depth(value: Any) -> int:
    """How deep a decoded value nests (a scalar is 0, ``[1]`` is 1), as ``check_nesting`` counts."""
    if isinstance(value, (list, tuple)):
        return 1 + max((nesting_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((max(nesting_depth(k), nesting_depth(v)) for k, v in value.items()), default=0)
    return 0


def seed_bytes(*parts: object) -> bytes:
    """32 deterministic bytes (key seeds) named by ``parts``."""
    return hashlib.sha256(("pilotchain fuzz " + "/".join(map(str, parts))).encode()).digest()


@dataclass(frozen=True)
class Member:
    """A consortium member's identity: subject, org, roles, key and canonical certificate."""

    subject: str
    org: str
    key: Any
    certificate: bytes

    @property
    def public_key_der(self) -> bytes:
        return bytes(self.key.public_key().to_der())


@dataclass(frozen=True)
class Consortium:
    """Two organisations, each with an admin, a client and a validator identity, four validator
    keys and the genesis naming them — all from fixed seeds, so every run sees the same bytes."""

    suite: Any
    authorities: tuple[Any, ...]
    members: dict[str, Member]
    validator_keys: tuple[Any, ...]
    genesis: Any

    def membership(self) -> Any:
        from pilotchain.identity.membership import Membership

        return Membership(self.suite, [ca.org_certificate for ca in self.authorities])


@functools.cache
def consortium(suite_name: str = "intl") -> Consortium:
    from pilotchain.codec import encode
    from pilotchain.crypto import get_suite
    from pilotchain.identity.authority import CertificateAuthority
    from pilotchain.ledger.genesis import ChainParams, Genesis, ValidatorInfo

    suite = get_suite(suite_name)
    authorities = []
    members: dict[str, Member] = {}
    for org in ("org-a", "org-b"):
        ca = CertificateAuthority.create(
            suite, suite.private_key_from_seed(seed_bytes(suite_name, org, "ca")), org_id=org,
            display_name=f"Fuzz {org}", now_ms=_VALID_FROM_MS, valid_ms=_VALID_MS,
        )
        authorities.append(ca)
        for role in ("admin", "client", "validator"):
            key = suite.private_key_from_seed(seed_bytes(suite_name, org, role))
            certificate = ca.issue(f"{org}-{role}", (role,), key.public_key().to_der(),
                                   now_ms=_VALID_FROM_MS, valid_ms=_VALID_MS - 1000)
            members[f"{org}-{role}"] = Member(f"{org}-{role}", org, key, encode(certificate))
    validator_keys = tuple(suite.private_key_from_seed(seed_bytes(suite_name, "validator", i)) for i in range(4))
    genesis = Genesis(
        chain_id="fuzz-chain",
        suite=suite_name,
        genesis_time_ms=_VALID_FROM_MS,
        organizations=tuple(encode(ca.org_certificate) for ca in authorities),
        validators=tuple(
            ValidatorInfo(name=f"v{i}", org=("org-a", "org-b")[i % 2], public_key=key.public_key().to_der())
            for i, key in enumerate(validator_keys)
        ),
        params=ChainParams(state_bucket_bits=8),
    )
    genesis.check()
    return Consortium(suite, tuple(authorities), members, validator_keys, genesis)
