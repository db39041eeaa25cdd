"""Field-level commitments to structured records, and the selective disclosures checked against them.

Why not one hash over the payload: the data exchange commits to a payload as ``H(salt ‖ bytes)``,
and a consumer that receives the whole payload checks it. A department receives only the fields
its agreement names — so it could check nothing. Here the provider commits to every *cell*
(record r, field j) separately, and the consumer checks each value it receives on its own:

    salt(r, j)   = HMAC(secret, "pilotchain/catalogue/salt/v1" ‖ r ‖ j)[:16]    one secret per dataset version
    cell(r, j)   = canonical ["pilotchain/catalogue/cell/v1", field_j, salt(r, j), value(r, j)]
    R_r          = MerkleRoot(cell(r, 0) … cell(r, n-1))                       n = the entry's fields, in order
    record(r)    = canonical ["pilotchain/catalogue/record/v1", r, R_r]
    D            = MerkleRoot(record(0) … record(N-1))                         on chain, with N and the fields

(RFC 6962 trees in the network's hash: leaves ``H(0x00 ‖ leaf)``, nodes ``H(0x01 ‖ l ‖ r)``; HMAC
with the same hash.) A disclosure of record r carries, for each released field, its value and
salt; for every other field only its leaf hash; and record(r)'s inclusion path to D. The consumer
rebuilds R_r from the n leaves (the released ones it hashes itself), then record(r), and checks
the path against D as the chain has it.

Why it is sound:

* **Binding.** Accepting value v for field f of record r means H(0x00 ‖ cell) is leaf j of a tree
  of n leaves with root R_r, and record(r) is leaf r of N leaves under D. Any other value at that
  place needs another leaf with the same path to D: a collision of the hash (the 0x00/0x01
  prefixes keep a node from passing as a leaf). The consumer fixes j by the field's place in the
  on-chain field list and n by its length, and r and N by the record leaf and the chain; so a
  value cannot be moved to another field or record, and the provider cannot change what it
  committed to when it published.
* **Hiding.** What the consumer sees of a field it was not given is ``H(0x00 ‖ [domain, f, s, v])``
  with a 128-bit salt s it does not know (as in SD-JWT's salted digests): it cannot test guesses
  of a low-entropy value ("is this company's capital 5,000,000?") without 2^128 work per guess.
  Salts come from HMAC under a per-dataset secret that never leaves the provider's vault: a
  released salt says nothing about any other (HMAC is a PRF), and a new dataset version gets a new
  secret, so a hidden cell that did not change cannot be recognised across versions. Path hashes
  are hashes of record leaves whose roots cover salted cells: they reveal nothing testable either.
* **What it does not prove.** That the provider released *every* record matching a query: a
  Merkle tree in upload order has no proof of absence (a sorted tree would, at the price of
  disclosing neighbouring records). A bulk call of the whole dataset is checkable: the consumer
  sees N and which indices it got. The position r and the count N are disclosed.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac

from pilotchain.codec import CodecError, Record, encode
from pilotchain.crypto import Suite
from pilotchain.errors import CoreError
from pilotchain.ledger import merkle

__all__ = [
    "DATASET_FORMAT",
    "DISCLOSURE_FORMAT",
    "Dataset",
    "DatasetCommitment",
    "DatasetError",
    "DisclosedRecord",
    "Disclosure",
    "DisclosureInvalid",
    "cell_leaf",
    "cell_salt",
    "make_dataset",
    "record_leaf",
    "verify_disclosure",
]

DATASET_FORMAT = "pilotchain-catalogue-dataset/1"
DISCLOSURE_FORMAT = "pilotchain-catalogue-disclosure/1"
SALT_BYTES = 16
SECRET_BYTES = 32
FIELDS_MAX = 64
RECORDS_MAX = 100_000
#: records × fields of one dataset (bounds the work of committing: about a second per 10^5 cells)
CELLS_MAX = 1_000_000
TEXT_VALUE_CHARS_MAX = 4096
FIELD_TYPES = ("string", "integer", "boolean", "date")

_SALT_DOMAIN = b"pilotchain/catalogue/salt/v1\x00"
_CELL_DOMAIN = "pilotchain/catalogue/cell/v1"
_RECORD_DOMAIN = "pilotchain/catalogue/record/v1"
_DATE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])\Z")
_HMAC_HASHES = {"intl": hashes.SHA256, "gm": hashes.SM3}
_INT64 = 2**63


class DatasetError(CoreError):
    """Records that do not fit the entry's fields; ``where`` names the record and field."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")
        self.where = where
        self.why = why


