"""credentials — issuers of verifiable credentials, their keys, anchored batches and status lists.

Deployed through governance like any contract. Issuers (a university's registrar, say) sign
SD-JWT VC credentials off chain; this contract holds what a verifier must check without asking
the issuer, and what no issuer may change afterwards:

    register_issuer(iss, name)          an organisation's admin: an issuer identifier (the
                                        credentials' "iss") owned by its organisation
    register_key(iss, kid, public_key, not_before_ms, not_after_ms, proof)
                                        an admin of the issuer's organisation: a signing key (SPKI
                                        DER of the chain's suite) valid from not_before_ms until
                                        not_after_ms; proof is the key's own signature over
                                        key_statement(...) below (proof of possession)
    retire_key(iss, kid, not_after_ms)  the same admin: the key's validity ends earlier (rotation:
                                        now; a compromise: from when the key was compromised).
                                        Validity only ever shrinks
    create_status_list(list_id, iss, size, bits)
                                        a member of the issuer's organisation: a status list of
                                        size entries of bits bits each, all VALID (IETF Token
                                        Status List layout: entry i in the bits of byte
                                        i * bits // 8 starting at bit (i * bits) % 8, least
                                        significant first)
    anchor(batch_id, iss, kid, batch)   a member of the issuer's organisation: the RFC 6962 tree
                                        head {"root", "size"} of a batch of issuer-signed JWTs,
                                        signed with key kid, which must be valid at this block's
                                        time (the certified issue time)
    set_status(list_id, updates)        a member of the issuer's organisation: [[index, status],
                                        ...] in one transaction; 0 VALID, 1 INVALID (revoked:
                                        final), 2 SUSPENDED

Queries: issuer(iss), key(iss, kid), batch(batch_id), batch_at(iss, n), status_list(list_id),
status(list_id, index).

State (the keys a verifier's chain snapshot proves):
    m/issuers\\0<iss>          {iss, org, name, kids, lists, batches, height, ms}
    m/keys\\0<iss>#<kid>       {iss, kid, public_key, not_before_ms, not_after_ms, height, ms}
    m/batches\\0<batch_id>     {batch_id, iss, kid, root, size, org, tx, height, ms}
    m/batch_ids\\0<iss>#<n>    the issuer's n-th batch id (0-based)
    m/lists\\0<list_id>        {list_id, iss, bits, size, lst, version, height, ms}
"""

from pilotchain.contracts.api import (
    Map,
    context,
    deny,
    emit,
    fail,
    reject_arguments,
    require,
    verify_signature,
)

issuers = Map("issuers")
keys = Map("keys")
batches = Map("batches")
batch_ids = Map("batch_ids")
lists = Map("lists")

KEY_STATEMENT_DOMAIN = "pilotchain/credentials/key/v1"
ISS_CHARS_MAX = 200
NAME_CHARS_MAX = 200
ID_CHARS_MAX = 128
ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"
ISS_CHARS = ID_CHARS + "/?=&%~+!$,;@"
KEY_BYTES_MAX = 256
SIGNATURE_BYTES_MAX = 128
KEYS_PER_ISSUER_MAX = 64
LISTS_PER_ISSUER_MAX = 256
KEY_VALIDITY_MS_MAX = 20 * 366 * 86_400_000
BATCH_SIZE_MAX = 65_536
LIST_BYTES_MAX = 65_536
UPDATES_MAX = 1024
STATUS_VALID = 0
STATUS_INVALID = 1
STATUS_SUSPENDED = 2
MEMBER_ROLES = ["client", "admin"]


def init(args=None):
    pass


def upgrade(args=None):
    pass


# ---------------------------------------------------------------------------- checks


def _check_text(name, value, limit, alphabet):
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        reject_arguments(f"{name} is a text of 1..{limit} characters")
    if alphabet is not None:
        for char in value:
            if char not in alphabet:
                reject_arguments(f"{name} uses a character outside {alphabet}")


def _check_int(name, value, low, high):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        reject_arguments(f"{name} is an integer in {low}..{high}")


def _check_iss(iss):
    _check_text("iss", iss, ISS_CHARS_MAX, ISS_CHARS)
    require(":" in iss, "iss is a URI (https://registrar.example.edu, urn:...)")


def _issuer(iss):
    _check_iss(iss)
    record = issuers.get(iss)
    if record is None:
        reject_arguments(f"no issuer {iss} is registered")
    return record


def _admin_of(org):
    if context.caller.org != org or "admin" not in context.caller.roles:
        deny(f"only an admin of {org} manages this issuer's keys")


