"""Expiry: what is close to expiry, and warnings at 30 / 7 / 1 days and at expiry, each once."""

from __future__ import annotations

from pilotchain.identity import (
    DAY_MS,
    ExpiryKind,
    ExpiryNotice,
    expiry_warnings,
    format_time_ms,
)

from .helpers import T0, YEAR_MS, key

HOUR_MS = 3_600_000


def notice(not_after_ms: int) -> ExpiryNotice:
    return ExpiryNotice(ExpiryKind.IDENTITY, "bank-a", "alice", 7, not_after_ms)


def test_a_node_ticking_hourly_logs_each_threshold_exactly_once():
    expires_ms = T0 + 40 * DAY_MS
    notices = [notice(expires_ms)]
    warnings = []
    previous_ms = T0
    for now_ms in range(T0 + HOUR_MS, expires_ms + 2 * DAY_MS, HOUR_MS):
        warnings += list(expiry_warnings(notices, now_ms=now_ms, since_ms=previous_ms))
        previous_ms = now_ms
    assert [w.threshold_days for w in warnings] == [30, 7, 1, 0]
    assert [w.severity for w in warnings] == ["warning", "warning", "critical", "expired"]
    assert "expires in 30 days" in warnings[0].message
    assert "pilotchain identity issue" in warnings[0].message
    assert "expired at" in warnings[3].message and format_time_ms(expires_ms) in warnings[3].message


def test_at_start_up_the_tightest_threshold_reached_is_reported_once():
    expires_ms = T0 + 5 * DAY_MS
    assert [w.threshold_days for w in expiry_warnings([notice(expires_ms)], now_ms=T0)] == [7]
    assert list(expiry_warnings([notice(T0 + 31 * DAY_MS)], now_ms=T0)) == []
    assert [w.severity for w in expiry_warnings([notice(T0 - 1)], now_ms=T0)] == ["expired"]


def test_a_node_that_was_down_gets_only_the_tightest_crossed_threshold():
    expires_ms = T0 + 40 * DAY_MS
    crossed = list(
        expiry_warnings([notice(expires_ms)], now_ms=expires_ms - DAY_MS // 2, since_ms=T0)
    )
    assert [w.threshold_days for w in crossed] == [1]


def test_expiring_lists_cas_cutovers_and_tracked_certificates_soonest_first(world):
    membership = world.membership()
    soon = world.issue(valid_ms=3 * DAY_MS)
    later = world.issue(subject="bob", valid_ms=YEAR_MS)
    assert membership.expiring(T0, 30 * DAY_MS, [soon, later]) == [
        ExpiryNotice(ExpiryKind.IDENTITY, "bank-a", "alice", soon.serial, soon.not_after_ms)
    ]
    _, rotation = world.ca_a.rotate(
        key(world.suite, "gen 2"), now_ms=T0, valid_ms=YEAR_MS, cutover_ms=T0 + 20 * DAY_MS
    )
    membership.apply_rotation(rotation, T0)
    kinds = [n.kind for n in membership.expiring(T0, 30 * DAY_MS, [soon])]
    assert kinds == [ExpiryKind.IDENTITY, ExpiryKind.CA_CUTOVER]
    near_ca_end = T0 + 10 * YEAR_MS - DAY_MS
    notices = membership.expiring(near_ca_end, 30 * DAY_MS)  # bank-a's new CA expired long ago
    assert [(n.kind, n.org_id) for n in notices] == [
        (ExpiryKind.ORG_CA, "bank-a"),
        (ExpiryKind.ORG_CA, "hospital-b"),
    ]
    assert membership.expiring(T0, 0) == []
    warnings = list(expiry_warnings(notices, now_ms=near_ca_end))
    assert [w.severity for w in warnings] == ["expired", "critical"]
    assert "rotate the CA" in warnings[1].message and "expires in 1 day," in warnings[1].message


def test_format_time_ms_is_utc_iso():
    assert format_time_ms(0) == "1970-01-01T00:00:00Z"
    assert format_time_ms(T0) == "2027-01-15T08:00:00Z"