class DisclosureInvalid(CoreError):
    """A disclosure that does not verify against the on-chain commitment (``where``, ``why``)."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")
        self.where = where
        self.why = why


class Dataset(Record, frozen=True):
    """A dataset version as the provider's vault stores it (encrypted at rest, never sent whole)."""

    format: str
    entry_id: str
    fields: tuple[str, ...]
    key_field: str
    #: the HMAC key of the cell salts: fresh per version, never leaves the provider's vault
    secret: bytes
    #: one tuple of values per record, in ``fields`` order
    records: tuple[tuple[Any, ...], ...]


class DisclosedRecord(Record, frozen=True):
    index: int
    #: the released fields' values and salts, in the disclosure's ``fields`` order
    values: tuple[Any, ...]
    salts: tuple[bytes, ...]
    #: leaf hashes of the fields not released, in schema order
    hidden: tuple[bytes, ...]
    #: the record leaf's inclusion path to the dataset root
    path: tuple[bytes, ...]


class Disclosure(Record, frozen=True):
    """What a call delivers (sealed to the consumer): the agreed fields of the selected records."""

    format: str
    call_id: str
    agreement_id: str
    entry_id: str
    dataset_version: int
    root: bytes
    record_count: int
    #: the dataset's fields, as on chain
    schema: tuple[str, ...]
    #: the fields released (a subset of schema, in schema order)
    fields: tuple[str, ...]
    #: how many records matched the call's selection (``records`` may be a page of them)
    matched: int
    records: tuple[DisclosedRecord, ...]


# --------------------------------------------------------------------------- building a dataset


def _check_value(where: str, field_type: str, value: object) -> Any:
    if value is None:
        return None
    if field_type == "string":
        if not isinstance(value, str) or len(value) > TEXT_VALUE_CHARS_MAX:
            raise DatasetError(where, f"a string of at most {TEXT_VALUE_CHARS_MAX} characters (or null)")
    elif field_type == "integer":
        if not isinstance(value, int) or isinstance(value, bool) or not -_INT64 <= value < _INT64:
            raise DatasetError(where, "a 64-bit integer (or null); decimals travel as strings")
    elif field_type == "boolean":
        if not isinstance(value, bool):
            raise DatasetError(where, "true or false (or null)")
    elif not isinstance(value, str) or not _DATE.match(value):
        raise DatasetError(where, "a date YYYY-MM-DD (or null)")
    return value


