"""trace — parts traceability (S4): GS1 EPCIS 2.0 events (JSON-LD), each anchored by its EPCIS Event Hash ID.

    capture(event, hash_id)     a member records an event it observed; ``hash_id`` is the event's
                                Event Hash ID (``ni:///sha-256;<hex>?ver=CBV2.0``). The same event
                                gives the same id whoever computes it, so a second capture of it —
                                by anyone — is refused as a duplicate.

The contract stores the event as given and indexes it under every identifier it names (EPCs,
classes, parent, inputs, outputs). Identifiers must be canonical GS1 Digital Link URIs
(``https://id.gs1.org/...``, no query), the form the hash algorithm normalises to, so that one
object has one index entry; ``pilotchain.apps.supply.client`` rewrites EPC URNs to it before
capturing (the hash id does not change). The contract does not recompute the hash id (the
canonicalisation is a client library, ``apps/supply/epcis.py``): every reader does, and refuses
an event whose stored id is not its hash.

Queries: event(hash_id), events_of(identifier), count().
"""

from pilotchain.contracts.api import Map, Variable, context, emit, reject_arguments, require

events = Map("events")
index = Map("index")
counter = Variable("counter")

TYPES = ["ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"]
ID_FIELDS = ["epcList", "childEPCs", "inputEPCList", "outputEPCList"]
CLASS_FIELDS = ["quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"]
HEX = "0123456789abcdef"
PER_IDENTIFIER_MAX = 4096
IDENTIFIERS_MAX = 256


def _check_id(hash_id):
    prefix = "ni:///sha-256;"
    suffix = "?ver=CBV2.0"
    if not isinstance(hash_id, str) or len(hash_id) != len(prefix) + 64 + len(suffix):
        reject_arguments("hash_id is ni:///sha-256;<64 hex digits>?ver=CBV2.0")
    if not hash_id.startswith(prefix) or not hash_id.endswith(suffix):
        reject_arguments("hash_id is ni:///sha-256;<64 hex digits>?ver=CBV2.0")
    for char in hash_id[len(prefix):len(prefix) + 64]:
        if char not in HEX:
            reject_arguments("hash_id has 64 lower-case hex digits")


def _identifier(value):
    if not isinstance(value, str) or not value.startswith("https://id.gs1.org/") or "?" in value or len(value) > 256:
        reject_arguments(f"{value} is not a canonical GS1 Digital Link URI (https://id.gs1.org/..., no query)")
    return value


def _identifiers(event):
    found = []
    for name in ID_FIELDS:
        values = event.get(name, [])
        if not isinstance(values, list):
            reject_arguments(f"{name} is a list")
        for value in values:
            found.append(_identifier(value))
    for name in CLASS_FIELDS:
        values = event.get(name, [])
        if not isinstance(values, list):
            reject_arguments(f"{name} is a list")
        for element in values:
            if not isinstance(element, dict) or "epcClass" not in element:
                reject_arguments(f"each element of {name} has an epcClass")
            found.append(_identifier(element["epcClass"]))
    if "parentID" in event:
        found.append(_identifier(event["parentID"]))
    unique = []
    for value in found:
        if value not in unique:
            unique.append(value)
    require(len(unique) <= IDENTIFIERS_MAX, f"an event names at most {IDENTIFIERS_MAX} identifiers")
    return unique


def capture(event, hash_id):
    _check_id(hash_id)
    if not isinstance(event, dict) or event.get("type") not in TYPES:
        reject_arguments("event is an EPCIS 2.0 event (JSON-LD) of type " + ", ".join(TYPES))
    if not isinstance(event.get("eventTime"), str) or not isinstance(event.get("eventTimeZoneOffset"), str):
        reject_arguments("an event has eventTime and eventTimeZoneOffset")
    existing = events.get(hash_id)
    if existing is not None:
        require(False, f"event {hash_id} was captured already by {existing['org']} in block {existing['height']}")
    identifiers = _identifiers(event)
    for identifier in identifiers:
        listed = index.get(identifier, [])
        require(len(listed) < PER_IDENTIFIER_MAX, f"{identifier} has too many events")
        listed.append(hash_id)
        index.set(identifier, listed)
    events.set(hash_id, {"hash_id": hash_id, "event": event, "org": context.caller.org, "by": context.caller.name,
                         "height": context.height, "ms": context.timestamp_ms, "tx": context.tx_id})
    counter.set(counter.get(0) + 1)
    emit("captured", {"hash_id": hash_id, "type": event["type"], "org": context.caller.org,
                      "identifiers": identifiers})
    return hash_id


def event(hash_id):
    _check_id(hash_id)
    return events.get(hash_id)


def events_of(identifier):
    _identifier(identifier)
    return [events.get(h) for h in index.get(identifier, [])]


def count():
    return counter.get(0)
