"""Recall tracing over EPCIS events: from a defective batch up to the batches it was made from, and
down to every vehicle (or other assembly) that received a part made from them. Pure: the events come
from a function (the ``trace`` contract's index, already checked against their hash ids).

Links followed, with canonical identifiers (GS1 Digital Link URIs):

* TransformationEvent — inputs → outputs (a tier-2 steel batch becomes a tier-1 brake-disc batch);
* AggregationEvent — children → parent (parts packed on a pallet);
* AssociationEvent — children → parent (parts installed in a vehicle). The parents reached through
  an association ``ADD`` that no later ``DELETE`` of the same child and parent undid are the
  *affected* assemblies; a vehicle's VIN is the serial of its identifier (``/21/<VIN>``).

Upstream, a batch's *sources* are the batches with no transformation producing them. The recall
scope is everything made from those sources (``batch_only``: from the batch itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pilotchain.apps.supply.epcis import canonical_identifier, canonical_time, identifiers_of

__all__ = ["Affected", "Recall", "trace_recall", "vin_of"]

#: bounds on one trace: identifiers visited and events read
VISITS_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Affected:
    item: str
    vin: str
    via: str
    hash_id: str
    org: str
    event_time: str


@dataclass
class Recall:
    batch: str
    sources: list[str] = field(default_factory=list)
    #: every batch in scope: the sources and all made from them (or the batch and all made from it)
    batches: list[str] = field(default_factory=list)
    #: logistic units (pallets) the batches travelled in
    units: list[str] = field(default_factory=list)
    affected: list[Affected] = field(default_factory=list)
    #: the hash ids of the events the trace used, in the order it used them
    events: list[str] = field(default_factory=list)

    @property
    def vins(self) -> list[str]:
        return sorted({a.vin for a in self.affected})


def vin_of(item: str) -> str:
    """A vehicle's VIN: the serial of its identifier (``…/21/<serial>``), else the identifier."""
    parts = item.split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] in ("21", "8004") else item


def trace_recall(events_of: Callable[[str], Sequence[Mapping[str, Any]]], batch: str, *,
                 batch_only: bool = False) -> Recall:
    """Trace ``batch`` (any notation: canonicalised first); ``events_of(identifier)`` gives the
    stored records ``{hash_id, event, org, ...}`` that name an identifier."""
    start = canonical_identifier(batch)
    recall = Recall(batch=start)
    cache: dict[str, Sequence[Mapping[str, Any]]] = {}

    def read(identifier: str) -> Sequence[Mapping[str, Any]]:
        if identifier not in cache:
            if len(cache) >= VISITS_MAX:
                raise ValueError(f"the trace visits more than {VISITS_MAX} identifiers")
            cache[identifier] = events_of(identifier)
        return cache[identifier]

    def use(record: Mapping[str, Any]) -> None:
        if record["hash_id"] not in recall.events:
            recall.events.append(str(record["hash_id"]))

    # upstream: the batches this one was made from, to the ones nothing produced
    todo, seen = [start], {start}
    while todo:
        current = todo.pop(0)
        made_from: list[str] = []
        for record in read(current):
            ids = identifiers_of(record["event"])
            if ids.kind == "TransformationEvent" and current in ids.outputs:
                use(record)
                made_from += [i for i in ids.inputs if i not in made_from]
        if not made_from:
            recall.sources.append(current)
        for source in made_from:
            if source not in seen:
                seen.add(source)
                todo.append(source)
    # downstream: everything made from the scope's roots, and where it went
    roots = [start] if batch_only else recall.sources
    todo, seen = list(roots), set(roots)
    links: dict[tuple[str, str], list[tuple[str, str, Mapping[str, Any]]]] = {}
    while todo:
        current = todo.pop(0)
        if current not in recall.units:
            recall.batches.append(current)
        for record in read(current):
            ids = identifiers_of(record["event"])
            following: list[str] = []
            if ids.kind == "TransformationEvent" and current in ids.inputs:
                following = list(ids.outputs)
            elif ids.kind in ("AggregationEvent", "AssociationEvent") and current in ids.children and ids.parent:
                links.setdefault((ids.parent, current), []).append(
                    (canonical_time(record["event"]["eventTime"]), str(ids.action), record))
                if ids.kind == "AggregationEvent" and ids.action != "DELETE" and ids.parent not in recall.units:
                    recall.units.append(ids.parent)
                    following = [ids.parent]
            else:
                continue
            use(record)
            for item in following:
                if item not in seen:
                    seen.add(item)
                    todo.append(item)
    for (parent, child), history in links.items():
        history.sort(key=lambda entry: entry[0])
        when, action, record = history[-1]
        if action == "DELETE" or identifiers_of(record["event"]).kind != "AssociationEvent":
            continue
        recall.affected.append(Affected(item=parent, vin=vin_of(parent), via=child, hash_id=str(record["hash_id"]),
                                        org=str(record.get("org", "")), event_time=when))
    recall.affected.sort(key=lambda a: (a.vin, a.via))
    return recall
