"""Expiry notices and the warnings a node logs at 30, 7 and 1 days before an expiry.

Theory of operation
-------------------
:meth:`pilotchain.identity.Membership.expiring` lists :class:`ExpiryNotice` records: org CA
certificates, retired CA keys whose cut-over is coming, and any certificates the caller tracks
(its own identity, the validator set). :func:`expiry_warnings` turns notices into
:class:`ExpiryWarning` records, one per threshold *crossed* in the interval ``(since_ms, now_ms]``,
so a node calling it on every tick with the previous tick's time logs each warning exactly once
(if several thresholds were crossed at once, e.g. the node was down, only the tightest is
reported). With ``since_ms=None`` (the node just started) it yields, per notice, the tightest
threshold already reached, so an operator sees the state at boot.

Pure: no clock (``now_ms`` is an argument), no I/O.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable, Iterator

from pilotchain.codec import Record
from pilotchain.errors import InvariantBroken

__all__ = [
    "DAY_MS",
    "WARNING_DAYS",
    "ExpiryKind",
    "ExpiryNotice",
    "ExpiryWarning",
    "expiry_warnings",
    "format_time_ms",
]

DAY_MS = 86_400_000
#: thresholds (days before expiry) at which a warning is due; 0 is the expiry itself
WARNING_DAYS: tuple[int, ...] = (30, 7, 1, 0)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class ExpiryKind(enum.StrEnum):
    #: an org's CA certificate: when it expires, every identity it issued is refused
    ORG_CA = "org-ca"
    #: a retired CA key: certificates it issued are refused from the rotation's cut-over time
    CA_CUTOVER = "ca-cutover"
    #: a node, admin, client or auditor certificate
    IDENTITY = "identity"


class ExpiryNotice(Record, frozen=True):
    kind: ExpiryKind
    org_id: str
    #: the subject name (identities) or the org's display name (CAs)
    subject: str
    #: certificate serial (identities) or CA generation (CAs)
    serial: int
    not_after_ms: int


class ExpiryWarning(Record, frozen=True):
    kind: ExpiryKind
    org_id: str
    subject: str
    serial: int
    not_after_ms: int
    #: the threshold crossed: 30, 7, 1 days before, or 0 (expired)
    threshold_days: int
    #: "warning", "critical" (a day or less) or "expired"
    severity: str
    #: what expires, when, and what to do
    message: str


def format_time_ms(time_ms: int) -> str:
    """``time_ms`` (Unix epoch milliseconds) as an ISO 8601 UTC time, to the second."""
    moment = _EPOCH + datetime.timedelta(milliseconds=time_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(notice: ExpiryNotice) -> tuple[str, str]:
    """(what expires, what to do about it)."""
    if notice.kind is ExpiryKind.ORG_CA:
        return (
            f"org {notice.org_id!r} CA certificate (generation {notice.serial})",
            f"rotate the CA (pilotchain identity rotate) and re-issue {notice.org_id}'s identities before then",
        )
    if notice.kind is ExpiryKind.CA_CUTOVER:
        return (
            f"org {notice.org_id!r} retired CA key (generation {notice.serial}) cut-over",
            "re-issue every identity that key signed with the new CA "
            f"(pilotchain identity issue --ca <{notice.org_id} CA dir>) before then",
        )
    return (
        f"identity {notice.subject!r} ({notice.org_id} serial {notice.serial})",
        f"issue a new certificate (pilotchain identity issue --ca <{notice.org_id} CA dir>) and install it before then",
    )


def _warning(notice: ExpiryNotice, threshold_days: int, now_ms: int) -> ExpiryWarning:
    what, todo = _describe(notice)
    when = format_time_ms(notice.not_after_ms)
    if now_ms >= notice.not_after_ms:
        severity, message = (
            "expired",
            f"{what} expired at {when}; {todo.replace(' before then', '')}",
        )
    else:
        days_left = (notice.not_after_ms - now_ms + DAY_MS - 1) // DAY_MS
        severity = "critical" if threshold_days <= 1 else "warning"
        message = (
            f"{what} expires in {days_left} day{'s' if days_left != 1 else ''}, at {when}; {todo}"
        )
    return ExpiryWarning(
        notice.kind,
        notice.org_id,
        notice.subject,
        notice.serial,
        notice.not_after_ms,
        threshold_days,
        severity,
        message,
    )


def expiry_warnings(
    notices: Iterable[ExpiryNotice],
    *,
    now_ms: int,
    since_ms: int | None = None,
    thresholds_days: tuple[int, ...] = WARNING_DAYS,
) -> Iterator[ExpiryWarning]:
    """At most one warning per notice: the tightest threshold it crossed in ``(since_ms, now_ms]``
    (with ``since_ms=None``: the tightest it has reached by ``now_ms``)."""
    if not (since_ms is None or since_ms <= now_ms):
        raise InvariantBroken("time runs forward")
    if not (all(days >= 0 for days in thresholds_days)):
        raise InvariantBroken('invariant broken: all(days >= 0 for days in thresholds_days)')
    descending = sorted(set(thresholds_days), reverse=True)
    after_ms = -(2**63) if since_ms is None else since_ms
    for notice in notices:
        crossed = [
            days for days in descending if after_ms < notice.not_after_ms - days * DAY_MS <= now_ms
        ]
        if crossed:  # several at once (a node that was down): only the tightest matters
            yield _warning(notice, crossed[-1], now_ms)
