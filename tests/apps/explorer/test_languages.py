"""The interface in English and Simplified Chinese: one message table, both languages complete and
alike (same keys, same {names}), every key the code names present, the reader's choice kept — and a
person switching language in Chromium, down to the browser's own proof check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pilotchain.apps.explorer import apppages, messages
from pilotchain.apps.explorer.server import create_app
from tests.apps.explorer.conftest import serve
from tests.apps.explorer.helpers import Scene, scene

pytestmark = pytest.mark.timeout(180)

PACKAGE = Path(messages.__file__).parent
#: keys the code builds from a prefix and a value (each value's key is listed in full below)
DYNAMIC = {
    "why.": [f"why.{code}" for code in ("MALFORMED", "BAD_ARGUMENTS", "PERMISSION_DENIED", "BLOCK_FULL")],
    "app.currency.bucket.": [f"app.currency.bucket.{bucket}" for bucket in apppages.BUCKETS],
    "app.dataex.event.": [f"app.dataex.event.{name}" for name in apppages.ACCESS_EVENTS],
    "health.": ["health.signing", "health.behind", "health.silent", "health.unknown"],
    "gov.step.": ["gov.step.proposed", "gov.step.approved", "gov.step.withdrawn"],
    "orgs.kind.": ["orgs.kind.add_org", "orgs.kind.remove_org", "orgs.kind.rotate_ca", "orgs.kind.revoke"],
    "js.": ["js.ok", "js.absent", "js.failed", "js.unavailable"],  # "js." + the check's state
}


def _code() -> str:
    return "\n".join(path.read_text() for path in [*PACKAGE.glob("*.py"), *PACKAGE.glob("static/*.js")]
                     if path.name != "messages.py")


def _keys_in_code() -> set[str]:
    """The keys the code looks up: ``t("...")`` in Python, ``M("...")`` in the scripts."""
    return {match[1] for match in re.findall(r"""\b[tM]\(\s*(["'])([a-z_]+(?:\.[a-zA-Z0-9_]+)*)\1""", _code())}


def test_both_languages_have_every_message_with_the_same_fields() -> None:
    english, chinese = messages.MESSAGES["en"], messages.MESSAGES["zh-CN"]
    assert english.keys() == chinese.keys()
    for key, text in english.items():
        assert sorted(re.findall(r"\{(\w+)\}", text)) == sorted(re.findall(r"\{(\w+)\}", chinese[key])), key
        assert chinese[key] != text or key in ("none", "tx.id") or text.startswith("—"), f"{key} is not translated"


def test_every_key_the_code_names_exists_and_every_message_is_used() -> None:
    used = _keys_in_code() | {key for keys in DYNAMIC.values() for key in keys}
    table = messages.MESSAGES["en"]
    assert used - table.keys() == set()
    prefixes = tuple(prefix for prefix in DYNAMIC if prefix != "js.")  # each code, kind and step has its message
    code = _code()
    unused = {key for key in table.keys() - used if not key.startswith(prefixes)
              and f'"{key}"' not in code and f"'{key}'" not in code}  # a key handed on as data
    assert unused == set()


def test_the_language_is_the_readers_choice_else_the_browsers() -> None:
    assert messages.pick_language("zh-CN", "en") == "zh-CN"
    assert messages.pick_language(None, "zh-TW,zh;q=0.9,en;q=0.5") == "zh-CN"
    assert messages.pick_language("klingon", "en-GB,en;q=0.8") == "en"
    assert messages.pick_language(None, "fr-FR") == "en"
    token = messages.use_language("zh-CN")
    try:
        assert messages.t("blocks.height_is", height=7) == "高度 7。"
        assert "</" not in messages.script_messages()
    finally:
        messages._language.reset(token)
    assert messages.t("blocks.height_is", height=7) == "Height 7."


@pytest.fixture(scope="module")
def world() -> Iterator[Scene]:
    with scene() as built:
        yield built


def test_pages_speak_the_language_the_switch_chose(world: Scene) -> None:
    console = TestClient(create_app(world.chain.client(identity=world.chain.identity(world.viewer)), world.viewer,
                                    world.chain.genesis))
    assert '<html lang="en">' in console.get("/").text
    assert '<html lang="zh-CN">' in console.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    switched = console.get("/lang/zh-CN", headers={"Referer": "http://testserver/blocks?before=3"}, follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/blocks?before=3"
    assert "lang=zh-CN" in switched.headers["set-cookie"]
    page = console.get(f"/tx/{world.failed.tx_id}").text  # the cookie is kept by the client
    assert "<h1>交易</h1>" in page and "失败原因：" in page and "合约拒绝了参数: arguments must be a map" in page
    assert '"js.ok": "✓ 已在你的浏览器中核验"' in page
    assert console.get("/lang/klingon").status_code == 404
    away = console.get("/lang/en", headers={"Referer": "http://elsewhere.example/x"}, follow_redirects=False)
    assert away.headers["location"] == "/"


def test_a_person_switches_to_chinese_and_back_in_chromium(world: Scene, page: Any) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    client = world.chain.client(identity=world.chain.identity(world.viewer))
    with serve(create_app(client, world.viewer, world.chain.genesis)) as url:
        page.goto(f"{url}/tx/{world.visible.tx_id}")
        expect(page.locator("h1")).to_have_text("Transaction")
        page.click('[data-languages] a[hreflang="zh-CN"]')
        expect(page.locator("h1")).to_have_text("交易")
        expect(page).to_have_url(f"{url}/tx/{world.visible.tx_id}")
        expect(page.locator('nav a[href="/governance"]')).to_have_text("治理")
        check = page.locator("[data-verify]")
        expect(check).to_have_attribute("data-state", "ok")
        expect(check.locator(".verdict")).to_have_text("✓ 已在你的浏览器中核验")
        expect(check.locator("li.ok").nth(3)).to_contain_text("包含证明")
        page.click('nav a[href="/governance"]')
        expect(page.locator("h1")).to_have_text("治理")  # the choice holds from page to page
        page.click('[data-languages] a[hreflang="en"]')
        expect(page.locator("h1")).to_have_text("Governance")
    client.close()
