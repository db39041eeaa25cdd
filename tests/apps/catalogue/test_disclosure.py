"""Field-level commitments and selective disclosure (docs/catalogue.md, "Checking only some
fields"): trees match the platform's RFC 6962 code, released values verify, anything changed
does not, hidden values never travel, salts are the suite's HMAC."""

from __future__ import annotations

import hashlib
import hmac as std_hmac
import secrets
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotchain.apps.catalogue.disclosure import (
    DISCLOSURE_FORMAT,
    DatasetCommitment,
    DatasetError,
    Disclosure,
    DisclosureInvalid,
    cell_salt,
    make_dataset,
    record_leaf,
    verify_disclosure,
)
from pilotchain.codec import encode
from pilotchain.crypto import get_suite
from pilotchain.ledger import merkle

FIELDS = [{"name": "credit_code", "type": "string"}, {"name": "name", "type": "string"},
          {"name": "registered_capital", "type": "integer"}, {"name": "founded", "type": "date"},
          {"name": "active", "type": "boolean"}, {"name": "legal_id_number", "type": "string"}]
SCHEMA = tuple(f["name"] for f in FIELDS)


def rows(count: int) -> list[dict[str, Any]]:
    return [{"credit_code": f"91310000MA1K{index:06d}", "name": f"Company {index}", "registered_capital": 1_000_000 * index,
             "founded": f"20{10 + index % 10}-0{1 + index % 9}-1{index % 9}", "active": index % 3 != 0,
             "legal_id_number": f"SECRET-ID-{index:04d}"} for index in range(count)]


def disclosure(commitment: DatasetCommitment, indices: list[int], fields: list[str], matched: int | None = None) -> Disclosure:
    return Disclosure(format=DISCLOSURE_FORMAT, call_id="ab" * 16, agreement_id="agr-1", entry_id="e", dataset_version=1,
                      root=commitment.root, record_count=len(commitment.dataset.records), schema=SCHEMA,
                      fields=tuple(fields), matched=len(indices) if matched is None else matched,
                      records=commitment.disclose(indices, fields))


@pytest.fixture(params=["intl", "gm"])
def suite_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_root_is_the_platform_merkle_root_and_paths_are_its_proofs(suite_name: str) -> None:
    suite = get_suite(suite_name)
    for count in (1, 2, 3, 5, 8, 13, 17):
        dataset = make_dataset("e", FIELDS, "credit_code", rows(count), secrets.token_bytes(32))
        commitment = DatasetCommitment.build(suite, dataset)
        record_roots = []
        for index, record in enumerate(dataset.records):
            cells = [encode(["pilotchain/catalogue/cell/v1", field, cell_salt(suite, dataset.secret, index, j), value])
                     for j, (field, value) in enumerate(zip(SCHEMA, record, strict=True))]
            record_roots.append(merkle.merkle_root(suite.hash, cells))
        leaves = [record_leaf(index, root) for index, root in enumerate(record_roots)]
        assert commitment.root == merkle.merkle_root(suite.hash, leaves)
        for index in range(count):
            released = commitment.disclose([index], ["name"])[0]
            assert list(released.path) == merkle.inclusion_proof(suite.hash, leaves, index)


def test_salts_are_the_suites_hmac(suite_name: str) -> None:
    suite = get_suite(suite_name)
    secret = secrets.token_bytes(32)
    message = b"pilotchain/catalogue/salt/v1\x00" + (7).to_bytes(4, "big") + (3).to_bytes(2, "big")
    digest = hashlib.sha256 if suite_name == "intl" else "sm3"
    assert cell_salt(suite, secret, 7, 3) == std_hmac.new(secret, message, digest).digest()[:16]
    assert cell_salt(suite, secret, 7, 3) != cell_salt(suite, secret, 7, 4) != cell_salt(suite, secret, 8, 3)


def test_released_fields_verify_and_hidden_ones_never_travel(suite_name: str) -> None:
    suite = get_suite(suite_name)
    dataset = make_dataset("e", FIELDS, "credit_code", rows(40), secrets.token_bytes(32))
    commitment = DatasetCommitment.build(suite, dataset)
    released = disclosure(commitment, [3, 17, 39], ["credit_code", "name", "registered_capital"])
    records = verify_disclosure(suite, released, root=commitment.root, record_count=40, schema=SCHEMA)
    assert records == [{"credit_code": f"91310000MA1K{i:06d}", "name": f"Company {i}", "registered_capital": 1_000_000 * i}
                       for i in (3, 17, 39)]
    wire = encode(released)
    for i in (3, 17, 39):
        assert f"SECRET-ID-{i:04d}".encode() not in wire and f"20{10 + i % 10}-".encode() not in wire
    # a guessed value of a hidden field does not match any hash the consumer holds
    guess = merkle.leaf_hash(suite.hash, encode(["pilotchain/catalogue/cell/v1", "legal_id_number", b"\x00" * 16,
                                                 "SECRET-ID-0003"]))
    assert guess not in released.records[0].hidden


def tampered(original: Disclosure, number: int, **changes: Any) -> Disclosure:
    records = list(original.records)
    records[number] = msgspec.structs.replace(records[number], **changes)
    return msgspec.structs.replace(original, records=tuple(records))


