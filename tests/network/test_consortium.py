"""`network init` material: CAs, identities, genesis and node homes that fit together."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pilotchain.cli.main import app
from pilotchain.identity.files import load_ca, load_identity
from pilotchain.ledger.auth import MembershipAuthenticator
from pilotchain.network.consortium import (
    DEFAULT_ORGS,
    NetworkError,
    init_network,
    load_genesis,
    load_manifest,
    load_node_config,
    parse_orgs,
)
from pilotchain.node.config import NodeConfigError

NOW = 1_790_000_000_000


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_init_network_writes_a_consistent_consortium(tmp_path: Path, suite: str) -> None:
    manifest = init_network(tmp_path / "net", suite_name=suite, validators=4, now_ms=NOW)
    root = tmp_path / "net"
    assert load_manifest(root) == manifest
    genesis = load_genesis(root / "genesis.json")
    assert genesis.suite == suite and len(genesis.organizations) == len(DEFAULT_ORGS)
    assert [v.name for v in genesis.validators] == [n["name"] for n in manifest["nodes"]]
    auth = MembershipAuthenticator.from_genesis(genesis)
    for node in manifest["nodes"]:
        for key in ("name", "org", "p2p_addr", "gateway_url", "home"):
            assert node[key]
        home = root / node["home"]
        config = load_node_config(home)
        identity = load_identity(home / config.identity_file)
        assert identity.certificate.org_id == node["org"]
        assert stat.S_IMODE((home / config.identity_file).stat().st_mode) == 0o600
        member = auth.membership.authenticate(identity.certificate, NOW + 1, required_role="validator")
        assert member.public_key_der == next(v.public_key for v in genesis.validators if v.name == node["name"])
        assert set(config.peers) == {n["name"] for n in manifest["nodes"]} - {node["name"]}
    for org in manifest["organizations"]:
        client = load_identity(root / org["client_identity"])
        assert auth.caller_of(__import__("pilotchain.codec", fromlist=["encode"]).encode(client.certificate), NOW + 1).org == org["org"]
        assert load_ca(root / org["ca_dir"]).org_id == org["org"]


def test_refuses_to_overwrite_and_bad_specs(tmp_path: Path) -> None:
    init_network(tmp_path / "n", validators=1, orgs=parse_orgs("2"), now_ms=NOW)
    with pytest.raises(NetworkError, match="already holds a network"):
        init_network(tmp_path / "n", validators=1, now_ms=NOW)
    with pytest.raises(NetworkError, match="lower-case"):
        parse_orgs("Bank A")
    with pytest.raises(NetworkError, match="unique"):
        parse_orgs("bank,bank")
    assert parse_orgs("bank,clinic=Clinic 9")[1].display_name == "Clinic 9"
    with pytest.raises(NetworkError, match="validators"):
        init_network(tmp_path / "m", validators=0, now_ms=NOW)


def test_tampered_genesis_is_refused(tmp_path: Path) -> None:
    init_network(tmp_path / "n", validators=1, orgs=parse_orgs("1"), now_ms=NOW)
    path = tmp_path / "n" / "genesis.json"
    document = json.loads(path.read_text())
    document["hash"] = "00" * 32
    path.write_text(json.dumps(document))
    with pytest.raises(NodeConfigError, match="does not match"):
        load_genesis(path)


@pytest.mark.parametrize("suite", ["intl", "gm"])
def test_demo_walkthrough_commits_and_verifies(tmp_path: Path, suite: str) -> None:
    result = CliRunner().invoke(app, ["demo", "--local", "--crypto", suite, "--dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "all proofs verified" in result.output
    assert "refused by the kv owner rule" in result.output


def test_a_tls_network_gives_every_node_a_certificate_from_its_ca_also_when_added_later(tmp_path: Path) -> None:
    from cryptography import x509

    from pilotchain.network.consortium import add_node

    root = tmp_path / "net"
    init_network(root, validators=2, orgs=parse_orgs("2"), base_port=26900, now_ms=NOW, tls=True)
    ca = x509.load_pem_x509_certificate((root / "tls-ca.pem").read_bytes())
    entry = add_node(root, org="bank", now_ms=NOW)
    manifest = load_manifest(root)
    assert manifest["tls_ca"] == "tls-ca.pem" and entry["gateway_url"].startswith("https://")
    for node in manifest["nodes"]:
        home = root / node["home"]
        config = load_node_config(home)
        assert node["gateway_url"].startswith("https://")
        assert (config.tls_cert_file, config.tls_key_file) == ("tls.crt", "tls.key")
        x509.load_pem_x509_certificate((home / "tls.crt").read_bytes()).verify_directly_issued_by(ca)
        assert (home / "tls.key").stat().st_mode & 0o777 == 0o600
    plain = tmp_path / "plain"
    init_network(plain, validators=1, orgs=parse_orgs("1"), base_port=26950, now_ms=NOW)
    assert "tls_ca" not in load_manifest(plain) and not (plain / "tls-ca.pem").exists()


def test_only_the_named_organisations_run_validators(tmp_path: Path) -> None:
    """A network one organisation runs (a central bank's currency network): every validator is
    the central bank's; the member banks are organisations with identities and no node."""
    manifest = init_network(tmp_path / "cny", orgs=parse_orgs("central-bank,bank-a,bank-b"), validators=4,
                            validator_orgs=["central-bank"], now_ms=NOW)
    genesis = load_genesis(tmp_path / "cny" / "genesis.json")
    assert [v.name for v in genesis.validators] == [f"central-bank-v{k}" for k in (1, 2, 3, 4)]
    assert {v.org for v in genesis.validators} == {"central-bank"} == {n["org"] for n in manifest["nodes"]}
    assert [o["org"] for o in manifest["organizations"]] == ["central-bank", "bank-a", "bank-b"]
    with pytest.raises(NetworkError, match="validator-orgs"):
        init_network(tmp_path / "x", orgs=parse_orgs("bank-a"), validators=1, validator_orgs=["central-bank"], now_ms=NOW)
    result = CliRunner().invoke(app, ["network", "init", "--dir", str(tmp_path / "cli"), "--orgs",
                                      "central-bank,bank-a", "--validator-orgs", "central-bank", "--json"])
    assert result.exit_code == 0, result.output
    assert {n["org"] for n in json.loads(result.output)["nodes"]} == {"central-bank"}
