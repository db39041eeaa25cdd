"""Which validators are signing: for each validator in force, the last block it proposed and the
last commit certificate it signed among the newest blocks, how many blocks ago that was (its lag),
and a word for it. Pure (no I/O): the server reads the blocks and checks their certificates
(:func:`~pilotchain.apps.explorer.certify.check_certificate`), this module counts.

The node reports no validator's height or votes, but every commit certificate names its signers, so
a validator that stopped voting (crashed, cut off, its key lost) drops out of the certificates while
the others keep committing. Words, by lag (head height minus the height of the last certificate it
signed):

- **signing**: lag at most :data:`SIGNING_LAG_MAX` (a quorum needs only more than 2/3 of the power,
  so a live validator's vote may miss a certificate now and then);
- **behind**: it signed within the window, longer ago than that;
- **silent**: it signed none of the window's certificates;
- **unknown**: none of the window's blocks carried a certificate that verified (a development node
  certifies nothing), so nothing can be said.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pilotchain.ledger.genesis import ValidatorInfo

__all__ = ["SIGNING_LAG_MAX", "WINDOW_BLOCKS", "BlockSigners", "ValidatorSigning", "validator_signing"]

#: the newest blocks whose certificates are read (the overview's bound)
WINDOW_BLOCKS = 64
#: a validator whose last signature is at most this many blocks old is "signing"
SIGNING_LAG_MAX = 2


@dataclass(frozen=True, slots=True)
class BlockSigners:
    """One block as this module needs it: who proposed it and who signed its commit certificate
    (``None`` when it has no certificate that verified)."""

    height: int
    proposer: str
    signers: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class ValidatorSigning:
    name: str
    org: str
    power: int
    last_proposed: int | None
    last_signed: int | None
    #: head height minus ``last_signed`` (None when it signed nothing in the window)
    lag: int | None
    #: "signing", "behind", "silent" or "unknown"
    health: str


def validator_signing(validators: Sequence[ValidatorInfo], blocks: Iterable[BlockSigners],
                      head: int) -> list[ValidatorSigning]:
    """Each validator of ``validators`` (those in force at ``head``) against ``blocks`` (the window,
    any order, none above ``head``)."""
    proposed: dict[str, int] = {}
    signed: dict[str, int] = {}
    certified = False
    for block in blocks:
        if block.height > head:
            raise ValueError(f"block {block.height} is above the head {head}")
        proposed[block.proposer] = max(proposed.get(block.proposer, 0), block.height)
        if block.signers is None:
            continue
        certified = True
        for name in block.signers:
            signed[name] = max(signed.get(name, 0), block.height)
    out = []
    for validator in validators:
        last = signed.get(validator.name)
        lag = head - last if last is not None else None
        if not certified:
            health = "unknown"
        elif lag is None:
            health = "silent"
        else:
            health = "signing" if lag <= SIGNING_LAG_MAX else "behind"
        out.append(ValidatorSigning(validator.name, validator.org, validator.power, proposed.get(validator.name),
                                    last, lag, health))
    return out
