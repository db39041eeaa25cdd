"""The credentials contract's rules on a governed chain: who may register issuers and keys, anchor
and change statuses; proof of possession; key validity checked at anchoring; validity only
shrinks; revocation is final; one status transaction changes many entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotchain.apps.credentials.chain import (
    ChainRefused,
    anchor_batch,
    key_statement,
    register_issuer,
    register_key,
    retire_key,
    set_status,
)
from pilotchain.apps.credentials.snapshot import CONTRACT
from pilotchain.apps.credentials.statuslist import STATUS_INVALID, STATUS_SUSPENDED, STATUS_VALID
from tests.apps.credentials.helpers import ISS, World, now_ms, world

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> World:
    with world(tmp_path_factory.mktemp("credentials-contract")) as created:
        yield created


def _refused(call: object, match: str) -> None:
    with pytest.raises(ChainRefused, match=match):
        call()  # type: ignore[operator]


def test_issuers_and_keys_belong_to_an_organisations_admins(w: World) -> None:
    with w.client(w.registrar) as client:
        _refused(lambda: register_issuer(client, w.registrar, "https://other.example", "X"), "admin registers")
        other_admin = w.chain.identity(w.other, admin=True)
        _refused(lambda: register_issuer(client, other_admin, ISS, "Impostor"), "already registered")
        key = w.home.suite.generate_private_key()
        _refused(lambda: register_key(client, other_admin, ISS, "stolen", key, now_ms(), now_ms() + DAY_MS),
                 "only an admin of")
        _refused(lambda: register_key(client, w.registrar, ISS, "k9", key, now_ms(), now_ms() + DAY_MS), "only an admin of")


def test_a_key_proves_possession_and_its_validity_only_shrinks(w: World) -> None:
    suite = w.home.suite
    with w.client(w.admin) as client:
        key, impostor = suite.generate_private_key(), suite.generate_private_key()
        start, end = now_ms(), now_ms() + 30 * DAY_MS
        proof = impostor.sign(key_statement(client.chain_id(), ISS, "k-pop", start, end))
        args = {"iss": ISS, "kid": "k-pop", "public_key": key.public_key().to_der(), "not_before_ms": start,
                "not_after_ms": end, "proof": proof}
        result = client.invoke(w.admin, CONTRACT, "register_key", args, check=False)
        assert result.receipt is not None and "proof is not the key's signature" in result.receipt.message
        _refused(lambda: register_key(client, w.admin, ISS, "k-old", key, start - 60 * DAY_MS, start - DAY_MS),
                 "already over")
        register_key(client, w.admin, ISS, "k-pop", key, start, end)
        _refused(lambda: register_key(client, w.admin, ISS, "k-pop", key, start, end), "already registered")
        _refused(lambda: register_key(client, w.admin, ISS, "k-again", key, start, end), "already registered as k-pop")
        _refused(lambda: retire_key(client, w.admin, ISS, "k-pop", end + DAY_MS), "not_after_ms is an integer in")
        retire_key(client, w.admin, ISS, "k-pop", start + DAY_MS)
        assert client.query(CONTRACT, "key", {"iss": ISS, "kid": "k-pop"})["not_after_ms"] == start + DAY_MS
        _refused(lambda: retire_key(client, w.admin, ISS, "k-pop", start + 2 * DAY_MS), "not_after_ms is an integer in")


def test_anchoring_needs_a_member_of_the_issuer_and_a_key_valid_now(w: World) -> None:
    head = {"root": bytes(32), "size": 3}
    kid = w.home.config["keys"][0]["kid"]
    with w.client(w.registrar) as client:
        stranger = w.chain.identity(w.other)
        _refused(lambda: anchor_batch(client, stranger, {"batch_id": "b-x", "iss": ISS, "kid": kid, "batch": head}),
                 "only members of")
        _refused(lambda: anchor_batch(client, w.registrar, {"batch_id": "b-x", "iss": ISS, "kid": "nope", "batch": head}),
                 "no key nope")
        _refused(lambda: anchor_batch(client, w.registrar, {"batch_id": "b-x", "iss": ISS, "kid": kid,
                                                            "batch": {"root": bytes(31), "size": 3}}), "32 bytes")
        anchor_batch(client, w.registrar, {"batch_id": "b-x", "iss": ISS, "kid": kid, "batch": head})
        _refused(lambda: anchor_batch(client, w.registrar, {"batch_id": "b-x", "iss": ISS, "kid": kid, "batch": head}),
                 "already anchored")
        batch = client.query(CONTRACT, "batch", {"batch_id": "b-x"})
        assert (batch["root"], batch["size"], batch["org"]) == (bytes(32), 3, w.university)
        with w.client(w.admin) as admin_client:
            key = w.home.suite.generate_private_key()
            later = now_ms() + 10 * DAY_MS
            register_key(admin_client, w.admin, ISS, "k-future", key, later, later + DAY_MS)
            register_key(admin_client, w.admin, ISS, "k-ended", w.home.suite.generate_private_key(), now_ms() - DAY_MS,
                         now_ms() + DAY_MS)
            retire_key(admin_client, w.admin, ISS, "k-ended", now_ms() - 1000)
        _refused(lambda: anchor_batch(client, w.registrar, {"batch_id": "b-f", "iss": ISS, "kid": "k-future",
                                                            "batch": head}), "not valid before")
        _refused(lambda: anchor_batch(client, w.registrar, {"batch_id": "b-e", "iss": ISS, "kid": "k-ended",
                                                            "batch": head}), "no longer valid")


def test_status_changes_in_one_transaction_and_revocation_is_final(w: World) -> None:
    list_id = w.home.config["lists"][0]["list_id"]
    with w.client(w.registrar) as client:
        updates = [(i * 37 % 4096, STATUS_SUSPENDED) for i in range(300)]
        result = set_status(client, w.registrar, list_id, updates)
        assert result.committed
        statuses = {i: client.query(CONTRACT, "status", {"list_id": list_id, "index": i}) for i, _ in updates[:20]}
        assert set(statuses.values()) == {STATUS_SUSPENDED}
        assert client.query(CONTRACT, "status", {"list_id": list_id, "index": 1}) == STATUS_VALID
        set_status(client, w.registrar, list_id, [(0, STATUS_VALID), (37, STATUS_INVALID)])
        assert client.query(CONTRACT, "status", {"list_id": list_id, "index": 0}) == STATUS_VALID
        assert client.query(CONTRACT, "status", {"list_id": list_id, "index": 37}) == STATUS_INVALID
        _refused(lambda: set_status(client, w.registrar, list_id, [(37, STATUS_VALID)]), "revocation is final")
        _refused(lambda: set_status(client, w.registrar, list_id, [(5, 1), (5, 2)]), "appears twice")
        _refused(lambda: set_status(client, w.registrar, list_id, [(4096, 1)]), "index is an integer")
        _refused(lambda: set_status(client, w.chain.identity(w.other), list_id, [(9, 1)]), "only members of")
        record = client.query(CONTRACT, "status_list", {"list_id": list_id})
        assert record["version"] == 2 and len(record["lst"]) == 4096 * 2 // 8


def test_status_list_layout_is_the_token_status_list_one(w: World, tmp_path: Path) -> None:
    """Entry i sits in byte i*bits//8 at bit (i*bits)%8, least significant first (the IETF draft's
    example: with 1-bit entries, statuses 1,0,0,1,1,1,0,1 make byte 0xB9)."""
    with w.client(w.registrar) as client:
        from pilotchain.apps.credentials.chain import create_status_list

        create_status_list(client, w.registrar, "one-bit", ISS, 16, 1)
        set_status(client, w.registrar, "one-bit", [(0, 1), (3, 1), (4, 1), (5, 1), (7, 1)])
        assert client.query(CONTRACT, "status_list", {"list_id": "one-bit"})["lst"] == bytes([0xB9, 0x00])
