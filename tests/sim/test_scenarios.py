"""Scripted scenarios on the simulated cluster: leader crash at each phase, restart mid-round
with a torn WAL write, partition and heal, a far-behind node catching up, a validator-set change.
Every scenario also runs the world's safety checks (agreement, links, certificates, validity, no
honest equivocation)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pilotchain.consensus import Step
from pilotchain.crypto import get_suite
from pilotchain.sim import CachingSuite, SimParameters, World


def _world(*, nodes: int = 4, heal_at_ms: int = 6000, faults: frozenset[str] = frozenset(), seed: int = 11) -> World:
    parameters = SimParameters(nodes=nodes, faults=faults, heal_at_ms=heal_at_ms, liveness_bound_ms=30_000)
    return World(seed, parameters, CachingSuite(get_suite("intl")))


def _assert_healthy(world: World) -> None:
    assert world.safety_violations == []
    assert world.liveness_failure is None
    heights = [world.nodes[i].height for i in world.honest_ids]
    assert min(heights) >= world.liveness_target


def _proposer_node(world: World, height: int, round_: int) -> int:
    replica = next(node.replica for node in world.nodes if node.replica is not None)
    key = replica.validators.public_keys[replica.validators.get_proposer_index(height, round_)]
    return next(node.node_id for node in world.nodes if node.public_key == key)


def _once(condition: Callable[[World], bool], action: Callable[[World], None]) -> Callable[[World], None]:
    fired = False

    def hook(world: World) -> None:
        nonlocal fired
        if not fired and condition(world):
            fired = True
            action(world)

    return hook


PHASES = {
    # crashed as height 3 starts, before its proposal is built: the others need a later round
    "before-propose": lambda r: r.height == 3 and r.round == 0 and r.step == Step.PROPOSE,
    "after-propose": lambda r: r.height == 3 and r.step == Step.PREVOTE,
    "after-precommit": lambda r: r.height == 3 and r.step == Step.PRECOMMIT,
}


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_leader_crash_at_each_phase(phase: str) -> None:
    world = _world()
    leader = _proposer_node(world, 3, 0)
    in_phase = PHASES[phase]

    def condition(w: World) -> bool:
        replica = w.nodes[leader].replica
        return replica is not None and in_phase(replica)

    def crash(w: World) -> None:
        w.crash_node(leader)
        w.schedule(w.now_ms + 1500, "restart", leader)

    world.after_event_hooks.append(_once(condition, crash))
    world.run()
    _assert_healthy(world)
    assert world.nodes[leader].timer_generation > 1  # it really was crashed and restarted
    if phase == "before-propose":
        certificate = world.nodes[(leader + 1) % 4].disk.blocks[2][2]
        assert certificate.round >= 1  # round 0 of height 3 had no proposal


def test_restart_mid_round_with_a_torn_wal_write() -> None:
    world = _world()
    victim = 2

    def condition(w: World) -> bool:
        replica = w.nodes[victim].replica
        return replica is not None and replica.height == 4 and replica.step == Step.PREVOTE

    def tear(w: World) -> None:
        w.crash_node(victim, torn=True)  # crashes inside its next Persist: that write is lost
        w.schedule(w.now_ms + 300, "restart", victim)

    world.after_event_hooks.append(_once(condition, tear))
    world.run()
    _assert_healthy(world)  # includes "no honest equivocation" after the restart


def test_partition_stops_progress_and_heal_resumes_it() -> None:
    world = _world(heal_at_ms=8000)
    side_a, side_b = {0, 1}, {2, 3}
    links = frozenset((a, b) for a in side_a for b in side_b) | frozenset((b, a) for a in side_a for b in side_b)
    world.schedule(1000, "block", links)
    world.schedule(5000, "unblock", links)
    heights: dict[str, int] = {}

    def sample(w: World) -> None:
        if w.now_ms >= 1500 and "early" not in heights:
            heights["early"] = max(node.height for node in w.nodes)
        if w.now_ms >= 4900 and "late" not in heights:
            heights["late"] = max(node.height for node in w.nodes)

    world.after_event_hooks.append(sample)
    world.run()
    _assert_healthy(world)
    assert heights["early"] == heights["late"], "no quorum on either side: nothing may commit"


def test_a_node_down_for_long_catches_up_through_block_requests() -> None:
    world = _world(heal_at_ms=9000)
    world.schedule(300, "crash", 3, False)
    world.schedule(7000, "restart", 3)
    behind: dict[str, int] = {}

    def sample(w: World) -> None:
        if w.now_ms >= 7000 and "gap" not in behind:
            behind["gap"] = max(node.height for node in w.nodes) - w.nodes[3].height

    world.after_event_hooks.append(sample)
    world.run()
    _assert_healthy(world)
    assert behind["gap"] >= 10


def test_validator_set_change_takes_effect_at_the_next_height() -> None:
    for seed in range(20):
        world = _world(faults=frozenset({"reconfigure"}), seed=seed)
        world.run()
        _assert_healthy(world)
        changed = [h for h in range(1, len(world.validator_sets)) if world.validator_sets[h] != world.validator_sets[h - 1]]
        if not changed:
            continue
        first_new_height = changed[0] + 1  # validator_sets[h - 1] is the set of height h
        newcomer = world.nodes[4]
        new_set = world.validator_sets[first_new_height - 1]
        newcomer_index = [v.public_key for v in new_set.validators].index(newcomer.public_key)
        signers = {
            entry.validator_index
            for block, _, certificate in newcomer.disk.blocks[first_new_height - 1 :]
            for entry in certificate.signatures
        }
        assert newcomer_index in signers, "the added validator signs certificates after the change"
        return
    pytest.fail("no seed committed the governance update")
