"""The diploma profile: SD-JWT VC credentials issued in anchored batches, and the envelope a
holder keeps and presents. Pure: no I/O, no clock; randomness comes in as a generator.

A diploma is an SD-JWT VC (``typ: dc+sd-jwt``) whose always-visible claims are ``iss``, ``iat``,
``vct`` and ``status`` (the Token Status List reference ``{"status_list": {"idx", "uri"}}``) and
whose personal claims — name, birth date, student number, degree, field, year, grade — are each
selectively disclosable, behind at least :data:`DIGESTS_MIN` digests (decoys fill the rest).

A batch (a class) is signed, shuffled into a random order, and its issuer-signed JWTs become the
leaves of one RFC 6962 Merkle tree whose head ``{"root", "size"}`` one ``credentials.anchor``
transaction puts on chain. Each holder receives an envelope (:class:`Presentation`)::

    {"format": "pilotchain-credential/1", "chain": <genesis hash, hex>,
     "sd_jwt": "<issuer-signed JWT>~<disclosure>~...~",
     "anchor": {"batch": <batch id>, "index": i, "size": n, "path": [<base64url hash>, ...]}}

The SD-JWT part is a standard SD-JWT VC (any SD-JWT library reads it); the anchor is pilotchain's
addition, outside the signature because the root exists only after every leaf is signed. The
holder presents the same envelope with fewer disclosures; the issuer-signed JWT, and so the
inclusion proof, do not change.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pilotchain.apps.credentials.sdjwt import (
    DISCLOSURES_MAX,
    JwsAlgorithm,
    SdJwtInvalid,
    b64url_decode,
    b64url_encode,
    issue_sd_jwt,
    parse_sd_jwt,
    serialize,
)
from pilotchain.codec import CodecError, Record, decode, encode
from pilotchain.crypto import PrivateKey
from pilotchain.ledger import merkle

__all__ = [
    "CREDENTIAL_FORMAT",
    "DIGESTS_MIN",
    "DISCLOSABLE_CLAIMS",
    "REQUIRED_CLAIMS",
    "SD_JWT_TYP",
    "VCT",
    "Anchor",
    "IssuedBatch",
    "IssuedDiploma",
    "Presentation",
    "disclosure_names",
    "issue_batch",
    "parse_status_uri",
    "status_uri",
]

CREDENTIAL_FORMAT = "pilotchain-credential/1"
SD_JWT_TYP = "dc+sd-jwt"
VCT = "urn:pilotchain:vct:university-diploma:1"
#: every personal claim is selectively disclosable, in this order
DISCLOSABLE_CLAIMS = ("given_name", "family_name", "birthdate", "student_id", "degree", "field_of_study",
                      "graduation_year", "grade")
REQUIRED_CLAIMS = ("given_name", "family_name", "degree", "graduation_year")
#: shorthand a holder may use when choosing what to disclose
CLAIM_ALIASES = {"name": ("given_name", "family_name"), "year": ("graduation_year",),
                 "field": ("field_of_study",), "birth": ("birthdate",)}
#: the ``_sd`` array holds at least this many digests (decoys fill it up)
DIGESTS_MIN = len(DISCLOSABLE_CLAIMS)
TEXT_CHARS_MAX = 200
BATCH_SIZE_MAX = 65_536
#: bound on an envelope a verifier parses (QR codes hold at most ~3 KB)
ENVELOPE_CHARS_MAX = 96 * 1024
QR_PREFIX = "PC1:"
_STATUS_URI_PREFIX = "urn:pilotchain:"
_STATUS_URI_INFIX = ":status-list:"


class Randomness(Protocol):
    def randbytes(self, n: int) -> bytes: ...

    def shuffle(self, x: list[Any]) -> None: ...


def status_uri(genesis_hash: bytes, list_id: str) -> str:
    """The ``uri`` of a status-list reference: the list ``list_id`` on the chain whose genesis
    hash starts with these 8 bytes (a name, not an address: verifiers read it from a snapshot)."""
    return f"{_STATUS_URI_PREFIX}{genesis_hash[:8].hex()}{_STATUS_URI_INFIX}{list_id}"


def parse_status_uri(uri: Any) -> tuple[str, str]:
    """(chain tag: 16 hex digits, list id) of a :func:`status_uri`; ValueError otherwise."""
    if not isinstance(uri, str) or not uri.startswith(_STATUS_URI_PREFIX) or _STATUS_URI_INFIX not in uri:
        raise ValueError(f"not a pilotchain status-list URI: {uri!r}")
    tag, _, list_id = uri[len(_STATUS_URI_PREFIX):].partition(_STATUS_URI_INFIX)
    if len(tag) != 16 or not list_id:
        raise ValueError(f"not a pilotchain status-list URI: {uri!r}")
    return tag, list_id


def disclosure_names(chosen: Sequence[str]) -> list[str]:
    """Claim names for what a holder asks to disclose (``name``, ``year`` ... are shorthands)."""
    names: list[str] = []
    for item in chosen:
        for name in CLAIM_ALIASES.get(item, (item,)):
            if name not in DISCLOSABLE_CLAIMS:
                raise ValueError(f"{name!r} is not a diploma claim; choose from {', '.join(DISCLOSABLE_CLAIMS)} "
                                 f"(or {', '.join(CLAIM_ALIASES)})")
            if name not in names:
                names.append(name)
    return names


def check_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A graduate's claims, checked: the required ones present, only known ones, plain values."""
    if not isinstance(record, Mapping):
        raise ValueError("a graduate's record is an object of claims")
    unknown = [name for name in record if name not in DISCLOSABLE_CLAIMS]
    if unknown:
        raise ValueError(f"unknown claims {unknown}; a diploma holds {', '.join(DISCLOSABLE_CLAIMS)}")
    missing = [name for name in REQUIRED_CLAIMS if record.get(name) in (None, "")]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    claims: dict[str, Any] = {}
    for name in DISCLOSABLE_CLAIMS:
        value = record.get(name)
        if value in (None, ""):
            continue
        if name == "graduation_year":
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or not 1000 <= value <= 9999:
                raise ValueError(f"graduation_year is a year, not {value!r}")
        elif not isinstance(value, str) or len(value) > TEXT_CHARS_MAX:
            raise ValueError(f"{name} is a text of at most {TEXT_CHARS_MAX} characters")
        claims[name] = value
    return claims


