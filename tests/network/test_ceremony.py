"""The genesis ceremony: four organisations, each in its own sandbox, only public files copied
between them; every step runs under a guard that fails any open() of another participant's
folder. The genesis loads, the acknowledgements agree, and the four nodes run as real
processes (encrypted node keys unlocked from the environment) and commit a transaction.
Tampering (a bad signature, a missing org, a substituted CA, a different genesis hash) is a
clear error."""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pilotchain.cli.main import app
from pilotchain.identity.files import PASSPHRASE_ENV, load_ca, load_identity
from pilotchain.network import ceremony
from pilotchain.network.ceremony import CeremonyError
from pilotchain.network.processes import NodeProcess, start_node, stop_node, wait_until
from pilotchain.node.config import load_genesis, load_node_config
from pilotchain.sdk import Identity

from .live import assert_agreement, free_port_block, height, logs
from .test_live_network import _committed, _submit_many

ORGS = ("bank", "hospital", "university", "carmaker")
NOW = 1_770_000_000_000
NODE_PASS = "node passphrase"
CA_PASS = "ca passphrase"


@contextmanager
def only_inside(allowed: Path, forbidden: list[Path]) -> Iterator[None]:
    """Fail every open() of a path under ``forbidden`` unless it is under ``allowed``."""
    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def check(path: Any) -> None:
        if isinstance(path, int):
            return
        resolved = Path(os.fsdecode(path)).resolve()
        if resolved.is_relative_to(allowed):
            return
        for root in forbidden:
            if resolved.is_relative_to(root):
                raise AssertionError(f"a step inside {allowed.name} opened {resolved}")

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        check(file)
        return real_open(file, *args, **kwargs)

    def guarded_os_open(path: Any, *args: Any, **kwargs: Any) -> int:
        check(path)
        return real_os_open(path, *args, **kwargs)

    builtins.open = guarded_open
    io.open = guarded_open
    os.open = guarded_os_open
    try:
        yield
    finally:
        builtins.open, io.open, os.open = real_open, real_io_open, real_os_open


