"""The simulator over a few hundred seeds, its determinism, its teeth (deliberately broken
replicas must be caught) and its command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pilotchain.cli import sim_cmd
from pilotchain.sim import (
    FAULTS,
    ReplicaSkippingLockCheck,
    parse_faults,
    parse_seeds,
    replay_command,
    run_seed,
    run_seeds,
)
from pilotchain.sim.broken import (
    CoreApplyingCommitTwice,
    CoreSkippingReexecution,
    ReplicaForgettingWal,
    ReplicaNeverChangingRound,
)

ALL = frozenset(FAULTS)


def _assert_clean(summary) -> None:  # type: ignore[no-untyped-def]
    failing = [(seed["seed"], seed["replay"]) for seed in summary.failing_seeds]
    assert summary.safety_violations == 0 and summary.liveness_failures == 0, failing
    assert summary.blocks_committed > 0


@pytest.mark.parametrize("first_seed", [0, 100, 200])
def test_four_validators_all_faults(first_seed: int) -> None:
    summary = run_seeds(4, range(first_seed, first_seed + 100), ALL)
    _assert_clean(summary)
    assert summary.evidence_found > 0  # byzantine equivocation was present and detected


@pytest.mark.parametrize("first_seed", [0, 30])
def test_seven_validators_all_faults(first_seed: int) -> None:
    _assert_clean(run_seeds(7, range(first_seed, first_seed + 30), ALL))


def test_ten_validators_all_faults() -> None:
    _assert_clean(run_seeds(10, range(8), ALL))


def test_no_faults_commits_steadily() -> None:
    result = run_seed(4, 1, frozenset())
    assert result.ok and result.blocks_committed >= 20 and result.evidence == 0


def test_a_seed_replays_exactly() -> None:
    first = run_seed(4, 77, ALL)
    second = run_seed(4, 77, ALL)
    assert first == second
    assert first.replay == "pilotchain sim --nodes 4 --seed 77 --faults all"


def test_broken_lock_check_is_caught_within_a_few_hundred_seeds() -> None:
    """The honest replica passes these seeds (above); skipping line 23/29's lock check forks."""
    summary = run_seeds(4, range(300), ALL, replica_factory=ReplicaSkippingLockCheck, broken="skip-lock-check", stop_on_failure=True)
    assert summary.safety_violations == 1, "the simulator did not catch a replica that ignores its lock"
    failure = summary.failing_seeds[0]
    assert any("agreement violated" in violation for violation in failure["safety_violations"])
    assert failure["replay"].endswith("--broken skip-lock-check")


def test_forgetting_the_wal_is_caught_as_honest_equivocation() -> None:
    faults = parse_faults("crash,torn-write,loss")
    summary = run_seeds(4, range(200), faults, replica_factory=ReplicaForgettingWal, broken="forget-wal", stop_on_failure=True)
    assert summary.safety_violations == 1
    assert any("equivocated" in violation for violation in summary.failing_seeds[0]["safety_violations"])


def test_a_replica_that_never_changes_round_is_caught_as_a_liveness_failure() -> None:
    summary = run_seeds(4, range(100), frozenset({"crash", "loss"}), replica_factory=ReplicaNeverChangingRound, stop_on_failure=True)
    assert summary.liveness_failures == 1 and summary.safety_violations == 0


def test_a_core_applying_a_commit_twice_is_caught_at_the_first_block() -> None:
    summary = run_seeds(4, range(3), frozenset(), core_factory=CoreApplyingCommitTwice, broken="commit-twice",
                        stop_on_failure=True)
    assert summary.seeds_run == 1 and summary.safety_violations == 1
    violations = summary.failing_seeds[0]["safety_violations"]
    assert any("raised BlockInvalid" in violation for violation in violations), violations
    assert summary.failing_seeds[0]["replay"].endswith("--broken commit-twice")


#: a seed whose byzantine validator proposes a block with a state root execution does not produce
BAD_STATE_ROOT_SEED = 25


def test_validators_refuse_a_block_with_a_wrong_state_root() -> None:
    """The honest core re-executes every proposal: the byzantine proposer's forged state root is
    refused (its round is lost) and the seed passes."""
    result = run_seed(4, BAD_STATE_ROOT_SEED, frozenset({"byzantine"}))
    assert "bad-state-root" in result.byzantine.values()
    assert result.ok, result.safety_violations or result.liveness_failure