# ------------------------------------------------------------------------------ the envelope


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where the issuer-signed JWT sits in its anchored batch."""

    batch: str
    index: int
    size: int
    path: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch, "index": self.index, "size": self.size,
                "path": [b64url_encode(p) for p in self.path]}


@dataclass(frozen=True, slots=True)
class Presentation:
    """A holder's credential with the disclosures it shows (all of them: the diploma itself)."""

    chain: bytes
    sd_jwt: str
    anchor: Anchor

    def to_json(self) -> str:
        document = {"format": CREDENTIAL_FORMAT, "chain": self.chain.hex(), "sd_jwt": self.sd_jwt,
                    "anchor": self.anchor.to_json()}
        return json.dumps(document, separators=(",", ":"), ensure_ascii=True)

    def to_qr_text(self) -> str:
        """The QR code's content: ``PC1:`` and the envelope's bytes — base64url parts decoded, the
        whole canonically packed (:class:`QrCredential`), DEFLATE-compressed and Base45-encoded
        (RFC 9285), which QR codes carry in their compact alphanumeric mode (as the EU Digital
        COVID Certificate does). Unpacking re-encodes every part exactly (base64url here is
        canonical), so the SD-JWT and its signature are the same bytes. The compressed form is not
        canonical (DEFLATE can say the same bytes more than one way, and another zlib may compress
        differently), so several QR texts can carry one credential: what a verifier checks is the
        credential they decode to, never the text."""
        parsed = parse_sd_jwt(self.sd_jwt)
        if parsed.key_binding_jwt:  # the packing has no place for one: it would vanish silently
            raise SdJwtInvalid("this presentation ends with a key-binding JWT, which a QR code does not carry "
                               "(and this profile does not use); present it without one")
        header, payload, _ = parsed.issuer_jwt.split(".")
        packed = QrCredential(chain=self.chain, header=b64url_decode(header), payload=b64url_decode(payload),
                              signature=parsed.signature,
                              disclosures=tuple(b64url_decode(d) for d in parsed.disclosures),
                              batch=self.anchor.batch, index=self.anchor.index, size=self.anchor.size,
                              path=self.anchor.path)
        return QR_PREFIX + base45_encode(zlib.compress(encode(packed), 9))

    @classmethod
    def from_text(cls, text: str) -> Presentation:
        """An envelope from its JSON or its QR text; SdJwtInvalid when it is not one."""
        if not isinstance(text, str) or len(text) > ENVELOPE_CHARS_MAX:
            raise SdJwtInvalid(f"a credential is a text of at most {ENVELOPE_CHARS_MAX} characters")
        text = text.strip()
        if text.startswith(QR_PREFIX):
            return cls.from_qr_text(text)
        return cls.from_json(text)

    @classmethod
    def from_qr_text(cls, text: str) -> Presentation:
        try:
            packed = base45_decode(text[len(QR_PREFIX):])
        except ValueError as exc:
            raise SdJwtInvalid(f"the QR content is not Base45: {exc}") from exc
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(packed, ENVELOPE_CHARS_MAX + 1)
        except zlib.error as exc:
            raise SdJwtInvalid(f"the QR content does not inflate: {exc}") from exc
        if len(raw) > ENVELOPE_CHARS_MAX or not inflater.eof or inflater.unused_data:
            raise SdJwtInvalid("the QR content is not one compressed credential")
        try:
            qr = decode(raw, QrCredential, max_bytes=ENVELOPE_CHARS_MAX)
        except CodecError as exc:
            raise SdJwtInvalid(f"the QR content is not a packed credential: {exc}") from exc
        if len(qr.path) > merkle.PROOF_LENGTH_MAX or len(qr.disclosures) > DISCLOSURES_MAX:
            raise SdJwtInvalid("the QR content exceeds the bounds of a credential")
        jwt = ".".join(b64url_encode(part) for part in (qr.header, qr.payload, qr.signature))
        return cls(chain=qr.chain, sd_jwt=serialize(jwt, [b64url_encode(d) for d in qr.disclosures]),
                   anchor=Anchor(batch=qr.batch, index=qr.index, size=qr.size, path=qr.path))

    @classmethod
    def from_json(cls, text: str) -> Presentation:
        try:
            document = json.loads(text, object_pairs_hook=_unique_members)
        except (ValueError, RecursionError) as exc:
            raise SdJwtInvalid(f"not a credential envelope (JSON): {exc}") from exc
        if not isinstance(document, dict) or set(document) != {"format", "chain", "sd_jwt", "anchor"}:
            raise SdJwtInvalid("a credential envelope has exactly format, chain, sd_jwt and anchor")
        if document["format"] != CREDENTIAL_FORMAT:
            raise SdJwtInvalid(f"format {document['format']!r}; this verifier reads {CREDENTIAL_FORMAT!r}")
        chain, sd_jwt, anchor = document["chain"], document["sd_jwt"], document["anchor"]
        if not isinstance(chain, str) or len(chain) != 64 or chain != chain.lower():
            raise SdJwtInvalid("chain is the genesis hash in lower-case hex")
        if not isinstance(sd_jwt, str):
            raise SdJwtInvalid("sd_jwt is the compact SD-JWT")
        if not isinstance(anchor, dict) or set(anchor) != {"batch", "index", "size", "path"}:
            raise SdJwtInvalid("anchor has exactly batch, index, size and path")
        batch, index, size, path = anchor["batch"], anchor["index"], anchor["size"], anchor["path"]
        if not isinstance(batch, str) or not _is_int(index) or not _is_int(size) or not isinstance(path, list) \
                or len(path) > merkle.PROOF_LENGTH_MAX or not all(isinstance(p, str) for p in path):
            raise SdJwtInvalid("anchor is {batch: text, index: int, size: int, path: [base64url]}")
        try:
            chain_bytes = bytes.fromhex(chain)
        except ValueError as exc:
            raise SdJwtInvalid("chain is the genesis hash in hex") from exc
        return cls(chain=chain_bytes, sd_jwt=sd_jwt,
                   anchor=Anchor(batch=batch, index=index, size=size, path=tuple(b64url_decode(p) for p in path)))