def make_dataset(entry_id: str, fields: Sequence[Mapping[str, Any]], key_field: str,
                 rows: Iterable[Mapping[str, Any]], secret: bytes) -> Dataset:
    """A dataset of ``rows`` (objects with exactly the entry's ``fields``: ``name`` and ``type``);
    the key field is unique and never null. DatasetError names the first row that does not fit."""
    names = tuple(str(field["name"]) for field in fields)
    types = [str(field["type"]) for field in fields]
    if not 1 <= len(names) <= FIELDS_MAX or len(set(names)) != len(names):
        raise DatasetError("fields", f"1..{FIELDS_MAX} distinct fields")
    if key_field not in names:
        raise DatasetError("key_field", f"{key_field} is not one of the fields")
    if len(secret) != SECRET_BYTES:
        raise DatasetError("secret", f"{SECRET_BYTES} random bytes")
    key_index = names.index(key_field)
    records: list[tuple[Any, ...]] = []
    keys: set[Any] = set()
    for number, row in enumerate(rows):
        where = f"records[{number}]"
        if len(records) >= RECORDS_MAX or (len(records) + 1) * len(names) > CELLS_MAX:
            raise DatasetError(where, f"a dataset holds at most {RECORDS_MAX:,} records and {CELLS_MAX:,} values")
        if not isinstance(row, Mapping):
            raise DatasetError(where, "a record is an object of field: value")
        if set(row) != set(names):
            missing, extra = sorted(set(names) - set(row)), sorted(set(row) - set(names))
            raise DatasetError(where, "a record has exactly the entry's fields"
                               + (f"; missing {', '.join(missing)}" if missing else "")
                               + (f"; unknown {', '.join(map(str, extra))}" if extra else ""))
        values = tuple(_check_value(f"{where}.{name}", kind, row[name]) for name, kind in zip(names, types, strict=True))
        key = values[key_index]
        if key is None or key in keys:
            raise DatasetError(f"{where}.{key_field}", "the key field is set and unique")
        keys.add(key)
        records.append(values)
    return Dataset(format=DATASET_FORMAT, entry_id=entry_id, fields=names, key_field=key_field, secret=secret,
                   records=tuple(records))


# --------------------------------------------------------------------------- the commitment


def cell_salt(suite: Suite, secret: bytes, record_index: int, field_index: int) -> bytes:
    mac = hmac.HMAC(secret, _HMAC_HASHES[suite.name]())
    mac.update(_SALT_DOMAIN + record_index.to_bytes(4, "big") + field_index.to_bytes(2, "big"))
    return mac.finalize()[:SALT_BYTES]


def cell_leaf(field: str, salt: bytes, value: Any) -> bytes:
    return encode([_CELL_DOMAIN, field, salt, value])


def record_leaf(index: int, record_root: bytes) -> bytes:
    return encode([_RECORD_DOMAIN, index, record_root])


