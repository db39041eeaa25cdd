"""The explorer in a real browser: Debian's Chromium (``scripts/system-deps.sh`` installs it), driven
by Playwright through ``executable_path``, opens the pages served over HTTP on a free port and reads
what a person would see — and the page checks, in the browser, the proofs of what it shows: a
transaction's inclusion proof and its block's commit certificate turn ✓, a tampered proof turns ✗.
Skipped, saying what is missing, when Playwright or Chromium is not there."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pilotchain.apps.explorer.server import create_app
from pilotchain.codec import encode
from pilotchain.consensus.certificate import compute_validator_set_hash, get_vote_signing_bytes
from pilotchain.crypto import get_suite
from pilotchain.ledger import merkle
from pilotchain.ledger.block import block_hash
from pilotchain.ledger.commit import consensus_validator_set
from pilotchain.ledger.genesis import validator_roster_hash
from tests.apps.explorer.conftest import serve
from tests.apps.explorer.helpers import SECRET, Scene, scene

pytestmark = pytest.mark.timeout(180)

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is missing: pip install -e '.[dev]'")
expect = sync_api.expect


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Scene, str]]:
    with scene() as world:
        client = world.chain.client(identity=world.chain.identity(world.viewer))
        try:
            with serve(create_app(client, world.viewer, world.chain.genesis)) as url:
                yield world, url
        finally:
            client.close()


def test_a_person_opens_the_overview_and_a_block_in_chromium(served: tuple[Scene, str], page: Any) -> None:
    world, url = served
    page.goto(url + "/")
    expect(page.locator("h1")).to_have_text("Overview")
    height = world.chain.client().status().height
    expect(page.locator('[data-field="height"]')).to_have_text(str(height))
    expect(page.locator("[data-org]")).to_have_text(world.viewer)
    expect(page.locator('[data-proof="ok"]')).to_contain_text("Proven")

    page.fill('input[name="q"]', str(world.secret.height))
    page.click("header form button")
    expect(page.locator("h1")).to_have_text(f"Block {world.secret.height}")
    rows = page.locator("table.txs tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("records")
    expect(rows.first.locator(".redacted").first).to_have_text("redacted")
    expect(page.locator('[data-field="certificate"]')).to_contain_text("✓ verified: 1 of 1 validators")
    assert SECRET not in page.content()

    page.goto(f"{url}/blocks/{world.visible.height}")
    expect(page.locator("table.txs tbody tr").first).to_contain_text("put")
    page.click(f'a[href="/tx/{world.visible.tx_id}"]')
    expect(page.locator("h1")).to_have_text("Transaction")
    expect(page.locator('[data-proof="ok"]')).to_be_visible()


# ---------------------------------------------------------------------- the browser's own checks


def test_the_browser_computes_the_platforms_bytes_and_hashes(served: tuple[Scene, str], page: Any) -> None:
    """Vectors made by the Python code, recomputed by verify.js in Chromium: encodings, hashes,
    Merkle roots and inclusion proofs for every tree size up to 9, vote signing bytes, roster hashes."""
    world, url = served
    suite = get_suite("intl")
    assert world.visible.height is not None
    block = world.chain.client().get_block(world.visible.height)
    validators = list(world.chain.genesis.validators)
    leaves_sets = [[bytes([i]) * (i + 1) for i in range(n)] for n in range(10)]
    vectors = {
        "header": encode(block.header).hex(),
        "block_hash": block_hash(suite, block.header).hex(),
        "values": [[value_json, encode(value).hex()] for value_json, value in _values()],
        "roots": [[[leaf.hex() for leaf in leaves], merkle.merkle_root(suite.hash, leaves).hex()] for leaves in leaves_sets],
        "proofs": [[[leaf.hex() for leaf in leaves], index, [p.hex() for p in merkle.inclusion_proof(suite.hash, leaves, index)],
                    merkle.merkle_root(suite.hash, leaves).hex()]
                   for leaves in leaves_sets for index in range(len(leaves))],
        "vote": get_vote_signing_bytes(b"chain-x", 2, 300, 7, bytes(range(32))).hex(),
        "validators": [{"name": v.name, "org": v.org, "public_key": v.public_key.hex(), "power": v.power} for v in validators],
        "roster_hash": validator_roster_hash(suite.hash, tuple(validators)).hex(),
        "set_hash": compute_validator_set_hash(suite, consensus_validator_set(validators)).hex(),
    }
    page.goto(url + "/")
    answers = page.evaluate(_VECTOR_SCRIPT, vectors)
    assert answers["header"] == vectors["header"]  # decoded and re-encoded byte for byte
    assert answers["height"] == block.height
    assert answers["block_hash"] == vectors["block_hash"]
    assert answers["values"] == [expected for _, expected in vectors["values"]]
    assert answers["roots"] == [root for _, root in vectors["roots"]]
    assert answers["proofs"] == [True] * len(vectors["proofs"])
    assert answers["wrong_index"] == [False] * len(vectors["proofs"])
    assert answers["vote"] == vectors["vote"]
    assert answers["roster_hash"] == vectors["roster_hash"]
    assert answers["set_hash"] == vectors["set_hash"]
    assert answers["ed25519"] is True  # Chromium verifies Ed25519 in WebCrypto
    assert answers["refused"] == ["not the canonical encoding", "bytes after the MessagePack value"]


def _values() -> list[tuple[Any, Any]]:
    """(JSON for JS, the Python value) pairs around every MessagePack length and width boundary."""
    ints = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1, -1, -32, -33, -128, -129,
            -32768, -32769, -(2**31), -(2**31) - 1]
    pairs: list[tuple[Any, Any]] = [({"int": i}, i) for i in ints]
    pairs += [({"str": "x" * n}, "x" * n) for n in (0, 31, 32, 255, 256, 65536)]
    pairs += [({"str": "中文 é"}, "中文 é")]
    pairs += [({"bin": "ab" * n}, b"\xab" * n) for n in (0, 255, 256, 65536)]
    pairs += [({"array": n}, [1] * n) for n in (0, 15, 16, 65536)]
    return pairs


_VECTOR_SCRIPT = """
async (v) => {
  const P = window.PilotchainVerify;
  const value = (j) => j.int !== undefined ? j.int : j.str !== undefined ? j.str : j.bin !== undefined ? P.unhex(j.bin)
                     : new Array(j.array).fill(1);
  const header = P.unhex(v.header);
  const out = {};
  out.header = P.hex(P.encode(P.decode(header)));
  out.height = P.readHeader(header).height;
  out.block_hash = P.hex(await P.blockHash(header));
  out.values = v.values.map(([j]) => P.hex(P.encode(value(j))));
  out.roots = [];
  for (const [leaves] of v.roots) {
    const hashes = [];
    for (const leaf of leaves) { hashes.push(await P.leafHash(P.unhex(leaf))); }
    out.roots.push(P.hex(await P.rootFromLeafHashes(hashes)));
  }
  out.proofs = []; out.wrong_index = [];
  for (const [leaves, index, path, root] of v.proofs) {
    const args = [P.unhex(root), P.unhex(leaves[index])];
    out.proofs.push(await P.verifyInclusion(...args, index, leaves.length, path.map(P.unhex)));
    out.wrong_index.push(await P.verifyInclusion(...args, (index + 1) % (leaves.length + 1), leaves.length, path.map(P.unhex)));
  }
  const enc = new TextEncoder();
  const hash = new Uint8Array(32).map((_, i) => i);
  out.vote = P.hex(P.voteSigningBytes(enc.encode("chain-x"), 300, 7, hash));
  out.roster_hash = P.hex(await P.rosterHash(v.validators));
  out.set_hash = P.hex(await P.validatorSetHash(v.validators));
  out.ed25519 = await P.ed25519Available();
  out.refused = [];
  for (const bad of ["cd0001", "0101"]) {
    try { P.decode(P.unhex(bad)); out.refused.push("accepted"); } catch (e) { out.refused.push(e.message); }
  }
  return out;
}
"""


def test_a_transaction_page_turns_its_proof_green_in_the_browser(served: tuple[Scene, str], page: Any) -> None:
    world, url = served
    page.goto(f"{url}/tx/{world.visible.tx_id}")
    check = page.locator("[data-verify]")
    expect(check).to_have_attribute("data-state", "ok")
    expect(check.locator(".verdict")).to_have_text("✓ Checked in your browser")
    steps = check.locator("li.ok")
    expect(steps).to_have_count(5)
    expect(steps.nth(1)).to_contain_text(f"1 of 1 validators signed (power 1 of 1, more than 2/3) — {world.chain.consortium.validator}")
    expect(steps.nth(3)).to_contain_text(f"inclusion proof: transaction {world.visible.index} of")


def test_a_block_page_checks_its_roots_with_the_redacted_leaves(served: tuple[Scene, str], page: Any) -> None:
    world, url = served
    page.goto(f"{url}/blocks/{world.secret.height}")
    check = page.locator("[data-verify]")
    expect(check).to_have_attribute("data-state", "ok")
    expect(check.locator("li.ok").last).to_contain_text("1 transactions and receipts hash to its roots (1 redacted, by their leaf hashes)")


def _tamper(page: Any, pattern: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Serve the page a changed copy of the real proof document (the server is not touched)."""
    def handle(route: Any) -> None:
        response = route.fetch()
        document = response.json()
        change(document)
        route.fulfill(response=response, body=json.dumps(document))

    page.route(pattern, handle)


