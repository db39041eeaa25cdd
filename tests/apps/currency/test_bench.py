"""`pilotchain bench payments` end to end on a tiny scale: a currency network of real processes,
wallets opened and loaded, a short stress ladder of payments each signed by a wallet key and its
operator, the supply audited after the run; the document says what was measured."""

from __future__ import annotations

import pytest

from pilotchain.apps.currency.bench import FLOOR_OK_TPS, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def test_a_tiny_payments_run_measures_and_audits() -> None:
    document = run(nodes=1, wallets=40, step_s=2.0, rate_start=20.0, rate_factor=1.5, steps_max=2)
    steps = document["stress"]["steps"]
    assert 1 <= len(steps) <= 2 and document["wallets"] == 40
    first = steps[0]
    assert first["sent"] == 40 and first["ok"] == first["committed"] == 40 and first["ok_share"] == 1.0
    summary = document["summary"]
    assert summary["supply_balanced"], document["supply_audit"]
    assert document["supply_audit"]["checked_against_state"]
    assert summary["floor_ok_tps"] == FLOOR_OK_TPS and summary["sustained_ok_payments_per_s"] > 0
    assert set(document["resources"]["nodes"]) == {"central-bank-v1"}