def _member_of(org):
    if context.caller.org != org:
        deny(f"only members of {org} act for this issuer")
    allowed = False
    for role in MEMBER_ROLES:
        if role in context.caller.roles:
            allowed = True
    if not allowed:
        deny("issuing and status changes need a client or admin identity")


def key_statement(chain_id, iss, kid, not_before_ms, not_after_ms):
    """What a key signs to prove that its registrant holds it."""
    return (KEY_STATEMENT_DOMAIN + "\n" + chain_id + "\n" + iss + "\n" + kid + "\n"
            + str(not_before_ms) + "\n" + str(not_after_ms))


# ---------------------------------------------------------------------------- issuers and keys


def register_issuer(iss, name):
    _check_iss(iss)
    _check_text("name", name, NAME_CHARS_MAX, None)
    if "admin" not in context.caller.roles:
        deny("an organisation's admin registers its issuers")
    require(issuers.get(iss) is None, f"issuer {iss} is already registered")
    issuers.set(iss, {"iss": iss, "org": context.caller.org, "name": name, "kids": [], "lists": [],
                      "batches": 0, "height": context.height, "ms": context.timestamp_ms})
    emit("issuer_registered", {"iss": iss, "org": context.caller.org})


def register_key(iss, kid, public_key, not_before_ms, not_after_ms, proof):
    record = _issuer(iss)
    _admin_of(record["org"])
    _check_text("kid", kid, ID_CHARS_MAX, ID_CHARS)
    if not isinstance(public_key, bytes) or not 16 <= len(public_key) <= KEY_BYTES_MAX:
        reject_arguments(f"public_key is SubjectPublicKeyInfo DER of 16..{KEY_BYTES_MAX} bytes")
    if not isinstance(proof, bytes) or not 1 <= len(proof) <= SIGNATURE_BYTES_MAX:
        reject_arguments(f"proof is a signature of 1..{SIGNATURE_BYTES_MAX} bytes")
    _check_int("not_before_ms", not_before_ms, 0, 2**53)
    _check_int("not_after_ms", not_after_ms, not_before_ms + 1, not_before_ms + KEY_VALIDITY_MS_MAX)
    require(not_after_ms > context.timestamp_ms, "the key's validity is already over")
    require(keys.get(iss + "#" + kid) is None, f"key {kid} of {iss} is already registered")
    require(len(record["kids"]) < KEYS_PER_ISSUER_MAX, f"an issuer has at most {KEYS_PER_ISSUER_MAX} keys")
    for other in record["kids"]:
        require(keys.get(iss + "#" + other)["public_key"] != public_key, f"this key is already registered as {other}")
    statement = key_statement(context.chain_id, iss, kid, not_before_ms, not_after_ms)
    require(verify_signature(public_key, statement, proof),
            "proof is not the key's signature over its registration statement (or not a key of this chain's suite)")
    keys.set(iss + "#" + kid, {"iss": iss, "kid": kid, "public_key": public_key, "not_before_ms": not_before_ms,
                               "not_after_ms": not_after_ms, "height": context.height, "ms": context.timestamp_ms})
    record["kids"] = record["kids"] + [kid]
    issuers.set(iss, record)
    emit("key_registered", {"iss": iss, "kid": kid, "not_before_ms": not_before_ms, "not_after_ms": not_after_ms})


def retire_key(iss, kid, not_after_ms):
    record = _issuer(iss)
    _admin_of(record["org"])
    _check_text("kid", kid, ID_CHARS_MAX, ID_CHARS)
    key = keys.get(iss + "#" + kid)
    if key is None:
        reject_arguments(f"no key {kid} of {iss}")
    _check_int("not_after_ms", not_after_ms, key["not_before_ms"], key["not_after_ms"])
    key["not_after_ms"] = not_after_ms
    key["retired_height"] = context.height
    keys.set(iss + "#" + kid, key)
    emit("key_retired", {"iss": iss, "kid": kid, "not_after_ms": not_after_ms})


# ---------------------------------------------------------------------------- batches


