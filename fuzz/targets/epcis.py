"""EPCIS 2.0 events (``apps/supply/epcis.py``): the JSON-LD a supply-chain partner submits or a
verifier reads back, hashed with the GS1 Event Hash ID algorithm."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from fuzz.harness import accepted, expect
from pilotchain.apps.supply.epcis import (
    EpcisError,
    event_hash_id,
    identifiers_of,
    normalise_identifiers,
)

CONTRACT = """
For any JSON value (an event, with or without its document's @context): normalise_identifiers,
event_hash_id and identifiers_of return or raise EpcisError with a message, never another
exception; the Event Hash ID is 'ni:///sha-256;', 64 hex digits and '?ver=CBV2.0', and rewriting EPC URNs as
Digital Link URIs keeps it (an event and its normalised form have the same id, as the supply
client relies on). Input: JSON text (bytes that are not JSON are skipped: the caller's JSON
parser refuses them).
"""

MAX_LEN = 16 * 1024
_HASH_ID = re.compile(r"ni:///sha-256;[0-9a-f]{64}\?ver=CBV2\.0")


def one_input(data: bytes) -> None:
    try:
        event = json.loads(data)
    except (ValueError, RecursionError):
        return
    hash_id = accepted((EpcisError,), event_hash_id, event)
    if hash_id is not None:
        expect(_HASH_ID.fullmatch(hash_id) is not None, f"an Event Hash ID of another form: {hash_id!r}")
    canonical = accepted((EpcisError,), normalise_identifiers, event)
    if canonical is not None and hash_id is not None:
        normalised_id = accepted((EpcisError,), event_hash_id, canonical)
        expect(normalised_id == hash_id, f"normalising identifiers changed the Event Hash ID: {hash_id} -> {normalised_id}")
    accepted((EpcisError,), identifiers_of, event)


def seeds() -> Iterator[bytes]:
    vectors = Path(__file__).resolve().parents[2] / "tests" / "apps" / "supply" / "epcis_vectors.json"
    for vector in json.loads(vectors.read_text())["vectors"]:
        event = dict(vector["event"])
        if vector.get("context") is not None:
            event.setdefault("@context", vector["context"])
        yield json.dumps(event, ensure_ascii=False).encode()