def test_every_changed_part_fails(suite_name: str) -> None:
    suite = get_suite(suite_name)
    dataset = make_dataset("e", FIELDS, "credit_code", rows(9), secrets.token_bytes(32))
    commitment = DatasetCommitment.build(suite, dataset)
    good = disclosure(commitment, [2, 5], ["name", "registered_capital"])
    first = good.records[0]

    def refused(bad: Disclosure, where: str, **chain: Any) -> None:
        facts = {"root": commitment.root, "record_count": 9, "schema": SCHEMA, **chain}
        with pytest.raises(DisclosureInvalid) as caught:
            verify_disclosure(suite, bad, **facts)
        assert caught.value.where == where, caught.value

    refused(tampered(good, 0, values=("Company 2", 999)), "records[0]")
    refused(tampered(good, 0, values=("Company 5", first.values[1])), "records[0]")  # another record's value
    refused(tampered(good, 0, salts=(first.salts[0], bytes(16))), "records[0]")
    refused(tampered(good, 0, hidden=(first.hidden[0], bytes(32), *first.hidden[2:])), "records[0]")
    refused(tampered(good, 0, path=first.path[:-1]), "records[0]")
    refused(tampered(good, 0, index=5), "records[0]")
    refused(tampered(good, 1, index=2), "records[1]")  # a record twice
    # values moved to another field: the field names are in the leaves and their places fixed
    refused(msgspec.structs.replace(good, fields=("founded", "legal_id_number")), "records[0]")
    refused(msgspec.structs.replace(good, fields=("registered_capital", "name")), "fields")
    refused(good, "commitment", root=bytes(32))
    refused(good, "commitment", record_count=10)
    refused(good, "commitment", schema=SCHEMA[::-1])
    refused(msgspec.structs.replace(good, matched=1), "matched")
    refused(msgspec.structs.replace(good, format="other"), "format")
    assert verify_disclosure(suite, good, root=commitment.root, record_count=9, schema=SCHEMA)


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 12), data=st.data())
def test_any_change_to_a_released_record_is_caught(count: int, data: st.DataObject) -> None:
    suite = get_suite("intl")
    dataset = make_dataset("e", FIELDS, "credit_code", rows(count), bytes(32))
    commitment = DatasetCommitment.build(suite, dataset)
    fields = data.draw(st.lists(st.sampled_from(SCHEMA), min_size=1, unique=True).map(
        lambda chosen: sorted(chosen, key=SCHEMA.index)))
    indices = data.draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=count, unique=True))
    good = disclosure(commitment, indices, fields)
    assert len(verify_disclosure(suite, good, root=commitment.root, record_count=count, schema=SCHEMA)) == len(indices)
    number = data.draw(st.integers(0, len(indices) - 1))
    record = good.records[number]
    part = data.draw(st.sampled_from(["value", "salt", "hidden", "path", "index"]))
    if part == "value":
        position = data.draw(st.integers(0, len(fields) - 1))
        old = record.values[position]
        # any value the canonical encoding carries (integers are 64-bit there)
        new = data.draw(st.one_of(st.text(max_size=8), st.integers(-(2**63), 2**64 - 1), st.booleans(), st.none()).filter(
            lambda value: encode(value) != encode(old)))
        changed = tampered(good, number, values=tuple(new if i == position else v for i, v in enumerate(record.values)))
    elif part == "salt":
        position = data.draw(st.integers(0, len(fields) - 1))
        changed = tampered(good, number, salts=tuple(bytes(a ^ 1 for a in s) if i == position else s
                                                     for i, s in enumerate(record.salts)))
    elif part == "hidden" and record.hidden:
        changed = tampered(good, number, hidden=(bytes(32), *record.hidden[1:]))
    elif part == "path" and record.path:
        changed = tampered(good, number, path=(bytes(32), *record.path[1:]))
    else:
        changed = tampered(good, number, index=(record.index + 1) % (count + 1))
    with pytest.raises(DisclosureInvalid):
        verify_disclosure(suite, changed, root=commitment.root, record_count=count, schema=SCHEMA)


def test_records_that_do_not_fit_the_fields_are_refused() -> None:
    good = rows(3)
    cases = {
        "records[1]": [good[0], {k: v for k, v in good[1].items() if k != "name"}],
        "records[0]": [{**good[0], "extra": 1}],
        "records[0].registered_capital": [{**good[0], "registered_capital": "5 million"}],
        "records[0].founded": [{**good[0], "founded": "2019/01/01"}],
        "records[0].active": [{**good[0], "active": 1}],
        "records[1].credit_code": [good[0], {**good[1], "credit_code": good[0]["credit_code"]}],
        "records[2].credit_code": [good[0], good[1], {**good[2], "credit_code": None}],
    }
    for where, records in cases.items():
        with pytest.raises(DatasetError) as caught:
            make_dataset("e", FIELDS, "credit_code", records, bytes(32))
        assert caught.value.where == where, caught.value
    with pytest.raises(DatasetError):
        make_dataset("e", FIELDS, "nope", good, bytes(32))
    assert make_dataset("e", FIELDS, "credit_code", [{**good[0], "name": None}], bytes(32)).records[0][1] is None


def test_select_matches_canonical_values() -> None:
    suite = get_suite("intl")
    commitment = DatasetCommitment.build(suite, make_dataset("e", FIELDS, "credit_code", rows(10), bytes(32)))
    assert commitment.select({"credit_code": ["91310000MA1K000004"]}) == [4]
    assert commitment.select({"active": [False]}) == [0, 3, 6, 9]
    assert commitment.select({"active": [False], "registered_capital": [3_000_000, 9_000_000]}) == [3, 9]
    assert commitment.select({"registered_capital": [True]}) == []  # true is not 1
