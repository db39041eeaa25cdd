"""Every anchored pattern in the package matches a whole text: ``^…$`` also matches before a final
newline, so ``re.match`` took ``"kv\\n"`` as a name (the fuzz work's finding F9 in admission, the
same shape in governance names, organisation ids, request ids, wallet ids, dates, the explorer's
routes). The package writes ``\\Z``; this test finds any pattern that slips back."""

from __future__ import annotations

import re
from pathlib import Path

import pilotchain
from pilotchain.apps.currency.statements import StatementError, check_id
from pilotchain.contracts import governance
from pilotchain.identity.records import ORG_ID_PATTERN

PACKAGE = Path(pilotchain.__file__).parent
_ANCHORED_DOLLAR = re.compile(r"""re\.compile\(r["']\^.*\$["']\)""")


def test_no_pattern_ends_with_a_dollar_that_admits_a_trailing_newline() -> None:
    offenders = [f"{path.relative_to(PACKAGE)}:{number}" for path in sorted(PACKAGE.rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), start=1)
                 if _ANCHORED_DOLLAR.search(line)]
    assert offenders == []


def test_names_with_a_trailing_newline_are_refused() -> None:
    assert governance._NAME_RE.match("kv") and not governance._NAME_RE.match("kv\n")  # noqa: SLF001
    assert ORG_ID_PATTERN.match("bank-a") and not ORG_ID_PATTERN.match("bank-a\n")
    assert check_id("wallet", "alice") == "alice"
    try:
        check_id("wallet", "alice\n")
    except StatementError:
        pass
    else:
        raise AssertionError("a wallet id with a trailing newline was accepted")
