"""The identity package's public API is curated (its core's purity is part of the layer
contract in pyproject.toml, checked by tests/test_layers.py)."""

from __future__ import annotations

import pilotchain.identity


def test_public_api_is_curated():
    exported = set(pilotchain.identity.__all__)
    assert {
        "Membership",
        "CertificateAuthority",
        "Certificate",
        "IdentityRejected",
        "RejectReason",
    } <= exported
    assert all(hasattr(pilotchain.identity, name) for name in exported)
