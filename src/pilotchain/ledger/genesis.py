"""The genesis document: what a consortium agrees on before block 0.

Everything a node needs to validate the chain from nothing is here: the chain id, the crypto
suite (fixed for the chain's life), the member organisations' CA certificates, the initial
validators and the chain parameters. Block 0's header commits to it through the state root (the
genesis document is written into the ``sys`` namespace of the world state) and its hash is the
chain's identity.
"""

from __future__ import annotations

import re

from pilotchain.codec import CodecError, Record, encode
from pilotchain.consensus.certificate import VOTING_POWER_MAX
from pilotchain.consensus.types import VALIDATORS_MAX
from pilotchain.crypto import SUITE_NAMES, Suite
from pilotchain.errors import CoreError
from pilotchain.identity.errors import UpdateRejected
from pilotchain.identity.membership import Membership
from pilotchain.identity.records import OrgCertificate, decode_record
from pilotchain.ledger.merkle import HashFn
from pilotchain.ledger.tx import TxLimits

__all__ = ["ValidatorInfo", "ChainParams", "Genesis", "GenesisError", "GENESIS_STATE_KEY", "genesis_hash",
            "validator_roster_hash"]

GENESIS_STATE_KEY = b"sys\x00genesis"
_CHAIN_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # whole: fullmatch (a "$" let "chain\n" pass)


class GenesisError(CoreError, ValueError):
    """A genesis document that cannot start a chain."""


class ValidatorInfo(Record, frozen=True):
    name: str
    org: str
    #: SubjectPublicKeyInfo DER of the validator's consensus key
    public_key: bytes
    power: int = 1


class ChainParams(Record, frozen=True):
    """Chain parameters (governance may change them later; see the contracts issue)."""

    block_txs_max: int = 4000
    block_bytes_max: int = 16 * 1024 * 1024
    tx_limits: TxLimits = TxLimits()
    #: bits of the state commitment's bucket index (2**bits buckets); fixed for the chain's life
    state_bucket_bits: int = 16
    #: consensus timeouts (ms)
    timeout_propose_ms: int = 1000
    timeout_vote_ms: int = 500


class Genesis(Record, frozen=True):
    chain_id: str
    suite: str
    genesis_time_ms: int
    #: canonical bytes of each member organisation's CA certificate
    organizations: tuple[bytes, ...]
    validators: tuple[ValidatorInfo, ...]
    params: ChainParams = ChainParams()

    def check(self) -> None:
        """Raise GenesisError with what to fix when this document cannot start a chain."""
        if not _CHAIN_ID_RE.fullmatch(self.chain_id):
            raise GenesisError("chain_id must be lower-case letters, digits and '-', at most 63 characters")
        if self.suite not in SUITE_NAMES:
            raise GenesisError(f"suite must be one of {', '.join(SUITE_NAMES)}")
        if not self.validators:
            raise GenesisError("a chain needs at least one validator (four tolerate one faulty)")
        names = [v.name for v in self.validators]
        if len(set(names)) != len(names):
            raise GenesisError("validator names must be unique")
        keys = [v.public_key for v in self.validators]
        if len(set(keys)) != len(keys):
            raise GenesisError("validator keys must be unique")
        if len(self.validators) > VALIDATORS_MAX:
            raise GenesisError(f"at most {VALIDATORS_MAX} validators (consensus counts every vote of every validator)")
        if any(not 1 <= v.power <= VOTING_POWER_MAX for v in self.validators):
            raise GenesisError(f"validator power must be 1..{VOTING_POWER_MAX}")
        if self.genesis_time_ms < 0:
            raise GenesisError("genesis_time_ms must not be negative")
        if not 4 <= self.params.state_bucket_bits <= 24:
            raise GenesisError("state_bucket_bits must be between 4 and 24")
        if self.params.timeout_propose_ms < 1 or self.params.timeout_vote_ms < 1:
            raise GenesisError("timeout_propose_ms and timeout_vote_ms must be at least 1 ms")
        self._check_organizations()

    def _check_organizations(self) -> None:
        """Every organisation certificate decodes, is self-signed and of this suite, and no
        organisation is listed twice: the membership a node builds from genesis (the fuzz target
        ``genesis`` found documents that passed check() and then failed every node's start)."""
        try:
            Membership(self.suite, [decode_record(raw, OrgCertificate) for raw in self.organizations])
        except (CodecError, UpdateRejected) as exc:
            raise GenesisError(f"an organisation certificate is unusable: {exc}; "
                               "take each organisation's CA certificate as `pilotchain identity ca-init` wrote it") from exc


def validator_roster_hash(hash_fn: HashFn, validators: tuple[ValidatorInfo, ...]) -> bytes:
    return hash_fn(b"pilotchain/validators/v1\x00" + encode(validators))


def genesis_hash(suite: Suite, genesis: Genesis) -> bytes:
    """The network's identity: what a gateway reports and a client or node compares."""
    return suite.hash(b"pilotchain/genesis/v1\x00" + encode(genesis))
