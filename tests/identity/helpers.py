"""Shared test helpers: a two-org consortium per crypto suite, on a fixed virtual clock."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from pilotchain.crypto import SUITE_NAMES, PrivateKey, Suite, get_suite
from pilotchain.identity import DAY_MS, CertificateAuthority, Membership

#: the virtual "now" every test starts from (2027-01-15)
T0 = 1_800_000_000_000
YEAR_MS = 365 * DAY_MS


#: every suite, always: gm (SM2/SM3) has landed, so nothing here is skipped
SUITE_PARAMS = list(SUITE_NAMES)


def key(suite: Suite, label: str) -> PrivateKey:
    """A deterministic key for ``label`` (the seed is padded to the 32 bytes the suites need)."""
    return suite.private_key_from_seed(label.encode().ljust(32, b"."))


@dataclass
class World:
    suite: Suite
    ca_a: CertificateAuthority
    ca_b: CertificateAuthority

    def membership(self) -> Membership:
        return Membership(self.suite, [self.ca_a.org_certificate, self.ca_b.org_certificate])

    def issue(
        self,
        ca: CertificateAuthority | None = None,
        subject: str = "alice",
        roles=("client",),
        *,
        now_ms: int = T0,
        valid_ms: int = YEAR_MS,
    ):
        ca = ca or self.ca_a
        return ca.issue(
            subject,
            roles,
            key(self.suite, f"{ca.org_id}/{subject}").public_key().to_der(),
            now_ms=now_ms,
            valid_ms=valid_ms,
        )


def make_world(suite_name: str) -> World:
    suite = get_suite(suite_name)
    ca_a = CertificateAuthority.create(
        suite,
        key(suite, "bank-a CA"),
        org_id="bank-a",
        display_name="Bank A",
        now_ms=T0,
        valid_ms=10 * YEAR_MS,
    )
    ca_b = CertificateAuthority.create(
        suite,
        key(suite, "hospital-b CA"),
        org_id="hospital-b",
        display_name="Hospital B",
        now_ms=T0,
        valid_ms=10 * YEAR_MS,
    )
    return World(suite, ca_a, ca_b)


@cache
def shared_world(suite_name: str) -> World:
    """A world for hypothesis tests (function-scoped fixtures do not mix with @given); read-only."""
    return make_world(suite_name)
