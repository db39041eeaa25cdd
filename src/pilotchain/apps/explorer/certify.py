"""Who certified a block: its commit certificate checked against the validators in force at its
height, with the signers by name and organisation. Pure (no I/O): the server passes the header,
the certificate bytes the node served, and the validator history it read.

The validators in force are genesis's, then each change governance scheduled (``gov.validators``
``history``, with the keys); :func:`~pilotchain.ledger.commit.verify_header_commit` refuses a
certificate made by any other set (it compares the roster hash the header names), so a wrong
history makes a check fail, never pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pilotchain.crypto import Suite
from pilotchain.ledger.block import BlockHeader
from pilotchain.ledger.commit import InvalidCertificate, verify_header_commit
from pilotchain.ledger.genesis import Genesis, ValidatorInfo

__all__ = ["CertificateCheck", "check_certificate", "validators_at"]


@dataclass(frozen=True, slots=True)
class CertificateCheck:
    #: "verified", "absent" (a development node certifies nothing) or "invalid"
    state: str
    #: (validator, organisation) of each signature, in validator order (empty unless verified)
    signers: tuple[tuple[str, str], ...]
    validator_count: int
    #: why it is invalid, in words ("" otherwise)
    reason: str = ""


def validators_at(genesis: Genesis, history: Sequence[dict[str, Any]], height: int) -> list[ValidatorInfo]:
    """The validator set in force at ``height``: genesis's, replaced by each change effective by then."""
    current = list(genesis.validators)
    for change in sorted(history, key=lambda c: int(c["effective_height"])):
        if int(change["effective_height"]) <= height:
            current = [ValidatorInfo(name=str(v["name"]), org=str(v["org"]), public_key=bytes(v["public_key"]),
                                     power=int(v["power"])) for v in change["validators"]]
    return current


def check_certificate(header: BlockHeader, certificate: bytes | None, validators: Sequence[ValidatorInfo],
                      suite: Suite) -> CertificateCheck:
    """Check ``certificate`` (the commit record the node stored) for ``header`` against ``validators``."""
    if certificate is None:
        return CertificateCheck("absent", (), len(validators))
    try:
        record = verify_header_commit(header, certificate, validators, suite)
    except InvalidCertificate as exc:
        return CertificateCheck("invalid", (), len(validators), str(exc))
    signers = tuple((validators[s.validator_index].name, validators[s.validator_index].org)
                    for s in record.certificate.signatures)
    return CertificateCheck("verified", signers, len(validators))
