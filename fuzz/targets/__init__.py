"""The fuzz targets, by name (each module: ``CONTRACT``, ``one_input(data)``, ``seeds()``)."""

from __future__ import annotations

#: every target, in the order `make fuzz` and the tests run them
TARGET_NAMES: tuple[str, ...] = (
    "codec",
    "transaction",
    "block",
    "consensus",
    "p2p_frame",
    "p2p_handshake",
    "identity",
    "genesis",
    "contract_source",
    "gateway_auth",
    "exchange",
    "credentials",
    "epcis",
    "voucher",
    "evidence",
)

#: what each target instruments for coverage: the modules its bytes reach (module names or
#: packages). Narrow on purpose: coverage elsewhere does not guide these inputs, and atheris
#: instruments ~15 modules a second, so instrumenting all of pilotchain cost every run ~6 s.
INSTRUMENTED: dict[str, tuple[str, ...]] = {
    "codec": ("pilotchain.codec",),
    "transaction": ("pilotchain.codec", "pilotchain.ledger.tx", "pilotchain.ledger.auth", "pilotchain.identity"),
    "block": ("pilotchain.codec", "pilotchain.ledger", "pilotchain.consensus.certificate", "pilotchain.node.chain"),
    "consensus": ("pilotchain.codec", "pilotchain.consensus"),
    "p2p_frame": ("pilotchain.codec", "pilotchain.p2p.framing", "pilotchain.consensus.types", "pilotchain.ledger.tx"),
    "p2p_handshake": ("pilotchain.codec", "pilotchain.p2p.handshake", "pilotchain.identity", "pilotchain.crypto.kex"),
    "identity": ("pilotchain.codec", "pilotchain.identity", "pilotchain.crypto"),
    "genesis": ("pilotchain.codec", "pilotchain.ledger.genesis", "pilotchain.node.config", "pilotchain.identity",
                "pilotchain.consensus.certificate"),
    "contract_source": ("pilotchain.contracts.sandbox",),
    "gateway_auth": ("pilotchain.gateway._auth", "pilotchain.ledger.auth", "http_message_signatures", "http_sf"),
    "exchange": ("pilotchain.codec", "pilotchain.apps.exchange.delivery", "pilotchain.apps.exchange.records",
                 "pilotchain.crypto.sealing"),
    "credentials": ("pilotchain.apps.credentials.sdjwt", "pilotchain.apps.credentials.diploma"),
    "epcis": ("pilotchain.apps.supply.epcis",),
    "voucher": ("pilotchain.apps.currency.offline", "pilotchain.apps.currency.statements", "pilotchain.identity"),
    "evidence": ("pilotchain.codec", "pilotchain.ledger", "pilotchain.consensus.certificate"),
}
