"""The child process of the vault's kill -9 test: writes (and now and then purges) payloads forever.

    python vault_writer.py HOME ROUND [PAUSE_POINT OCCURRENCE]

Prints ``ack ID`` after each put returned, ``purging ID`` before and ``purged ID`` after each purge.
With a pause point it stops at that point's OCCURRENCE-th passage, prints ``paused`` and blocks on
stdin until the parent kills it: a kill at an exact moment of the protocol, without sleeping.
Payload bytes are a pure function of (round, index), so the parent can check what it reads back.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from typing import Any

from pilotchain.apps.exchange.store import VaultLimits, VaultStore

SUITE = "intl"
PASSPHRASE = b"crash test passphrase"
LIMITS = VaultLimits(chunk_bytes=4096, payload_bytes_max=64 * 1024, kdf_iterations=1000)
PURGE_EVERY = 4

#: where the child can stop: just before the temporary file is renamed into objects/, just after,
#: just after a put's LMDB commit (durable, not yet acknowledged), just after a purge's commit
PAUSE_POINTS = ("before-rename", "after-rename", "after-put-commit", "after-purge-commit")


def payload_id(round_number: int, index: int) -> str:
    return f"r{round_number}-{index}"


def payload_bytes(round_number: int, index: int) -> bytes:
    rng = random.Random(f"vault-crash/{round_number}/{index}")
    size = rng.choice([0, 1, 4095, 4096, 4097, 3 * 4096, rng.randrange(0, 40_000)])
    return rng.randbytes(size)


def chunks_of(data: bytes, seed: int) -> list[bytes]:
    """``data`` cut at random places (the store re-cuts it into its own chunks)."""
    rng = random.Random(seed)
    pieces, start = [], 0
    while start < len(data):
        end = min(len(data), start + rng.randrange(1, 9000))
        pieces.append(data[start:end])
        start = end
    return pieces


def open_store(home: str) -> VaultStore:
    return VaultStore.open(home, SUITE, PASSPHRASE, limits=LIMITS)


def _pause() -> None:
    print("paused", flush=True)
    sys.stdin.read()  # the parent kills us here
    os._exit(3)


def _arm(point: str, occurrence: int) -> None:
    """Stop at the ``occurrence``-th passage through ``point`` (patched in this child only)."""
    passages = 0

    def due() -> bool:
        nonlocal passages
        passages += 1
        return passages == occurrence

    def around(original: Callable[..., Any], *, before: bool) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before and due():
                _pause()
            result = original(*args, **kwargs)
            if not before and due():
                _pause()
            return result

        return wrapper

    if point in ("before-rename", "after-rename"):
        original_replace = os.replace

        def replace(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
            if str(source).endswith(".part"):
                around(original_replace, before=point == "before-rename")(source, target, *args, **kwargs)
            else:
                original_replace(source, target, *args, **kwargs)

        os.replace = replace  # type: ignore[assignment]  # in this child only
    elif point == "after-put-commit":
        VaultStore._commit_new_row = around(VaultStore._commit_new_row, before=False)  # type: ignore[method-assign]
    elif point == "after-purge-commit":
        VaultStore._commit_purge = around(VaultStore._commit_purge, before=False)  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown pause point {point!r}")


def main(argv: list[str]) -> None:
    home, round_number = argv[1], int(argv[2])
    if len(argv) > 3:
        _arm(argv[3], int(argv[4]))
    store = open_store(home)
    index = 0
    while True:
        identifier = payload_id(round_number, index)
        data = payload_bytes(round_number, index)
        store.put(
            identifier, chunks_of(data, index), owner_org="org-a", media_type="application/octet-stream",
            classification="internal", retention_until_ms=10**13, created_ms=index,
        )
        print(f"ack {identifier}", flush=True)
        if index % PURGE_EVERY == PURGE_EVERY - 1:
            victim = payload_id(round_number, index - 2)
            print(f"purging {victim}", flush=True)
            store.purge(victim, "crash test", purged_ms=index)
            print(f"purged {victim}", flush=True)
        index += 1


if __name__ == "__main__":
    main(sys.argv)
