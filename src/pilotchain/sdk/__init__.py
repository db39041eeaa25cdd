"""The pilotchain Python SDK: identities, signed transactions, and clients for a node's gateway.

Quick start::

    from pilotchain.sdk import Client, Identity

    alice = Identity.load("net/orgs/bank/client.id")
    with Client("http://127.0.0.1:26601", identity=alice) as client:   # requests signed as alice
        result = client.invoke(alice, "kv", "put", {"key": "rate", "value": 425})   # waits for the commit
        print(result.height, result.status)
        value = client.read_state("kv", b"v/rate")   # proof checked against the block header

Pin a client to your network so it never talks to another chain that holds the same ports:
``Client(network="net")`` (the folder ``pilotchain network init`` wrote: its first gateway and its
genesis hash), ``Client(url, expected_genesis=HEX)``, or ``$PILOTCHAIN_NETWORK``; a gateway of
another chain raises :class:`WrongNetwork` before anything is sent.

Gateways answer consortium members only: a client signs every request (RFC 9421, see
:mod:`pilotchain.sdk._signing`) as ``identity=``, else the identity file ``$PILOTCHAIN_IDENTITY``
names, else a ``network init`` folder's first client identity; an ``invoke`` signs as its identity
when the client has none. HTTPS gateways of a ``network init --tls`` network are trusted through the
network folder, ``tls_ca=`` or ``$PILOTCHAIN_TLS_CA``.

:class:`AsyncClient` has the same methods, awaitable. Every error is a :class:`PilotchainError`
(the tree is in :mod:`pilotchain.sdk._errors`). To test without a network, see
:mod:`pilotchain.testing`. How far proof verification goes: :mod:`pilotchain.sdk._models`.
Evidence bundles an auditor verifies offline: :mod:`pilotchain.sdk.evidence`.
"""

from __future__ import annotations

from pilotchain.sdk._client import (
    DEFAULT_NODE_URL,
    IDENTITY_ENV,
    NODE_URL_ENV,
    TLS_CA_ENV,
    AsyncClient,
    Client,
    default_node_url,
)
from pilotchain.sdk._errors import (
    ApiError,
    EvidenceError,
    IdentityError,
    NetworkFileError,
    NotFound,
    PilotchainError,
    ProofError,
    ResponseError,
    TimeoutError,
    TransportError,
    TxRejectedError,
    Unavailable,
    WrongNetwork,
)
from pilotchain.sdk._identity import Identity
from pilotchain.sdk._models import (
    BlockInfo,
    BlockTx,
    ChainEvent,
    ContractEvent,
    HeaderVerifier,
    NodeInfo,
    StateValue,
    TxResult,
)
from pilotchain.sdk._network import (
    NETWORK_ENV,
    NetworkPin,
    load_genesis_pin,
    load_network,
    pin_of,
)
from pilotchain.sdk._signing import SignedRequests
from pilotchain.sdk._tx import (
    DEFAULT_EXPIRES_IN_MS,
    SignedTransaction,
    TxBuilder,
    build_transaction,
)

__all__ = [
    # clients
    "Client",
    "AsyncClient",
    "DEFAULT_NODE_URL",
    "NODE_URL_ENV",
    "default_node_url",
    # signing requests: the gateway answers consortium members only
    "SignedRequests",
    "IDENTITY_ENV",
    "TLS_CA_ENV",
    # pinning a client to one chain
    "NetworkPin",
    "NETWORK_ENV",
    "load_network",
    "load_genesis_pin",
    "pin_of",
    # identities and transactions
    "Identity",
    "SignedTransaction",
    "TxBuilder",
    "build_transaction",
    "DEFAULT_EXPIRES_IN_MS",
    # results
    "NodeInfo",
    "BlockInfo",
    "BlockTx",
    "TxResult",
    "ContractEvent",
    "StateValue",
    "ChainEvent",
    "HeaderVerifier",
    # errors
    "PilotchainError",
    "TransportError",
    "ApiError",
    "NotFound",
    "Unavailable",
    "TxRejectedError",
    "ProofError",
    "EvidenceError",
    "TimeoutError",
    "IdentityError",
    "ResponseError",
    "WrongNetwork",
    "NetworkFileError",
]
