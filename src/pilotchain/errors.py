"""The platform's error tree: what the core and the server raise on purpose.

Every error the platform raises on purpose derives from :class:`CoreError`, so a shell can tell
"refused, with a reason" from a bug. Errors that refuse input carry a machine-readable reason as
well as a message that says what to do next: ``TxRejected.code`` and ``ContractError.code``
(a :class:`~pilotchain.ledger.tx.RejectCode`: what a client sees for a transaction),
``IdentityRejected.reason`` (a :class:`~pilotchain.identity.errors.RejectReason`: why a
certificate is not vouched for), ``SealError.reason`` (why a sealed message cannot be opened).
The SDK has its own tree, rooted at :class:`pilotchain.sdk.PilotchainError` (``sdk/_errors.py``).

::

    CoreError
    ├── CodecError (ValueError)             bytes that are not a canonical encoding
    ├── CryptoError                         keys, signatures, AEAD (crypto/)
    │   ├── KeyFormatError, UnsupportedSuite
    │   └── SealError                       cannot seal or open (.reason)
    ├── IdentityLayerError                  certificates, CAs, membership (identity/)
    │   ├── IdentityRejected                not vouched for (.reason: RejectReason)
    │   ├── IssueRefused                    a CA refuses to issue
    │   └── IdentityFileError               an identity or CA file that cannot be used
    ├── GenesisError (ValueError)           a genesis that cannot start a chain
    ├── TxRejected                          a transaction refused (.code: RejectCode)
    ├── ContractError                       a contract call failed (.code: RejectCode)
    ├── CodeRejected (ValueError)           contract source the sandbox refuses
    ├── BlockInvalid                        a block that does not follow from the chain
    ├── ConsensusError                      a malformed validator set or certificate
    │   └── InvalidCertificate              a commit certificate that does not verify
    ├── StorageError                        the store (storage/errors.py has its subtree)
    ├── P2PError                            peer links (p2p/errors.py has its subtree)
    ├── WireError (ValueError)              a JSON document that is not the API's shape
    ├── NodeConfigError                     node.json or a genesis file
    │   └── NetworkError                    `pilotchain network` tooling
    └── InvariantBroken                     a broken invariant: stop rather than go on
        └── NodeHalted                      the node core stopped (a certified block it cannot apply)

:class:`InvariantBroken` replaces ``assert`` for invariants: ``python -O`` strips asserts, and a
node must not sign or store something wrong because an optimisation flag was set.
"""

from __future__ import annotations

__all__ = ["CoreError", "InvariantBroken"]


class CoreError(Exception):
    """Base of every error the platform (core and server) raises on purpose."""


class InvariantBroken(CoreError):
    """Something that cannot happen happened: a bug or corrupted state. The component stops
    rather than continue on a wrong assumption (a node halts)."""
