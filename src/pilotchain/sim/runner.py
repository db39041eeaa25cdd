"""Run seeds, collect results, print replay commands.

A seed's run is a pure function of (nodes, seed, faults, replica, core): the same arguments always
give the same :class:`SeedResult`, so every failure replays with the command it prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from pilotchain.consensus import Replica
from pilotchain.crypto import Suite, get_suite
from pilotchain.node.core import NodeCore
from pilotchain.sim.world import FAULTS, CachingSuite, SimParameters, World

__all__ = ["SeedResult", "Summary", "parse_faults", "parse_seeds", "replay_command", "run_seed", "run_seeds"]


@dataclass
class SeedResult:
    seed: int
    nodes: int
    faults: list[str]
    active_faults: list[str]
    byzantine: dict[int, str]
    safety_violations: list[str]
    liveness_failure: str | None
    blocks_committed: int
    events: int
    evidence: int
    replay: str

    @property
    def ok(self) -> bool:
        return not self.safety_violations and self.liveness_failure is None


@dataclass
class Summary:
    nodes: int
    faults: list[str]
    seeds_run: int = 0
    safety_violations: int = 0
    liveness_failures: int = 0
    blocks_committed: int = 0
    evidence_found: int = 0
    events: int = 0
    elapsed_s: float = 0.0
    failing_seeds: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: SeedResult) -> None:
        self.seeds_run += 1
        self.blocks_committed += result.blocks_committed
        self.evidence_found += result.evidence
        self.events += result.events
        if result.safety_violations:
            self.safety_violations += 1
        if result.liveness_failure is not None:
            self.liveness_failures += 1
        if not result.ok:
            self.failing_seeds.append(
                {
                    "seed": result.seed,
                    "safety_violations": result.safety_violations[:5],
                    "liveness_failure": result.liveness_failure,
                    "active_faults": result.active_faults,
                    "byzantine": result.byzantine,
                    "replay": result.replay,
                }
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_faults(text: str) -> frozenset[str]:
    """``all``, ``none`` or a comma list of :data:`FAULTS` names."""
    text = text.strip()
    if text == "all":
        return frozenset(FAULTS)
    if text in ("none", ""):
        return frozenset()
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(names - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}, all, none")
    return names


def parse_seeds(text: str) -> range:
    """``200`` (seeds 0..199) or ``1000-1999`` (inclusive)."""
    text = text.strip()
    if "-" in text:
        first, last = (int(part) for part in text.split("-", 1))
        if last < first:
            raise ValueError("seed range must be FIRST-LAST with FIRST <= LAST")
        return range(first, last + 1)
    count = int(text)
    if count < 0:
        raise ValueError("seed count must be >= 0")
    return range(count)


def format_faults(faults: frozenset[str]) -> str:
    if faults == frozenset(FAULTS):
        return "all"
    return ",".join(sorted(faults)) or "none"


def replay_command(nodes: int, seed: int, faults: frozenset[str], broken: str | None = None) -> str:
    command = f"pilotchain sim --nodes {nodes} --seed {seed} --faults {format_faults(faults)}"
    return command + (f" --broken {broken}" if broken else "")


def run_seed(
    nodes: int,
    seed: int,
    faults: frozenset[str],
    *,
    replica_factory: Callable[..., Replica] = Replica,
    core_factory: Callable[..., NodeCore] = NodeCore,
    broken: str | None = None,
    suite: Suite | None = None,
    parameters: SimParameters | None = None,
) -> SeedResult:
    if nodes < 1:
        raise ValueError("need at least one node")
    suite = suite if suite is not None else CachingSuite(get_suite("intl"))
    parameters = parameters if parameters is not None else SimParameters(nodes=nodes, faults=faults)
    with World(seed, parameters, suite, replica_factory=replica_factory, core_factory=core_factory) as world:
        world.run()
    honest_heights = [world.nodes[i].height for i in world.honest_ids]
    return SeedResult(
        seed=seed,
        nodes=nodes,
        faults=sorted(faults),
        active_faults=sorted(world.faults),
        byzantine={node.node_id: node.byzantine for node in world.nodes if node.byzantine is not None},
        safety_violations=world.safety_violations,
        liveness_failure=world.liveness_failure,
        blocks_committed=max(honest_heights) if honest_heights else 0,
        events=world.events_processed,
        evidence=world.evidence_count,
        replay=replay_command(nodes, seed, faults, broken),
    )


def run_seeds(
    nodes: int,
    seeds: Iterable[int],
    faults: frozenset[str],
    *,
    replica_factory: Callable[..., Replica] = Replica,
    core_factory: Callable[..., NodeCore] = NodeCore,
    broken: str | None = None,
    on_result: Callable[[SeedResult], None] | None = None,
    stop_on_failure: bool = False,
) -> Summary:
    started = time.perf_counter()
    suite = CachingSuite(get_suite("intl"))
    summary = Summary(nodes=nodes, faults=sorted(faults))
    for seed in seeds:
        suite._cache.clear()  # bound memory; results never depend on the cache
        result = run_seed(nodes, seed, faults, replica_factory=replica_factory, core_factory=core_factory,
                          broken=broken, suite=suite)
        summary.add(result)
        if on_result is not None:
            on_result(result)
        if stop_on_failure and not result.ok:
            break
    summary.elapsed_s = round(time.perf_counter() - started, 3)
    return summary
