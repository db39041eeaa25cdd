"""Verifying a presented diploma against a verified chain snapshot: a report of named checks,
each passed or failed with the reason. Pure: the time comes in as ``now_ms``.

The checks, in order (a check that needs an earlier one's result is reported as not checked):

``credential``   the envelope and the SD-JWT parse; ``typ`` is ``dc+sd-jwt``, ``vct`` the diploma
                 type; it names the chain the snapshot is of
``chain``        the snapshot verified against genesis (done before, see ``snapshot.py``), and the
                 ``credentials`` contract on chain runs the code this verifier knows
``issuer``       ``iss`` is registered on chain (by which organisation)
``signature``    the issuer-signed JWT verifies with key ``kid`` as registered on chain
``disclosures``  RFC 9901 §7.1: every disclosure's digest is in the signed payload once
``batch``        the JWT is leaf ``index`` of the ``size``-leaf batch whose root the issuer's
                 organisation anchored in a committed transaction: the certified issue time
``issuer key``   the key's validity (as on chain now: retirements count) covers the issue time,
                 and the JWT's ``iat`` is inside it and not after the anchoring
``status``       the entry in the status list (as of the snapshot's block) is VALID
``freshness``    the older of the blocks the status list and the key were read at is no older
                 than ``max_age_ms``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pilotchain.apps.credentials.diploma import (
    DISCLOSABLE_CLAIMS,
    SD_JWT_TYP,
    VCT,
    Presentation,
    parse_status_uri,
)
from pilotchain.apps.credentials.sdjwt import (
    ParsedSdJwt,
    SdJwtInvalid,
    algorithm_for,
    parse_sd_jwt,
    process_disclosures,
    verify_signature,
)
from pilotchain.apps.credentials.snapshot import CONTRACT, Fact, VerifiedSnapshot
from pilotchain.apps.credentials.statuslist import STATUS_NAMES, STATUS_VALID, status_at
from pilotchain.ledger import merkle

__all__ = ["CHECKS", "Check", "Report", "verify_presentation"]

CHECKS = ("credential", "chain", "issuer", "signature", "disclosures", "batch", "issuer key", "status", "freshness")
#: an issuer's clock may run this far ahead of the block that anchors its batch
IAT_SKEW_MS = 5 * 60_000
MAX_AGE_MS_DEFAULT = 7 * 86_400_000


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Report:
    checks: tuple[Check, ...]
    #: the disclosed claims (empty unless the credential parsed and its disclosures verified)
    disclosed: dict[str, Any] = field(default_factory=dict)
    #: digests in the credential that no disclosure opened (hidden claims and decoys)
    hidden: int = 0
    issuer: str = ""

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_json(self) -> dict[str, Any]:
        return {"verified": self.ok, "issuer": self.issuer, "disclosed": self.disclosed,
                "hidden_digests": self.hidden,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks]}


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(ms: int) -> str:
    seconds = max(ms, 0) // 1000
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86_400} days"


class _Report:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def skip_rest(self, reason: str) -> None:
        done = {check.name for check in self.checks}
        for name in CHECKS:
            if name not in done:
                self.checks.append(Check(name, False, f"not checked: {reason}"))


def verify_presentation(presentation: Presentation | str, snapshot: VerifiedSnapshot, *, now_ms: int,
                        max_age_ms: int = MAX_AGE_MS_DEFAULT) -> Report:
    """Every check of the module docstring, for one presented credential."""
    report = _Report()
    algorithm = algorithm_for(snapshot.suite)
    try:
        envelope = presentation if isinstance(presentation, Presentation) else Presentation.from_text(presentation)
        parsed = parse_sd_jwt(envelope.sd_jwt)
    except SdJwtInvalid as exc:
        report.add("credential", False, exc.reason)
        report.skip_rest("the credential does not parse")
        return Report(tuple(report.checks))
    payload, header = parsed.payload, parsed.header
    problem = _shape_problem(parsed, envelope, snapshot)
    if problem:
        report.add("credential", False, problem)
        report.skip_rest("the credential is not a diploma of this chain")
        return Report(tuple(report.checks), issuer=str(payload.get("iss")))
    iss, kid, iat = str(payload["iss"]), str(header["kid"]), payload.get("iat")
    report.add("credential", True, f"an SD-JWT VC ({VCT}) from {iss}, key {kid}, "
                                   f"{len(parsed.disclosures)} disclosure(s)")
    deployed = snapshot.contract.value
    if deployed is None:
        report.add("chain", False, f"no contract {CONTRACT!r} is deployed on this chain (as of block "
                                   f"{snapshot.contract.height})")
    elif deployed.frozen:
        report.add("chain", False, f"contract {CONTRACT!r} is frozen ({deployed.frozen_reason}): status changes "
                                   "cannot be recorded")
    elif not snapshot.code_matches:
        report.add("chain", False, f"contract {CONTRACT!r} v{deployed.version} runs code this verifier does not know "
                                   f"(hash {deployed.code_hash.hex()[:16]}…): update pilotchain")
    if not snapshot.code_matches or deployed is None:
        report.skip_rest("the chain's credentials contract is not the one this verifier knows")
        return Report(tuple(report.checks), issuer=iss)
    if not deployed.frozen:
        report.add("chain", True, f"snapshot of chain {snapshot.chain_id} verified from genesis: "
                                  f"{snapshot.certified_headers} certified headers, {snapshot.validator_changes} "
                                  f"validator-set change(s); contract {CONTRACT} v{deployed.version}")

    issuer = snapshot.issuers.get(iss)
    if issuer is None or issuer.value is None:
        why = (f"not registered on chain (proven absent at block {issuer.height})" if issuer is not None
               else "not in this snapshot (unknown issuer, or a snapshot of other issuers)")
        report.add("issuer", False, f"{iss}: {why}")
        report.skip_rest("unknown issuer")
        return Report(tuple(report.checks), issuer=str(iss))
    report.add("issuer", True, f"{issuer.value['name']} ({iss}), registered by organisation {issuer.value['org']}")

    key = snapshot.keys.get((iss, kid))
    if key is None or key.value is None:
        why = (f"not registered for {iss} (proven absent at block {key.height})" if key is not None
               else f"not in this snapshot; {iss} has keys {', '.join(issuer.value['kids']) or 'none'}")
        report.add("signature", False, f"key {kid}: {why}")
        report.skip_rest("unregistered issuer key")
        return Report(tuple(report.checks), issuer=str(iss))
    public_key = key.value["public_key"]
    try:
        verify_signature(parsed, algorithm, public_key)
        report.add("signature", True, f"{algorithm.alg} signature by key {kid} of {iss}")
    except SdJwtInvalid as exc:
        report.add("signature", False, exc.reason)

    disclosed: dict[str, Any] = {}
    hidden = 0
    try:
        verified = process_disclosures(parsed, algorithm)
        order = {name: i for i, name in enumerate(DISCLOSABLE_CLAIMS)}
        disclosed = {name: verified.claims[name] for name in sorted(verified.disclosed, key=lambda n: order.get(n, 99))}
        hidden = verified.undisclosed_digests
        report.add("disclosures", True, f"{len(disclosed)} disclosed ({', '.join(disclosed) or 'none'}), "
                                        f"{hidden} digest(s) stay hidden ({algorithm.sd_alg})")
    except SdJwtInvalid as exc:
        report.add("disclosures", False, exc.reason)

    anchor = envelope.anchor
    batch = snapshot.batches.get(anchor.batch)
    issued_ms: int | None = None
    if batch is None:
        report.add("batch", False, f"batch {anchor.batch} is not anchored in this snapshot (not anchored on chain, "
                                   "or a snapshot of other batches)")
    elif (batch.iss, batch.kid) != (iss, kid):
        report.add("batch", False, f"batch {anchor.batch} was anchored for {batch.iss} key {batch.kid}, "
                                   f"not {iss} key {kid}")
    elif anchor.size != batch.size or not merkle.verify_inclusion(
            algorithm.suite.hash, batch.root, parsed.issuer_jwt.encode("ascii"), anchor.index, batch.size, anchor.path):
        report.add("batch", False, f"the credential is not leaf {anchor.index} of the {batch.size} anchored in batch "
                                   f"{anchor.batch}: its Merkle proof does not reach the root on chain")
    elif batch.signer_org != issuer.value["org"]:
        report.add("batch", False, f"batch {anchor.batch} was anchored by {batch.signer_org}, not the issuer's "
                                   f"organisation {issuer.value['org']}")
    else:
        issued_ms = batch.timestamp_ms
        report.add("batch", True, f"leaf {anchor.index} of {batch.size} in batch {anchor.batch}, anchored in block "
                                  f"{batch.height} at {_when(batch.timestamp_ms)} by {batch.signer_org}/"
                                  f"{batch.signer_name} (tx {batch.tx_id.hex()[:16]}…)")

    not_before, not_after = key.value["not_before_ms"], key.value["not_after_ms"]
    validity = f"{_when(not_before)} – {_when(not_after)}"
    if issued_ms is None:
        report.add("issuer key", False, f"not checked: no certified issue time (batch); key valid {validity}")
    elif not not_before <= issued_ms < not_after:
        report.add("issuer key", False, f"key {kid} was not valid when the batch was anchored "
                                        f"({_when(issued_ms)}); valid {validity} (as of block {key.height})")
    elif not (isinstance(iat, int) and not isinstance(iat, bool)
              and not_before // 1000 <= iat and iat * 1000 < not_after and iat * 1000 <= issued_ms + IAT_SKEW_MS):
        report.add("issuer key", False, f"iat {iat} is outside key {kid}'s validity ({validity}) or after the "
                                        "anchoring")
    else:
        report.add("issuer key", True, f"{kid} valid {validity}; issued {_when(issued_ms)}")

    status_fact = _check_status(report, payload, iss, snapshot)

    # what can change after issuing — the status and the key's validity — is as fresh as the
    # older of the two reads
    as_of_ms = min(key.timestamp_ms, status_fact.timestamp_ms if status_fact is not None else snapshot.newest_ms)
    age_ms = now_ms - as_of_ms
    report.add("freshness", age_ms <= max_age_ms,
               f"status and key as of {_when(as_of_ms)} ({_age(age_ms)} ago"
               + (")" if age_ms <= max_age_ms else f"; older than the {_age(max_age_ms)} allowed: get a fresh snapshot)"))
    return Report(tuple(report.checks), disclosed=disclosed, hidden=hidden, issuer=str(iss))


def _shape_problem(parsed: ParsedSdJwt, envelope: Presentation, snapshot: VerifiedSnapshot) -> str | None:
    payload, header = parsed.payload, parsed.header
    if envelope.chain != snapshot.genesis_hash:
        return (f"issued on the chain with genesis hash {envelope.chain.hex()[:16]}…, the snapshot is of "
                f"{snapshot.genesis_hash.hex()[:16]}…")
    if header.get("typ") != SD_JWT_TYP:
        return f"typ is {header.get('typ')!r}, an SD-JWT VC has {SD_JWT_TYP!r}"
    if payload.get("vct") != VCT:
        return f"vct is {payload.get('vct')!r}, not a diploma ({VCT})"
    if not isinstance(payload.get("iss"), str) or not isinstance(header.get("kid"), str):
        return "the credential names no issuer (iss) or key (kid)"
    reference = payload.get("status")
    if not (isinstance(reference, dict) and isinstance(reference.get("status_list"), dict)):
        return "the credential has no status-list reference"
    return None


def _check_status(report: _Report, payload: dict[str, Any], iss: str, snapshot: VerifiedSnapshot) -> Fact | None:
    """The status check; the list's proven fact when the snapshot has it."""
    reference = payload["status"]["status_list"]
    index, uri = reference.get("idx"), reference.get("uri")
    try:
        tag, list_id = parse_status_uri(uri)
    except ValueError as exc:
        report.add("status", False, str(exc))
        return None
    if tag != snapshot.genesis_hash[:8].hex():
        report.add("status", False, f"the status list {uri} is on another chain")
        return None
    found = snapshot.lists.get(list_id)
    if found is None or found.value is None:
        report.add("status", False, f"status list {list_id} is not in this snapshot")
        return None
    record = found.value
    if record["iss"] != iss:
        report.add("status", False, f"status list {list_id} belongs to {record['iss']}, not {iss}")
        return found
    if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < record["size"]):
        report.add("status", False, f"index {index!r} is outside status list {list_id} ({record['size']} entries)")
        return found
    value = status_at(record["lst"], record["bits"], index)
    name = STATUS_NAMES.get(value, f"status {value:#x}")
    report.add("status", value == STATUS_VALID, f"{name.upper()} in status list {list_id} (entry {index}) as of "
                                                f"block {found.height}, {_when(found.timestamp_ms)}")
    return found