def _flip(hex_text: str, at: int) -> str:
    data = bytearray(bytes.fromhex(hex_text))
    data[at] ^= 0x01
    return data.hex()


@pytest.mark.parametrize(("field", "why"), [
    ("tx_path", "the inclusion proof does not lead to the header's transaction root"),
    ("receipt", "the receipt is for another transaction"),
    ("signature", "the commit certificate does not verify: bad signature by validator 0"),
    ("header", "the header does not hash to the block hash the node reported"),
    ("validators", "the commit certificate does not verify: the block names another validator roster"),
])  # fmt: skip
def test_a_tampered_transaction_proof_turns_red(served: tuple[Scene, str], page: Any, field: str, why: str) -> None:
    world, url = served

    def change(document: dict[str, Any]) -> None:
        if field == "tx_path":
            document["tx_path"][0] = _flip(document["tx_path"][0], 0)
        elif field == "receipt":
            document["receipt"] = _flip(document["receipt"], 5)  # inside the receipt's tx id
        elif field == "signature":  # the certificate ends with the one signature's last byte
            document["certificate"] = _flip(document["certificate"], len(document["certificate"]) // 2 - 1)
        elif field == "header":  # the last byte of the validator-set hash (before the empty consensus_data)
            document["header"] = _flip(document["header"], len(document["header"]) // 2 - 3)
        else:
            document["validators"][0]["power"] = 2

    tx = world.batch[0] if field == "tx_path" else world.visible  # a block of one has an empty path
    _tamper(page, "**/api/proof/tx/*", change)
    page.goto(f"{url}/tx/{tx.tx_id}")
    check = page.locator("[data-verify]")
    expect(check).to_have_attribute("data-state", "failed")
    expect(check.locator(".verdict")).to_contain_text("✗ Your browser's check failed: " + why)


def test_a_tampered_block_turns_red_and_a_gm_chain_says_who_checked(served: tuple[Scene, str], page: Any) -> None:
    world, url = served
    _tamper(page, "**/api/proof/block/*",
            lambda d: d["tx_leaves"].__setitem__(0, {"raw": _flip(d["tx_leaves"][0]["raw"], 3)}))
    page.goto(f"{url}/blocks/{world.visible.height}")
    check = page.locator("[data-verify]")
    expect(check).to_have_attribute("data-state", "failed")
    expect(check.locator(".verdict")).to_contain_text("the transactions do not hash to the header's transaction root")

    page.unroute("**/api/proof/block/*")
    _tamper(page, "**/api/proof/block/*", lambda d: d.__setitem__("suite", "gm"))
    page.goto(f"{url}/blocks/{world.visible.height}")
    expect(check).to_have_attribute("data-state", "unavailable")
    expect(check.locator(".verdict")).to_contain_text("gm suite (SM2/SM3)")
    expect(check.locator(".verdict")).to_contain_text("done by the explorer's server")


def test_a_person_follows_a_contract_upgrade_from_proposal_to_enactment(served: tuple[Scene, str], page: Any) -> None:
    world, url = served
    upgrade = world.proposals["upgrade"]
    page.goto(url + "/")
    page.click('nav a[href="/governance"]')
    page.click(f'a[href="/governance/{upgrade}"]')
    expect(page.locator("h1")).to_have_text(f"Proposal {upgrade}")
    expect(page.locator('[data-field="status"]')).to_have_text("executed")
    steps = page.locator("table.timeline tbody tr")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("proposed")
    expect(steps.nth(1)).to_contain_text("approved — enacted: the change applied in this transaction")
    expect(page.locator("[data-diff] .add").filter(has_text="+def get(key):")).to_have_count(1)

    steps.nth(1).locator("a[href^='/tx/']").click()  # the transaction that enacted it, proven in the browser
    expect(page.locator("h1")).to_have_text("Transaction")
    expect(page.locator("[data-verify]")).to_have_attribute("data-state", "ok")
    page.go_back()
    steps.nth(1).locator("a[href^='/blocks/']").click()
    expect(page.locator("table.txs tbody tr").first).to_contain_text("approve")

    page.click('nav a[href="/contracts"]')
    page.click('a[href="/contracts/records"]')
    expect(page.locator("[data-source]")).to_contain_text("def get(key):")


def test_a_state_value_is_checked_in_the_browser_and_a_changed_value_turns_red(served: tuple[Scene, str], page: Any) -> None:
    world, url = served
    page.goto(f"{url}/state?contract=kv&key=v/rate")
    check = page.locator("[data-verify]")
    expect(check).to_have_attribute("data-state", "ok")
    expect(check.locator("li.ok").last).to_contain_text("hashes up to block")
    page.goto(f"{url}/state?contract=kv&key=nothing-here")
    expect(check).to_have_attribute("data-state", "ok")
    expect(check.locator("li.ok").nth(2)).to_contain_text("holds no value for it")

    _tamper(page, "**/api/proof/state*", lambda d: d.__setitem__("value", d["value"][:-2] + "00"))
    page.goto(f"{url}/state?contract=kv&key=v/rate")
    expect(check).to_have_attribute("data-state", "failed")
    expect(check.locator(".verdict")).to_contain_text("the bucket does not hold the value shown")
    page.unroute("**/api/proof/state*")
    _tamper(page, "**/api/proof/state*", lambda d: d["siblings"].__setitem__(0, _flip(d["siblings"][0], 0)))
    page.goto(f"{url}/state?contract=kv&key=v/rate")
    expect(check.locator(".verdict")).to_contain_text("the state proof does not lead to the header's state root")