def test_a_core_that_skips_reexecution_is_caught_as_a_halt() -> None:
    """Without re-execution the forged block gets certified; the ledger cannot apply it."""
    result = run_seed(4, BAD_STATE_ROOT_SEED, frozenset({"byzantine"}), core_factory=CoreSkippingReexecution)
    assert any("halted" in v and "state_root" in v for v in result.safety_violations), result.safety_violations


def test_the_simulator_runs_the_real_ledger_and_governance() -> None:
    """Client transactions execute in the kv contract and governance replaces a validator."""
    from pilotchain.crypto import get_suite
    from pilotchain.ledger.commit import consensus_validator_set
    from pilotchain.sim import CachingSuite, SimParameters, World

    with World(3, SimParameters(nodes=4, faults=frozenset({"reconfigure"}), heal_at_ms=6000),
               CachingSuite(get_suite("intl"))) as world:
        assert "reconfigure" in world.faults and world.governance is not None
        world.run()
        assert world.safety_violations == [] and world.liveness_failure is None
        assert world.governance.step == "done"
        ledger = world.nodes[0].ledger
        assert ledger is not None and ledger.height == world.nodes[0].height
        assert ledger.query("kv", "get", {"key": "k1"}) is not None
        final = consensus_validator_set(ledger.validators_at(ledger.height + 1))
        keys = {v.public_key for v in final.validators}
        assert world.governance.newcomer.public_key in keys
        assert world.governance.replaced.public_key not in keys
        assert len(world.committed_txs) > 20
    assert not world.directory.exists()  # the stores are removed with the world


def test_evidence_is_attributed_with_the_validator_set_of_its_height() -> None:
    """Seed 1336: governance adds a validator, then removes one, which shifts the indices after it;
    a byzantine double vote from before the removal must be blamed on its signer, not on whoever
    holds that index now (the checker once blamed the honest newcomer)."""
    result = run_seed(4, 1336, ALL)
    assert "reconfigure" in result.active_faults and result.byzantine == {3: "lock-breaker"}
    assert result.evidence > 0
    assert result.ok, result.safety_violations


def test_parse_seeds_and_faults() -> None:
    assert parse_seeds("3") == range(3)
    assert parse_seeds("1000-1002") == range(1000, 1003)
    assert parse_faults("all") == ALL and parse_faults("none") == frozenset()
    assert parse_faults("loss, crash") == {"loss", "crash"}
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("loss,gremlins")
    with pytest.raises(ValueError):
        parse_seeds("9-3")
    assert replay_command(7, 5, frozenset({"loss", "crash"})) == "pilotchain sim --nodes 7 --seed 5 --faults crash,loss"


def test_cli_json_summary() -> None:
    result = CliRunner().invoke(sim_cmd.app, ["--nodes", "4", "--seeds", "3", "--faults", "all", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["seeds_run"] == 3
    assert summary["safety_violations"] == 0 and summary["liveness_failures"] == 0
    assert summary["blocks_committed"] > 0 and summary["failing_seeds"] == []


def test_cli_failing_seed_prints_its_replay_command() -> None:
    seed = run_seeds(4, range(300), ALL, replica_factory=ReplicaSkippingLockCheck, stop_on_failure=True).failing_seeds[0]["seed"]
    result = CliRunner().invoke(sim_cmd.app, ["--nodes", "4", "--seed", str(seed), "--faults", "all", "--broken", "skip-lock-check"])
    assert result.exit_code == 1
    assert f"replay: pilotchain sim --nodes 4 --seed {seed} --faults all --broken skip-lock-check" in result.output


def test_cli_rejects_bad_arguments() -> None:
    result = CliRunner().invoke(sim_cmd.app, ["--faults", "gremlins"])
    assert result.exit_code == 2


def test_cli_mounts_as_a_sub_app_and_as_a_command() -> None:
    import typer

    for mount in ("add_typer", "command"):
        main = typer.Typer()
        if mount == "add_typer":
            main.add_typer(sim_cmd.app, name="sim")
        else:
            main.command("sim")(sim_cmd.sim)

        @main.command()
        def version() -> None:
            typer.echo("0")

        result = CliRunner().invoke(main, ["sim", "--nodes", "4", "--seeds", "1", "--faults", "none"])
        assert result.exit_code == 0, result.output
        assert "0 safety violations" in result.output
