"""What a wallet holder signs, and the calendar the limits use.

Statements are the exact texts the ``currency`` contract verifies signatures over
(``contracts/currency.py`` builds the same strings)::

    pilotchain/currency/v1|<chain id>|<kind>|<wallet>|<seq>|<field>|<field>...

Each names the chain (no replay on another network), the kind (a refund cannot pass for a
payment) and a per-wallet sequence number that must exceed the wallet's last accepted one (no
replay at all). Identifiers hold only ``A-Z a-z 0-9 . _ : -``, so no field can smuggle a
separator. A key is signed as its hex, an amount as its decimal fen.

Days are Asia/Shanghai's calendar days (UTC+8 all year: China has had no daylight saving since
1991), computed from the block's certified time in milliseconds with integer arithmetic only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pilotchain.errors import CoreError

__all__ = [
    "DAY_MS",
    "TZ_OFFSET_MS",
    "VERSION",
    "StatementError",
    "check_id",
    "civil_from_day",
    "day_of",
    "statement",
]

VERSION = "pilotchain/currency/v1"
DAY_MS = 86_400_000
TZ_OFFSET_MS = 8 * 3_600_000
ID_MAX = 64
_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}\Z")


class StatementError(CoreError, ValueError):
    """A field that cannot appear in a statement (the message says which and why)."""


def check_id(name: str, value: str) -> str:
    if not _ID_RE.match(value):
        raise StatementError(f"{name} {value!r}: 1..{ID_MAX} characters of letters, digits and . _ : -")
    return value


def _field(value: object) -> str:
    if isinstance(value, bool):
        raise StatementError("a statement holds no booleans")
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if "|" in value:
            raise StatementError(f"{value!r}: a field holds no '|'")
        return value
    raise StatementError(f"a statement holds texts, whole numbers and bytes, not {type(value).__name__}")


def statement(chain_id: str, kind: str, wallet: str, seq: int, fields: Iterable[object] = ()) -> str:
    """The canonical text a holder (or a device, for a voucher) signs."""
    check_id("wallet", wallet)
    return "|".join([VERSION, chain_id, kind, wallet, str(seq), *(_field(value) for value in fields)])


def day_of(ms: int) -> int:
    """Days since 1970-01-01 in Asia/Shanghai."""
    return (ms + TZ_OFFSET_MS) // DAY_MS


def civil_from_day(day: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number in the proleptic Gregorian calendar (H. Hinnant's
    days-to-civil; the contract runs the same arithmetic)."""
    z = day + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, d
