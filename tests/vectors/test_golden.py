"""Golden vectors: today's code must reproduce every pinned byte of ``<topic>-<suite>.json``.

A failure here means the bytes pilotchain hashes, signs or sends changed. If that is
deliberate, regenerate with ``python -m tests.vectors.generate --force`` and say so in the
commit (README.md beside this file); otherwise the change broke the wire format.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pilotchain.codec import encode
from pilotchain.crypto import get_suite

from .compute import (
    RANDOMIZED_SIGNATURES,
    SUITES,
    TOPICS,
    VECTOR_DIR,
    accept_pinned_block,
    compute_suite,
    decode_record,
    path_of,
    pinned_signatures,
    private_key,
)
from .generate import main as generate

CASES = [(suite, topic) for suite in SUITES for topic in TOPICS]
#: what a vector may carry besides its description
COMPARED_FIELDS = ("hex", "value", "record", "signer", "message", "randomized")


@functools.cache
def pinned(suite_name: str) -> dict[str, dict[str, Any]]:
    """The committed documents of one suite, topic -> document."""
    return {topic: json.loads(path_of(VECTOR_DIR, topic, suite_name).read_text()) for topic in TOPICS}


@functools.cache
def recomputed(suite_name: str) -> dict[str, dict[str, Any]]:
    """The same documents computed by the current code (gm: with the pinned signatures)."""
    return compute_suite(suite_name, pinned_signatures(pinned(suite_name)), strict=True)


def pinned_bytes(document: dict[str, Any], name: str) -> bytes:
    return bytes.fromhex(document["vectors"][name]["hex"])


@pytest.mark.parametrize(("suite_name", "topic"), CASES)
def test_current_code_reproduces_every_vector(suite_name: str, topic: str) -> None:
    old, new = pinned(suite_name)[topic], recomputed(suite_name)[topic]
    where = path_of(VECTOR_DIR, topic, suite_name).name
    assert old["suite"] == new["suite"] == suite_name
    assert old["inputs"] == new["inputs"], f"{where}: the fixed inputs differ from the generator's"
    assert list(old["vectors"]) == list(new["vectors"]), f"{where}: vectors added, removed or reordered"
    differences = [
        f"{name}.{field}: pinned {old['vectors'][name].get(field)!r}, now {new['vectors'][name].get(field)!r}"
        for name in old["vectors"]
        for field in COMPARED_FIELDS
        if old["vectors"][name].get(field) != new["vectors"][name].get(field)
    ]
    assert not differences, f"{where}: wire format changed:\n" + "\n".join(differences)


@pytest.mark.parametrize(("suite_name", "topic"), CASES)
def test_every_vector_says_what_it_is(suite_name: str, topic: str) -> None:
    document = pinned(suite_name)[topic]
    assert document["description"].strip()
    assert document["vectors"]
    for name, entry in document["vectors"].items():
        assert entry["description"].strip(), name
        assert ("hex" in entry) != ("value" in entry), name
        assert set(entry) <= {"description", *COMPARED_FIELDS}, name


@pytest.mark.parametrize(("suite_name", "topic"), CASES)
def test_pinned_bytes_decode_and_reencode_identically(suite_name: str, topic: str) -> None:
    document = pinned(suite_name)[topic]
    records = {name: entry["record"] for name, entry in document["vectors"].items() if "record" in entry}
    assert records, "every document pins at least one canonical record"
    for name, record in records.items():
        data = pinned_bytes(document, name)
        assert encode(decode_record(record, data)) == data, f"{name} ({record})"


@pytest.mark.parametrize(("suite_name", "topic"), CASES)
def test_pinned_signatures_verify_and_fresh_ones_too(suite_name: str, topic: str) -> None:
    suite = get_suite(suite_name)
    document = pinned(suite_name)[topic]
    signed = {name: entry for name, entry in document["vectors"].items() if "signer" in entry}
    if topic == "state":
        assert not signed
        return
    assert signed
    for name, entry in signed.items():
        key = private_key(suite, entry["signer"])
        public_key = key.public_key().to_der()
        assert public_key == pinned_bytes(document, f"key.{entry['signer']}"), name
        message, signature = pinned_bytes(document, entry["message"]), pinned_bytes(document, name)
        assert entry.get("randomized", False) is RANDOMIZED_SIGNATURES[suite_name], name
        assert suite.verify(public_key, message, signature), f"pinned {name} does not verify"
        fresh = key.sign(message)
        assert suite.verify(public_key, message, fresh), f"a fresh {name} does not verify"
        if not RANDOMIZED_SIGNATURES[suite_name]:
            assert fresh == signature, f"{name}: {suite.signature_name} signatures are deterministic"
        assert not suite.verify(public_key, message + b"\x00", signature), name


@pytest.mark.parametrize("suite_name", SUITES)
def test_a_fresh_ledger_accepts_the_pinned_block(suite_name: str, tmp_path: Path) -> None:
    """The pinned block 1 bytes, decoded, re-executed and committed from nothing (no cache)."""
    ledger = pinned(suite_name)["ledger"]
    digest = accept_pinned_block(get_suite(suite_name), pinned_bytes(ledger, "block1.bytes"), tmp_path)
    assert digest == pinned_bytes(ledger, "block1.hash")


def copy_vectors(suite_name: str, directory: Path) -> None:
    for topic in TOPICS:
        shutil.copy(path_of(VECTOR_DIR, topic, suite_name), directory)


@pytest.mark.parametrize("suite_name", SUITES)
def test_generator_reproduces_the_files(suite_name: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    copy_vectors(suite_name, tmp_path)
    assert generate(["--suite", suite_name, "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count(": unchanged") == len(TOPICS)


def test_generator_refuses_to_overwrite_without_force(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    copy_vectors("intl", tmp_path)
    target = path_of(tmp_path, "ledger", "intl")
    original = target.read_text()
    document = json.loads(original)
    entry = document["vectors"]["block1.state_root"]
    entry["hex"] = ("00" if entry["hex"][:2] != "00" else "01") + entry["hex"][2:]
    tampered = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    target.write_text(tampered)

    assert generate(["--suite", "intl", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "ledger-intl.json: differs, NOT written" in out and "changed block1.state_root (hex)" in out
    assert target.read_text() == tampered

    assert generate(["--suite", "intl", "--dir", str(tmp_path), "--force"]) == 0
    assert "ledger-intl.json: rewritten" in capsys.readouterr().out
    assert target.read_text() == original


def test_generator_runs_as_a_script_from_any_directory(tmp_path: Path) -> None:
    copy_vectors("intl", tmp_path)
    result = subprocess.run(
        [sys.executable, str(VECTOR_DIR / "generate.py"), "--suite", "intl", "--dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": unchanged") == len(TOPICS)