def _levels(suite: Suite, leaf_hashes: list[bytes]) -> list[list[bytes]]:
    """Every level of the RFC 6962 tree over ``leaf_hashes`` (bottom-up pairing, an odd last node
    promoted: :func:`pilotchain.ledger.merkle.root_from_leaf_hashes`'s shape), root level last."""
    levels = [leaf_hashes or [suite.hash(b"")]]
    while len(levels[-1]) > 1:
        level = levels[-1]
        paired = [merkle.node_hash(suite.hash, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        levels.append(paired)
    return levels


def _path(levels: list[list[bytes]], index: int) -> tuple[bytes, ...]:
    path = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index //= 2
    return tuple(path)


@dataclass(frozen=True, slots=True)
class DatasetCommitment:
    """A dataset's commitment, kept by the provider's vault to answer calls: the root and the
    record tree's levels (proofs in O(log N)); cells are re-hashed per disclosed record."""

    suite: Suite
    dataset: Dataset
    root: bytes
    levels: list[list[bytes]]

    @classmethod
    def build(cls, suite: Suite, dataset: Dataset) -> DatasetCommitment:
        leaves = [merkle.leaf_hash(suite.hash, record_leaf(index, merkle.root_from_leaf_hashes(
            suite.hash, cls._cell_hashes(suite, dataset, index)))) for index in range(len(dataset.records))]
        levels = _levels(suite, leaves)
        return cls(suite=suite, dataset=dataset, root=levels[-1][0], levels=levels)

    @staticmethod
    def _cell_hashes(suite: Suite, dataset: Dataset, index: int) -> list[bytes]:
        return [merkle.leaf_hash(suite.hash, cell_leaf(field, cell_salt(suite, dataset.secret, index, position), value))
                for position, (field, value) in enumerate(zip(dataset.fields, dataset.records[index], strict=True))]

    def select(self, where: Mapping[str, Sequence[Any]]) -> list[int]:
        """Indices of the records whose every ``where`` field holds one of the values given."""
        positions = {self.dataset.fields.index(field): [encode(v) for v in values] for field, values in where.items()}
        return [index for index, record in enumerate(self.dataset.records)
                if all(encode(record[position]) in wanted for position, wanted in positions.items())]

    def disclose(self, indices: Sequence[int], fields: Sequence[str]) -> tuple[DisclosedRecord, ...]:
        """The records at ``indices`` with only ``fields`` (schema order) released."""
        positions = [self.dataset.fields.index(field) for field in fields]
        if positions != sorted(set(positions)):
            raise DatasetError("fields", "distinct fields of the entry, in its order")
        out = []
        for index in indices:
            values = self.dataset.records[index]
            hashes_of = self._cell_hashes(self.suite, self.dataset, index)
            out.append(DisclosedRecord(
                index=index, values=tuple(values[p] for p in positions),
                salts=tuple(cell_salt(self.suite, self.dataset.secret, index, p) for p in positions),
                hidden=tuple(h for p, h in enumerate(hashes_of) if p not in positions),
                path=_path(self.levels, index)))
        return tuple(out)


# --------------------------------------------------------------------------- verification


def verify_disclosure(suite: Suite, disclosure: Disclosure, *, root: bytes, record_count: int,
                      schema: Sequence[str]) -> list[dict[str, Any]]:
    """Check every released value of ``disclosure`` against the dataset commitment ``root`` (of
    ``record_count`` records with the fields ``schema``, as the chain records them); the records
    as ``{field: value}``. DisclosureInvalid says which record and why."""
    if disclosure.format != DISCLOSURE_FORMAT:
        raise DisclosureInvalid("format", f"{disclosure.format!r} is not {DISCLOSURE_FORMAT}")
    if disclosure.root != root or disclosure.record_count != record_count or tuple(disclosure.schema) != tuple(schema):
        raise DisclosureInvalid("commitment", "the disclosure names another dataset than the one on chain")
    positions = [schema.index(field) if field in schema else -1 for field in disclosure.fields]
    if -1 in positions or positions != sorted(set(positions)):
        raise DisclosureInvalid("fields", "released fields are distinct fields of the dataset, in its order")
    if len(disclosure.records) > disclosure.matched or disclosure.matched > record_count:
        raise DisclosureInvalid("matched", "more records than the dataset holds or the selection matched")
    seen: set[int] = set()
    out = []
    hidden_count = len(schema) - len(positions)
    for number, record in enumerate(disclosure.records):
        where = f"records[{number}]"
        if not 0 <= record.index < record_count or record.index in seen:
            raise DisclosureInvalid(where, f"record index {record.index} is out of range or repeated")
        seen.add(record.index)
        if len(record.values) != len(positions) or len(record.salts) != len(positions) \
                or len(record.hidden) != hidden_count:
            raise DisclosureInvalid(where, "one value and salt per released field, one hash per other field")
        if any(len(salt) != SALT_BYTES for salt in record.salts) or any(len(h) != suite.digest_size for h in record.hidden):
            raise DisclosureInvalid(where, "salts of 16 bytes, hashes of the suite's size")
        released = dict(zip(positions, zip(record.values, record.salts, strict=True), strict=True))
        hidden = iter(record.hidden)
        try:
            leaves = [merkle.leaf_hash(suite.hash, cell_leaf(schema[p], released[p][1], released[p][0]))
                      if p in released else next(hidden) for p in range(len(schema))]
        except CodecError as exc:
            raise DisclosureInvalid(where, f"a value that has no canonical encoding: {exc}") from exc
        leaf = record_leaf(record.index, merkle.root_from_leaf_hashes(suite.hash, leaves))
        if not merkle.verify_inclusion(suite.hash, root, leaf, record.index, record_count, record.path):
            raise DisclosureInvalid(where, f"record {record.index} does not verify against the dataset's commitment "
                                           "(a value, a salt, a hidden field or the path was changed)")
        out.append({field: value for field, value in zip(disclosure.fields, record.values, strict=True)})
    return out
