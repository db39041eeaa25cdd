"""Gateway test fixtures: one consortium per crypto suite for the whole session (keys are slow)."""

from __future__ import annotations

import pytest

from pilotchain.testing import Consortium, create_consortium


@pytest.fixture(scope="session")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    return create_consortium(tmp_path_factory.mktemp("gateway-intl") / "net", suite="intl", orgs=2)


@pytest.fixture(scope="session")
def gm_consortium(tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    return create_consortium(tmp_path_factory.mktemp("gateway-gm") / "net", suite="gm", orgs=2)
