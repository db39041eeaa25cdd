"""Fixtures for the p2p tests (helpers live in helpers.py)."""

from __future__ import annotations

from .helpers import p2p_log

__all__ = ["p2p_log"]
