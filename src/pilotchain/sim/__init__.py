"""Deterministic fault simulator (TigerBeetle VOPR-style) for the node core.

``run_seed(nodes, seed, faults)`` runs the validators' real node cores
(:class:`~pilotchain.node.core.NodeCore`: replica, governed ledger on a temporary store,
mempool) against a simulated network, clock and disk; ``run_seeds`` runs many and summarises. Each seed has
a safety phase (faults active) and a liveness phase (faults healed); see
:mod:`pilotchain.sim.world` for the model and the checks.
"""

from __future__ import annotations

from pilotchain.sim.broken import BROKEN, BROKEN_CORES, BROKEN_REPLICAS, ReplicaSkippingLockCheck
from pilotchain.sim.runner import (
    SeedResult,
    Summary,
    parse_faults,
    parse_seeds,
    replay_command,
    run_seed,
    run_seeds,
)
from pilotchain.sim.world import FAULTS, CachingSuite, SimParameters, World

__all__ = [
    "BROKEN",
    "BROKEN_CORES",
    "BROKEN_REPLICAS",
    "FAULTS",
    "CachingSuite",
    "ReplicaSkippingLockCheck",
    "SeedResult",
    "SimParameters",
    "Summary",
    "World",
    "parse_faults",
    "parse_seeds",
    "replay_command",
    "run_seed",
    "run_seeds",
]
