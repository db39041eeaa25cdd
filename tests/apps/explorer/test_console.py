"""The explorer's pages over an in-process governed chain, read as one organisation: what it may
read is shown and proven, what it may not is shown as redacted (never its contents), a failure
says why in words, search finds a transaction and a block, governance shows votes by organisation."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pilotchain.apps.explorer.certify import check_certificate
from pilotchain.apps.explorer.cli import org_certificates
from pilotchain.apps.explorer.pages import failure_in_words
from pilotchain.apps.explorer.server import create_app
from pilotchain.codec import decode
from pilotchain.crypto import get_suite
from pilotchain.ledger.block import (
    BlockHeader,
    Receipt,
    TxProof,
    block_hash,
    verify_block_leaves,
    verify_tx_proof,
)
from pilotchain.ledger.commit import verify_header_commit
from pilotchain.ledger.genesis import ValidatorInfo
from pilotchain.sdk import Client
from tests.apps.explorer.helpers import SECRET, Scene, scene

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def world() -> Iterator[Scene]:
    with scene() as built:
        yield built


def _console(world: Scene, org: str) -> TestClient:
    client = world.chain.client(identity=world.chain.identity(org))
    return TestClient(create_app(client, org, world.chain.genesis))


def test_the_overview_shows_height_validators_and_mempool_as_the_organisation(world: Scene) -> None:
    page = _console(world, world.viewer).get("/")
    assert page.status_code == 200
    height = world.chain.client().status().height
    assert f'<span data-field="height">{height}</span>' in page.text
    assert "Validators" in page.text and world.chain.consortium.validator in page.text
    assert "transactions waiting" in page.text
    assert f"<b data-org>{world.viewer}</b>" in page.text
    assert 'data-proof="ok"' in page.text  # the head block's body was checked against its header
    assert 'data-proof="certificate">✓ Certified' in page.text  # and its header by its validators


def test_the_overview_says_which_validators_sign_from_the_newest_certificates(world: Scene) -> None:
    page = _console(world, world.viewer).get("/")
    height = world.chain.client().status().height
    rows = page.text.split('<table class="validators">', 1)[1].split("</table>", 1)[0].split("<tr>")[2:]
    by_name = {row.split("</td>")[0].removeprefix("<td>"): row for row in rows}
    assert set(by_name) == {world.chain.consortium.validator, "extra-validator"}  # the set in force now
    for row in by_name.values():  # both sign every commit record (helpers.certify_commits)
        assert f'<a href="/blocks/{height}">{height}</a>' in row and "0 blocks" in row and 'data-health="signing"' in row
    assert "—" in by_name["extra-validator"].split("</td>")[4]  # it never proposed: the one node proposes
    assert f'<a href="/blocks/{height}">' in by_name[world.chain.consortium.validator].split("</td>")[4]


def test_a_block_shows_its_transactions_with_the_unreadable_ones_redacted(world: Scene) -> None:
    console = _console(world, world.viewer)
    secret_block = console.get(f"/blocks/{world.secret.height}")
    assert secret_block.status_code == 200
    assert "records" in secret_block.text and "redacted" in secret_block.text
    assert SECRET not in secret_block.text and "patient-42" not in secret_block.text
    assert f'href="/tx/{world.secret.tx_id}"' not in secret_block.text
    assert 'data-proof="ok"' in secret_block.text  # redacted, and still proven against the roots
    for root in ("Transaction root", "Receipt root", "State root", "Proposer", "Commit certificate"):
        assert root in secret_block.text
    validator = world.chain.consortium.validator
    validator_org = world.chain.genesis.validators[0].org
    assert (f'data-state="verified">✓ verified: 1 of 1 validators signed — {validator} ({validator_org})'
            in secret_block.text)
    assert 'data-proof="certificate">✓ Certified' in secret_block.text

    own_block = console.get(f"/blocks/{world.visible.height}").text
    assert f'href="/tx/{world.visible.tx_id}"' in own_block
    assert ">kv<" in own_block and ">put<" in own_block and f">{world.viewer}<" in own_block


def test_the_owner_reads_what_the_viewer_may_not(world: Scene) -> None:
    block = _console(world, world.owner).get(f"/blocks/{world.secret.height}").text
    assert f'href="/tx/{world.secret.tx_id}"' in block and 'class="redacted"' not in block
    tx = _console(world, world.owner).get(f"/tx/{world.secret.tx_id}").text
    assert "stored" in tx and "patient-42" in tx


def test_a_transaction_page_shows_its_receipt_events_and_why_it_failed(world: Scene) -> None:
    console = _console(world, world.viewer)
    ok = console.get(f"/tx/{world.visible.tx_id}")
    assert ok.status_code == 200 and "OK" in ok.text and 'data-proof="ok"' in ok.text
    assert 'data-proof="certificate">✓ Certified' in ok.text
    assert "Why it failed" not in ok.text
    failed = console.get(f"/tx/{world.failed.tx_id}").text
    assert "Why it failed:</b> The contract refused the arguments: arguments must be a map" in failed
    assert "BAD_ARGUMENTS" in failed


def test_search_goes_to_a_transaction_or_a_block_and_explains_anything_else(world: Scene) -> None:
    console = _console(world, world.viewer)
    by_id = console.get("/search", params={"q": world.visible.tx_id.upper()}, follow_redirects=False)
    assert by_id.status_code == 303 and by_id.headers["location"] == f"/tx/{world.visible.tx_id}"
    by_height = console.get("/search", params={"q": " 2 "})
    assert by_height.status_code == 200 and "<h1>Block 2</h1>" in by_height.text
    nonsense = console.get("/search", params={"q": "<script>"})
    assert nonsense.status_code == 400 and "<script>" not in nonsense.text.split("<main>")[1]
    missing = console.get("/tx/" + "ab" * 32)
    assert missing.status_code == 404
    assert console.get("/blocks/100000").status_code == 404


def test_the_blocks_list_pages_newest_first(world: Scene) -> None:
    console = _console(world, world.viewer)
    height = world.chain.client().status().height
    listing = console.get("/blocks").text
    assert listing.index(f'href="/blocks/{height}"') < listing.index('href="/blocks/1"')
    older = console.get("/blocks", params={"before": 2}).text
    assert 'href="/blocks/1"' in older and f'href="/blocks/{height}"' not in older


def test_governance_shows_each_proposal_with_votes_by_organisation(world: Scene) -> None:
    page = _console(world, world.viewer).get("/governance").text
    assert "deploy_contract" in page and "executed" in page and "records" in page
    for org in world.chain.consortium.clients:
        assert f"<td>{org}</td>" in page
    assert "approved" in page
    assert 'Closed in block</dt><dd><a href="/blocks/' in page  # follow the proposal to where it took effect


def test_static_files_and_the_live_status_are_served(world: Scene) -> None:
    console = _console(world, world.viewer)
    assert "font" in console.get("/static/explorer.css").text
    assert "data-refresh" in console.get("/static/explorer.js").text
    assert console.get("/static/../cli.py").status_code == 404
    assert console.get("/api/status").json()["height"] >= world.failed.height


def test_failures_in_words() -> None:
    assert failure_in_words("PERMISSION_DENIED", "") == "The signer's organisation or role may not call this method."
    assert failure_in_words("SOMETHING_NEW", "x") == "It failed with status SOMETHING_NEW: x"


def test_a_certificate_of_another_block_or_none_is_not_shown_as_verified(world: Scene) -> None:
    client = world.chain.client()
    validators = list(world.chain.genesis.validators)
    suite = get_suite(world.chain.genesis.suite)
    assert world.secret.height is not None and world.visible.height is not None
    one, other = client.get_block(world.secret.height), client.get_block(world.visible.height)
    assert check_certificate(one.header, one.certificate, validators, suite).state == "verified"
    swapped = check_certificate(one.header, other.certificate, validators, suite)
    assert swapped.state == "invalid" and swapped.signers == () and "height" in swapped.reason
    assert check_certificate(one.header, b"garbage", validators, suite).state == "invalid"
    assert check_certificate(one.header, None, validators, suite).state == "absent"


def test_a_node_that_does_not_answer_gives_a_page_that_says_so(world: Scene) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", identity=world.chain.identity(world.viewer), timeout=5.0)
    console = TestClient(create_app(client, world.viewer, world.chain.genesis))
    for path in ("/", "/blocks", "/blocks/1", "/tx/" + "ab" * 32, "/governance"):
        page = console.get(path)
        assert page.status_code == 502, (path, page.status_code)
        assert 'class="error"' in page.text and "not shown" in page.text
    assert console.get("/api/status").status_code == 502
    assert console.get("/search", params={"q": "nonsense"}).status_code == 400
    assert console.get("/tx/not-an-id").status_code == 400


def test_the_proof_material_is_the_platforms_own_bytes(world: Scene) -> None:
    """What the browser rechecks verifies in Python too: the served bytes are the ones the SDK checked."""
    console = _console(world, world.viewer)
    suite = get_suite(world.chain.genesis.suite)
    document = console.get(f"/api/proof/tx/{world.batch[1].tx_id}").json()
    header = decode(bytes.fromhex(document["header"]), BlockHeader)
    assert block_hash(suite, header).hex() == document["block_hash"] == world.batch[1].block_hash
    proof = TxProof(height=header.height, index=document["index"], tx_count=document["tx_count"],
                    tx_path=tuple(bytes.fromhex(p) for p in document["tx_path"]),
                    receipt_path=tuple(bytes.fromhex(p) for p in document["receipt_path"]))
    receipt = decode(bytes.fromhex(document["receipt"]), Receipt)
    assert verify_tx_proof(suite, header, bytes.fromhex(document["tx"]), receipt, proof)
    validators = [ValidatorInfo(v["name"], v["org"], bytes.fromhex(v["public_key"]), v["power"]) for v in document["validators"]]
    verify_header_commit(header, bytes.fromhex(document["certificate"]), validators, suite)

    block = console.get(f"/api/proof/block/{world.secret.height}").json()
    assert block["tx_leaves"] == [{"leaf_hash": block["tx_leaves"][0]["leaf_hash"]}]  # redacted: no bytes
    assert block["receipt_leaves"][0].keys() == {"leaf_hash"}
    header = decode(bytes.fromhex(block["header"]), BlockHeader)
    leaves = [bytes.fromhex(block["tx_leaves"][0]["leaf_hash"])], [bytes.fromhex(block["receipt_leaves"][0]["leaf_hash"])]
    assert verify_block_leaves(suite, header, *leaves) is None
    assert SECRET not in json.dumps(block)

    assert console.get("/api/proof/tx/nope").status_code == 400
    assert console.get("/api/proof/tx/" + "ab" * 32).status_code == 404
    assert console.get("/api/proof/block/100000").status_code == 404


def _main(page: str) -> str:
    return page.split("<main>", 1)[1].split("</main>", 1)[0]


def test_a_contract_upgrade_shows_its_code_diff_and_its_way_to_enactment(world: Scene) -> None:
    console = _console(world, world.viewer)
    page = _main(console.get(f"/governance/{world.proposals['upgrade']}").text)
    assert '<span class="add">+def get(key):</span>' in page
    assert '<span class="hunk">@@' in page and "--- records 1" in page and "+++ records 2" in page
    rows = page.split('<table class="timeline">', 1)[1].split("</table>", 1)[0].split("<tr>")[2:]
    first_admin, second_admin = list(world.chain.consortium.admins)[:2]
    assert f"<b>{first_admin}</b> proposed" in rows[0] and "enacted" not in rows[0]
    assert f"<b>{second_admin}</b> approved — <b class=\"enacted\">enacted" in rows[1]
    enacted_in = console.get("/governance").text.split(f'id="p{world.proposals["upgrade"]}"', 1)[1]
    assert 'Closed in block</dt><dd><a href="/blocks/' in enacted_in


def test_a_parameter_change_shows_before_and_after_and_an_open_proposal_its_votes_so_far(world: Scene) -> None:
    console = _console(world, world.viewer)
    params = _main(console.get(f"/governance/{world.proposals['params']}").text)
    assert "<td>block_txs_max</td><td>4000</td><td>1000</td>" in params
    still_open = _main(console.get(f"/governance/{world.proposals['open']}").text)
    assert 'data-field="status">open<' in still_open and "enacted" not in still_open
    assert "<td>timeout_vote_ms</td><td>500</td><td>700</td>" in still_open
    assert console.get("/governance/9999").status_code == 404


def test_a_validator_change_shows_the_set_before_and_after(world: Scene) -> None:
    page = _main(_console(world, world.viewer).get(f"/governance/{world.proposals['validator']}").text)
    before, after = page.split("<h3>Before</h3>", 1)[1].split("<h3>After</h3>", 1)
    validator = world.chain.consortium.validator
    assert validator in before and "extra-validator" not in before
    assert validator in after and 'extra-validator <span class="add">(new)</span>' in after
    assert "the new validator set takes effect" in page


def test_contracts_show_versions_permissions_and_the_proven_source(world: Scene) -> None:
    console = _console(world, world.viewer)
    listing = _main(console.get("/contracts").text)
    assert '<a href="/contracts/records">records</a></td><td>2</td><td>active</td>' in listing
    page = _main(console.get("/contracts/records").text)
    assert "def get(key):" in page and 'data-proof="ok"' in page and "state root" in page
    assert f"<td>@read</td><td>any</td><td>{world.owner}</td>" in page
    assert page.count('href="/governance/') == 2  # version 1 and version 2, each by its proposal
    assert console.get("/contracts/nothing_here").status_code == 404
    assert console.get("/contracts/Bad-Name").status_code == 400


def test_organisations_show_cas_identities_revocations_and_expiry(world: Scene) -> None:
    identities = org_certificates(world.chain.consortium.directory, world.viewer)
    client = world.chain.client(identity=world.chain.identity(world.viewer))
    soon = min(c.not_after_ms for c in identities if c.serial != world.revoked_serial) - 10 * 24 * 3600 * 1000
    console = TestClient(create_app(client, world.viewer, world.chain.genesis, identities=identities, clock_ms=lambda: soon))
    page = _main(console.get("/orgs").text)
    for org in world.chain.consortium.clients:
        assert f"<td><b>{org}</b></td>" in page
    assert "temp-client" in page and "data-revoked>revoked: laptop lost" in page
    assert f"<td>{world.viewer}</td><td>{world.revoked_serial}</td><td>laptop lost</td>" in page  # the revocations table
    assert 'data-expiry="soon">expires in 10 days' in page  # the identities expiring first
    assert "identity revoked" in page and f'href="/governance/{world.proposals["revoke"]}"' in page
    later = TestClient(create_app(client, world.viewer, world.chain.genesis, identities=identities,
                                  clock_ms=lambda: soon + 20 * 24 * 3600 * 1000))
    assert 'data-expiry="expired">expired' in later.get("/orgs").text


def test_a_state_key_is_shown_with_its_proof_and_what_the_organisation_may_not_read_is_refused(world: Scene) -> None:
    console = _console(world, world.viewer)
    rate = _main(console.get("/state", params={"contract": "kv", "key": "v/rate"}).text)  # kv keeps "v/" + key: (org, value)
    assert f'<code data-field="value">[&quot;{world.viewer}&quot;, 425]</code>' in rate and 'data-proof="ok"' in rate
    assert 'data-proof="certificate">✓ Certified' in rate
    assert f'data-verify="/api/proof/state?contract=kv&amp;key={b"v/rate".hex()}"' in rate
    absent = _main(console.get("/state", params={"contract": "kv", "key": "no-such-key"}).text)
    assert 'data-field="value">absent' in absent and 'data-proof="ok"' in absent
    refused = console.get("/state", params={"contract": "records", "map": "records", "key": "patient-42"})
    assert refused.status_code == 403 and SECRET not in refused.text and "@read" in refused.text  # the gateway's refusal, in words
    owner = _main(_console(world, world.owner).get("/state", params={"contract": "records", "map": "records",
                                                                     "key": "patient-42"}).text)
    assert SECRET in owner  # the Map's own key layout: m/records\0 + the key's encoding
    assert "<form" in console.get("/state", params={"contract": "records"}).text
    assert console.get("/state", params={"contract": "kv", "key": "0xzz"}).status_code == 400
    assert console.get("/state", params={"contract": "Bad", "key": "k"}).status_code == 400
    document = console.get("/api/proof/state", params={"contract": "kv", "key": b"v/rate".hex()}).json()
    assert document["kind"] == "state" and document["value"] is not None and len(document["siblings"]) == document["bucket_bits"]
    assert console.get("/api/proof/state", params={"contract": "kv", "key": "zz"}).status_code == 400
