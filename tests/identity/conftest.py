"""Fixtures: ``suite_name`` (every suite this build has) and a fresh two-org ``world``."""

from __future__ import annotations

import pytest

from .helpers import SUITE_PARAMS, World, make_world


@pytest.fixture(params=SUITE_PARAMS)
def suite_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def world(suite_name: str) -> World:
    return make_world(suite_name)