def anchor(batch_id, iss, kid, batch):
    record = _issuer(iss)
    _member_of(record["org"])
    _check_text("batch_id", batch_id, ID_CHARS_MAX, ID_CHARS)
    _check_text("kid", kid, ID_CHARS_MAX, ID_CHARS)
    if not isinstance(batch, dict) or len(batch) != 2:
        reject_arguments('batch is the tree head {"root": 32 bytes, "size": n}')
    root = batch.get("root")
    size = batch.get("size")
    if not isinstance(root, bytes) or len(root) != 32:
        reject_arguments("batch root is 32 bytes")
    _check_int("batch size", size, 1, BATCH_SIZE_MAX)
    require(batches.get(batch_id) is None, f"batch {batch_id} is already anchored")
    key = keys.get(iss + "#" + kid)
    if key is None:
        fail(f"no key {kid} is registered for {iss}")
    now = context.timestamp_ms
    require(key["not_before_ms"] <= now, f"key {kid} is not valid before {key['not_before_ms']} (block time {now})")
    require(now < key["not_after_ms"], f"key {kid} is no longer valid since {key['not_after_ms']} (block time {now})")
    batches.set(batch_id, {"batch_id": batch_id, "iss": iss, "kid": kid, "root": root, "size": size,
                           "org": context.caller.org, "tx": context.tx_id, "height": context.height, "ms": now})
    batch_ids.set(iss + "#" + str(record["batches"]), batch_id)
    record["batches"] = record["batches"] + 1
    issuers.set(iss, record)
    emit("batch_anchored", {"batch_id": batch_id, "iss": iss, "kid": kid, "size": size, "root": root})


# ---------------------------------------------------------------------------- status lists


def create_status_list(list_id, iss, size, bits):
    record = _issuer(iss)
    _member_of(record["org"])
    _check_text("list_id", list_id, ID_CHARS_MAX, ID_CHARS)
    if bits not in [1, 2, 4, 8]:
        reject_arguments("bits is 1, 2, 4 or 8")
    _check_int("size", size, 8, LIST_BYTES_MAX * 8 // bits)
    require(size * bits % 8 == 0, "size * bits is a whole number of bytes")
    require(lists.get(list_id) is None, f"status list {list_id} already exists")
    require(len(record["lists"]) < LISTS_PER_ISSUER_MAX, f"an issuer has at most {LISTS_PER_ISSUER_MAX} lists")
    lists.set(list_id, {"list_id": list_id, "iss": iss, "bits": bits, "size": size, "lst": b"\x00" * (size * bits // 8),
                        "version": 0, "height": context.height, "ms": context.timestamp_ms})
    record["lists"] = record["lists"] + [list_id]
    issuers.set(iss, record)
    emit("status_list_created", {"list_id": list_id, "iss": iss, "size": size, "bits": bits})


def _list(list_id):
    _check_text("list_id", list_id, ID_CHARS_MAX, ID_CHARS)
    record = lists.get(list_id)
    if record is None:
        reject_arguments(f"no status list {list_id}")
    return record


def set_status(list_id, updates):
    record = _list(list_id)
    _member_of(_issuer(record["iss"])["org"])
    if not isinstance(updates, list) or not 1 <= len(updates) <= UPDATES_MAX:
        reject_arguments(f"updates is a list of 1..{UPDATES_MAX} [index, status] pairs")
    bits = record["bits"]
    mask = (1 << bits) - 1
    per_byte = 8 // bits
    lst = record["lst"]
    changed = {}
    seen = {}
    for update in updates:
        if not isinstance(update, list) or len(update) != 2:
            reject_arguments("each update is [index, status]")
        index = update[0]
        status = update[1]
        _check_int("index", index, 0, record["size"] - 1)
        _check_int("status", status, 0, mask)
        require(index not in seen, f"index {index} appears twice")
        seen[index] = True
        position = index // per_byte
        shift = (index % per_byte) * bits
        current_byte = changed.get(position, lst[position])
        current = (current_byte >> shift) & mask
        require(current != STATUS_INVALID or status == STATUS_INVALID, f"index {index} is revoked; revocation is final")
        changed[position] = (current_byte & (255 - (mask << shift))) | (status << shift)
    pieces = []
    start = 0
    for position in sorted(changed.keys()):
        pieces.append(lst[start:position])
        pieces.append(bytes([changed[position]]))
        start = position + 1
    pieces.append(lst[start:])
    record["lst"] = b"".join(pieces)
    record["version"] = record["version"] + 1
    record["height"] = context.height
    record["ms"] = context.timestamp_ms
    lists.set(list_id, record)
    emit("status_changed", {"list_id": list_id, "count": len(updates), "version": record["version"]})


# ---------------------------------------------------------------------------- queries


def issuer(iss):
    _check_iss(iss)
    return issuers.get(iss)


def key(iss, kid):
    return keys.get(iss + "#" + kid)


def batch(batch_id):
    return batches.get(batch_id)


def batch_at(iss, n):
    _check_int("n", n, 0, 2**53)
    return batch_ids.get(iss + "#" + str(n))


def status_list(list_id):
    return lists.get(list_id)


def status(list_id, index):
    record = _list(list_id)
    _check_int("index", index, 0, record["size"] - 1)
    bits = record["bits"]
    per_byte = 8 // bits
    return (record["lst"][index // per_byte] >> ((index % per_byte) * bits)) & ((1 << bits) - 1)