class QrCredential(Record, frozen=True):
    """A credential envelope with its base64url parts as bytes (the QR code's packing)."""

    chain: bytes
    header: bytes
    payload: bytes
    signature: bytes
    disclosures: tuple[bytes, ...]
    batch: str
    index: int
    size: int
    path: tuple[bytes, ...]


_BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_BASE45_VALUES = {char: value for value, char in enumerate(_BASE45)}


def base45_encode(data: bytes) -> str:
    """RFC 9285: each two bytes as three characters, least significant first; a last odd byte
    as two."""
    out = []
    for i in range(0, len(data) - 1, 2):
        value = data[i] * 256 + data[i + 1]
        out.append(_BASE45[value % 45] + _BASE45[value // 45 % 45] + _BASE45[value // 2025])
    if len(data) % 2:
        out.append(_BASE45[data[-1] % 45] + _BASE45[data[-1] // 45])
    return "".join(out)


def base45_decode(text: str) -> bytes:
    """RFC 9285 decoding; ValueError for a character outside the alphabet, a dangling
    character, or a group whose value does not fit its bytes."""
    if len(text) % 3 == 1:
        raise ValueError("a Base45 text has no group of one character")
    out = bytearray()
    for i in range(0, len(text), 3):
        group = text[i:i + 3]
        try:
            digits = [_BASE45_VALUES[char] for char in group]
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]!r} is not a Base45 character") from None
        value = sum(digit * 45 ** position for position, digit in enumerate(digits))
        if len(group) == 3:
            if value > 0xFFFF:
                raise ValueError("a Base45 group exceeds two bytes")
            out += value.to_bytes(2, "big")
        else:
            if value > 0xFF:
                raise ValueError("the last Base45 group exceeds one byte")
            out.append(value)
    return bytes(out)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise SdJwtInvalid(f"JSON member {name!r} appears twice")
        result[name] = value
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ------------------------------------------------------------------------------ issuing a batch


@dataclass(frozen=True, slots=True)
class IssuedDiploma:
    """One graduate's diploma: their record's position in the class roll, the status index it
    got and the envelope to hand them."""

    roll_position: int
    student_id: str | None
    status_index: int
    presentation: Presentation


@dataclass(frozen=True, slots=True)
class IssuedBatch:
    batch_id: str
    iss: str
    kid: str
    list_id: str
    tree_head: dict[str, Any]
    #: in the class roll's order
    diplomas: tuple[IssuedDiploma, ...] = field(default_factory=tuple)

    def anchor_args(self) -> dict[str, Any]:
        """The arguments of the ``credentials.anchor`` transaction for this batch."""
        return {"batch_id": self.batch_id, "iss": self.iss, "kid": self.kid, "batch": self.tree_head}


def issue_batch(
    records: Sequence[Mapping[str, Any]],
    *,
    algorithm: JwsAlgorithm,
    key: PrivateKey,
    iss: str,
    kid: str,
    batch_id: str,
    genesis_hash: bytes,
    list_id: str,
    status_indices: Sequence[int],
    issued_at_s: int,
    rng: Randomness,
) -> IssuedBatch:
    """Sign one diploma per record (``status_indices[i]`` for ``records[i]``), place them in a
    random order in one Merkle tree, and give each its inclusion proof."""
    if not 1 <= len(records) <= BATCH_SIZE_MAX:
        raise ValueError(f"a batch has 1..{BATCH_SIZE_MAX} diplomas")
    if len(status_indices) != len(records) or len(set(status_indices)) != len(records):
        raise ValueError("each diploma needs its own status index")
    uri = status_uri(genesis_hash, list_id)
    signed: list[tuple[int, str, list[str]]] = []
    for position, (record, status_index) in enumerate(zip(records, status_indices, strict=True)):
        claims = check_record(record)
        visible = {"iss": iss, "iat": issued_at_s, "vct": VCT,
                   "status": {"status_list": {"idx": status_index, "uri": uri}}}
        jwt, disclosures = issue_sd_jwt(algorithm, key, {"typ": SD_JWT_TYP, "kid": kid}, visible, claims,
                                        random_bytes=rng.randbytes, digests_min=DIGESTS_MIN)
        signed.append((position, jwt, disclosures))
    order = list(range(len(signed)))
    rng.shuffle(order)  # the tree position reveals nothing about the roll (alphabetical, by rank...)
    leaves = [signed[i][1].encode("ascii") for i in order]
    root, paths = merkle_tree(algorithm.suite.hash, leaves)
    diplomas: list[IssuedDiploma | None] = [None] * len(signed)
    for leaf_index, position in enumerate(order):
        _, jwt, disclosures = signed[position]
        anchor = Anchor(batch=batch_id, index=leaf_index, size=len(leaves), path=tuple(paths[leaf_index]))
        student = records[position].get("student_id")
        diplomas[position] = IssuedDiploma(
            roll_position=position, student_id=str(student) if student not in (None, "") else None,
            status_index=status_indices[position],
            presentation=Presentation(chain=genesis_hash, sd_jwt=serialize(jwt, disclosures), anchor=anchor))
    return IssuedBatch(batch_id=batch_id, iss=iss, kid=kid, list_id=list_id,
                       tree_head={"root": root, "size": len(leaves)},
                       diplomas=tuple(d for d in diplomas if d is not None))


def merkle_tree(hash_fn: Any, leaves: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The RFC 6962 root over ``leaves`` and every leaf's audit path (the same as
    :func:`pilotchain.ledger.merkle.inclusion_proof` gives one at a time), from one pass over the
    tree: O(n log n) work for all the paths rather than O(n) per path."""
    if not leaves:
        raise ValueError("a tree needs at least one leaf")
    levels = [[merkle.leaf_hash(hash_fn, leaf) for leaf in leaves]]
    while len(levels[-1]) > 1:
        level = levels[-1]
        paired = [merkle.node_hash(hash_fn, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        levels.append(paired)
    paths = []
    for index in range(len(leaves)):
        path, position = [], index
        for level in levels[:-1]:
            sibling = position ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            position //= 2
        paths.append(path)
    return levels[-1][0], paths