class Consortium:
    """One sandbox per participant; ``run(who, ...)`` runs a CLI step guarded to ``who``'s
    sandbox; ``copy`` moves a public file between sandboxes."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.sandboxes = {who: self.root / who for who in ("coordinator", *ORGS)}
        for path in self.sandboxes.values():
            path.mkdir()
        self.runner = CliRunner()

    def run(self, who: str, *args: str, ok: bool = True, env: dict[str, str] | None = None) -> str:
        box = self.sandboxes[who]
        others = [p for name, p in self.sandboxes.items() if name != who]
        with only_inside(box, others):
            result = self.runner.invoke(app, list(args), env=env)
        assert (result.exit_code == 0) is ok, result.output
        assert "Traceback" not in result.output and "PRIVATE KEY" not in result.output
        return result.output

    def copy(self, source: str, relative: str, target: str, name: str | None = None) -> Path:
        destination = self.sandboxes[target] / (name or Path(relative).name)
        shutil.copyfile(self.sandboxes[source] / relative, destination)
        return destination


def _ceremony(tmp_path: Path, base_port: int) -> Consortium:
    c = Consortium(tmp_path)
    coord = c.sandboxes["coordinator"]
    c.run("coordinator", "ceremony", "plan", "--out", str(coord / "plan.json"), "--orgs", ",".join(ORGS),
          "--chain-id", "city-net", "--now-ms", str(NOW))
    for i, org in enumerate(ORGS):
        box = c.sandboxes[org]
        c.copy("coordinator", "plan.json", org)
        secret = box / "node.pass"
        secret.write_text(NODE_PASS + "\n")
        secret.chmod(0o600)
        extra = ["--passphrase-file", str(secret)] if org == "hospital" else []  # hospital's CA encrypted too
        out = c.run(org, "ceremony", "contribute", "--org", org, "--plan", str(box / "plan.json"), "--dir", str(box / org),
                    "--base-port", str(base_port + 2 * i), "--node-passphrase-file", str(secret),
                    "--now-ms", str(NOW), *extra, env={PASSPHRASE_ENV: CA_PASS} if org == "bank" else None)
        assert "CA key id" in out
        c.copy(org, f"{org}/contribution.json", "coordinator", f"{org}.contribution.json")
    out = c.run("coordinator", "ceremony", "assemble", "--plan", str(coord / "plan.json"), "--out", str(coord),
                *[str(coord / f"{org}.contribution.json") for org in ORGS])
    assert "genesis" in out
    for org in ORGS:
        box = c.sandboxes[org]
        c.copy("coordinator", "genesis.json", org)
        c.copy("coordinator", "network.json", org)
        extra = ["--passphrase-file", str(box / "node.pass")] if org == "hospital" else []
        out = c.run(org, "ceremony", "acknowledge", "--dir", str(box / org), "--genesis", str(box / "genesis.json"),
                    "--manifest", str(box / "network.json"), *extra,
                    env={PASSPHRASE_ENV: CA_PASS} if org == "bank" else None)
        assert "genesis hash" in out
        c.copy(org, f"{org}/ack.json", "coordinator", f"{org}.ack.json")
    out = c.run("coordinator", "ceremony", "check-acks", "--genesis", str(coord / "genesis.json"),
                *[str(coord / f"{org}.ack.json") for org in ORGS])
    assert "all 4 organisations" in out
    for org in ORGS:
        box = c.sandboxes[org]
        c.run(org, "ceremony", "finish", "--dir", str(box / org), "--genesis", str(box / "genesis.json"),
              "--manifest", str(box / "network.json"))
    return c


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_four_organisations_each_keep_their_keys_and_run_the_chain(tmp_path: Path) -> None:
    base = free_port_block(8)
    c = _ceremony(tmp_path, base)
    coord = c.sandboxes["coordinator"]
    genesis = load_genesis(coord / "genesis.json")
    assert [v.org for v in genesis.validators] == list(ORGS)
    manifest = json.loads((coord / "network.json").read_text())
    assert "home" not in json.dumps(manifest) and "ca_dir" not in json.dumps(manifest)  # public only
    # the coordinator never saw a private key; each org's keys are in its own sandbox only
    assert not [p for p in coord.rglob("*") if p.suffix in (".id", ".pem")]
    assert load_ca(c.sandboxes["bank"] / "bank" / "ca", passphrase=CA_PASS.encode()).org_id == "bank"
    homes = [c.sandboxes[org] / org / "nodes" / f"{org}-v1" for org in ORGS]
    for home in homes:
        assert "ENCRYPTED PRIVATE KEY" in (home / "node.id").read_text()
        assert load_genesis(home / "genesis.json") == genesis
    nodes = []
    for home in homes:
        config = load_node_config(home)
        nodes.append(NodeProcess(name=config.name, org=config.org, home=home, gateway_url=config.gateway_url,
                                 p2p_addr=config.p2p_advertise))
    try:
        for node in nodes:
            start_node(node, extra_env={PASSPHRASE_ENV: NODE_PASS})
        client = Identity(load_identity(c.sandboxes["carmaker"] / "carmaker" / "client.id"))
        # the gateways answer members only: read the heights as one
        assert wait_until(lambda: all(height(n, client) >= 1 for n in nodes), timeout_s=90), logs(nodes)
        ids = _submit_many(nodes[0].gateway_url, client, "city-net", 3, "ceremony")
        assert wait_until(lambda: all(_committed(n.gateway_url, ids, client) for n in nodes), timeout_s=60), logs(nodes)
        assert_agreement(nodes, client)
    finally:
        for node in nodes:
            stop_node(node, kill=True, grace_s=10)


# -- tampering: each a clear error --------------------------------------------------------------


@pytest.fixture
def contributed(tmp_path: Path) -> tuple[Path, list[Path]]:
    plan = tmp_path / "plan.json"
    ceremony.write_plan(plan, chain_id="city-net", suite_name="intl", genesis_time_ms=NOW,
                        orgs=[ceremony.PlannedOrg(org, org.title()) for org in ORGS])
    paths = []
    for i, org in enumerate(ORGS):
        ceremony.contribute(tmp_path / org, org=org, plan_path=plan, base_port=30000 + 2 * i, now_ms=NOW)
        paths.append(tmp_path / org / "contribution.json")
    return plan, paths


def test_a_contribution_with_a_bad_signature_is_refused(tmp_path: Path, contributed: tuple[Path, list[Path]]) -> None:
    plan, paths = contributed
    document = json.loads(paths[1].read_text())
    document["body"]["validators"][0]["p2p_addr"] = "10.6.6.6:26600"  # redirected in transit
    paths[1].write_text(json.dumps(document))
    with pytest.raises(CeremonyError, match="signature of hospital's contribution does not verify"):
        ceremony.assemble(plan, paths, tmp_path / "out")


def test_missing_duplicate_and_wrong_suite_contributions_are_refused(tmp_path: Path, contributed: tuple[Path, list[Path]]) -> None:
    plan, paths = contributed
    with pytest.raises(CeremonyError, match="no contribution from carmaker"):
        ceremony.assemble(plan, paths[:3], tmp_path / "out")
    with pytest.raises(CeremonyError, match="second contribution from 'bank'"):
        ceremony.assemble(plan, [*paths, paths[0]], tmp_path / "out")
    gm_plan = tmp_path / "gm-plan.json"
    ceremony.write_plan(gm_plan, chain_id="city-net", suite_name="gm", genesis_time_ms=NOW,
                        orgs=[ceremony.PlannedOrg(org, org.title()) for org in ORGS])
    with pytest.raises(CeremonyError, match="suite 'intl', the chain uses 'gm'"):
        ceremony.assemble(gm_plan, paths, tmp_path / "out")
    assert not (tmp_path / "out" / "genesis.json").exists()


def test_orgs_refuse_a_substituted_ca_and_acks_must_name_one_genesis(tmp_path: Path, contributed: tuple[Path, list[Path]]) -> None:
    plan, paths = contributed
    # a coordinator (or attacker) swaps the university's contribution for one of its own making
    ceremony.contribute(tmp_path / "impostor", org="university", plan_path=plan, base_port=31000, now_ms=NOW)
    forged = [*paths[:2], tmp_path / "impostor" / "contribution.json", paths[3]]
    ceremony.assemble(plan, forged, tmp_path / "forged")
    with pytest.raises(CeremonyError, match="another org certificate for university"):
        ceremony.acknowledge(tmp_path / "university", tmp_path / "forged" / "genesis.json", tmp_path / "forged" / "network.json")

    ceremony.assemble(plan, paths, tmp_path / "out")
    genesis, manifest = tmp_path / "out" / "genesis.json", tmp_path / "out" / "network.json"
    acks = []
    for org in ORGS:
        ceremony.acknowledge(tmp_path / org, genesis, manifest)
        acks.append(tmp_path / org / "ack.json")
    digest = ceremony.check_acks(genesis, acks)
    with pytest.raises(CeremonyError, match="no acknowledgement from university"):
        ceremony.check_acks(genesis, [acks[0], acks[1], acks[3]])
    # the carmaker acknowledges another genesis (properly signed by its CA key)
    ca = load_ca(tmp_path / "carmaker" / "ca")
    body = {"format": ceremony.ACK_FORMAT, "org": "carmaker", "chain_id": "city-net", "genesis_hash": "ab" * 32}
    (tmp_path / "other-ack.json").write_text(json.dumps(ceremony._sign(ca, ceremony._ACK_DOMAIN, body)))
    with pytest.raises(CeremonyError, match=f"carmaker acknowledged genesis {'ab' * 32}, not {digest}"):
        ceremony.check_acks(genesis, [*acks[:3], tmp_path / "other-ack.json"])
    # an ack signed by another key than the org's CA in genesis
    body["genesis_hash"] = digest
    impostor_ca = load_ca(tmp_path / "impostor" / "ca")
    (tmp_path / "forged-ack.json").write_text(json.dumps(ceremony._sign(impostor_ca, ceremony._ACK_DOMAIN, {**body, "org": "university"})))
    with pytest.raises(CeremonyError, match="does not verify under university's CA key"):
        ceremony.check_acks(genesis, [acks[0], acks[1], tmp_path / "forged-ack.json", acks[3]])


def test_a_later_organisation_joins_with_its_own_keys(tmp_path: Path, contributed: tuple[Path, list[Path]]) -> None:
    plan, paths = contributed
    ceremony.assemble(plan, paths, tmp_path / "out")
    newcomer = tmp_path / "power-box"
    newcomer.mkdir()
    for name in ("genesis.json", "network.json"):
        shutil.copyfile(tmp_path / "out" / name, newcomer / name)
    with only_inside(newcomer, [tmp_path / org for org in ORGS]):
        ceremony.contribute(newcomer / "power", org="power", join_genesis=newcomer / "genesis.json",
                            base_port=32000, now_ms=NOW + 1000)
        ceremony.manifest_add(newcomer / "network.json", newcomer / "genesis.json",
                              newcomer / "power" / "contribution.json", now_ms=NOW + 2000)
        (home,) = ceremony.finish(newcomer / "power", newcomer / "genesis.json", newcomer / "network.json")
    config = load_node_config(home)
    assert set(config.peers) == {f"{org}-v1" for org in ORGS}
    proposal = json.loads((home / "validator.json").read_text())
    assert proposal["name"] == "power-v1" and proposal["org"] == "power"
    assert (newcomer / "power" / "ca" / "org-certificate.pem").exists()  # what add_org carries
    # a contribution made for another chain is refused
    with pytest.raises(CeremonyError, match="another plan or genesis"):
        ceremony.assemble(plan, [*paths[:3], newcomer / "power" / "contribution.json"], tmp_path / "x")


def test_the_guard_catches_a_read_of_another_sandbox(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    (theirs / "ca-key.pem").write_text("secret")
    with only_inside(mine.resolve(), [theirs.resolve()]), pytest.raises(AssertionError, match="opened"):
        (theirs / "ca-key.pem").read_text()
