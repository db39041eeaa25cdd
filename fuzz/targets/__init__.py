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

#: libraries instrumented for coverage besides pilotchain, where a target's bytes reach them
EXTRA_INSTRUMENTED: dict[str, tuple[str, ...]] = {
    "gateway_auth": ("http_message_signatures", "http_sf"),
}
