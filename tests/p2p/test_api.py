"""The p2p package's public API is exported (its protocol core's purity is part of the layer
contract in pyproject.toml, checked by tests/test_layers.py)."""

from __future__ import annotations

import pilotchain.p2p


def test_public_api_is_exported() -> None:
    for name in pilotchain.p2p.__all__:
        assert hasattr(pilotchain.p2p, name), name
