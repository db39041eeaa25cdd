"""Measure Membership.authenticate: the cached hot path and the first-sight (verify) path.

Run: .venv/bin/python -m tests.identity.bench_authenticate [--suite intl|gm] [--n 200000]
Not collected by pytest (no timing assertions in tests); prints ns per call.
"""

from __future__ import annotations

import argparse
import time

from pilotchain.codec import encode
from pilotchain.crypto import SUITE_NAMES, get_suite
from pilotchain.identity import DAY_MS, CertificateAuthority, Membership

T0 = 1_800_000_000_000
SIGNERS = 1_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", choices=SUITE_NAMES, default="intl")
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    suite = get_suite(args.suite)
    cas = [
        CertificateAuthority.create(
            suite,
            suite.private_key_from_seed(f"org-{i} CA".encode().ljust(32, b".")),
            org_id=f"org-{i}",
            display_name=f"Org {i}",
            now_ms=T0,
            valid_ms=3650 * DAY_MS,
        )
        for i in range(4)
    ]
    membership = Membership(suite, [ca.org_certificate for ca in cas])
    certificates = [
        cas[i % 4].issue(
            f"user-{i}",
            ["client"],
            suite.private_key_from_seed(f"user-{i}".encode().ljust(32, b".")).public_key().to_der(),
            now_ms=T0,
            valid_ms=365 * DAY_MS,
        )
        for i in range(SIGNERS)
    ]
    for i in range(0, 100, 10):  # a few revocations in force, none affecting the signers measured
        membership.apply_revocation(cas[i % 4].revoke(certificates[i].serial, "bench", T0 + 10**12))
    encoded = [encode(cert) for cert in certificates]

    start = time.perf_counter_ns()
    for data in encoded:
        membership.authenticate(data, T0 + 1)
    cold_ns = (time.perf_counter_ns() - start) / len(encoded)

    for label, inputs in (("bytes", encoded), ("record", certificates)):
        for data in inputs:
            membership.authenticate(data, T0 + 1)
        authenticate = membership.authenticate
        start = time.perf_counter_ns()
        for i in range(args.n):
            authenticate(inputs[i % SIGNERS], T0 + i, "client")
        hot_ns = (time.perf_counter_ns() - start) / args.n
        print(f"{args.suite} authenticate hot ({label}, cached, role check): {hot_ns:,.0f} ns/call")
    print(
        f"{args.suite} authenticate first sight (decode + CA signature verify): {cold_ns / 1000:,.1f} us/call"
    )


if __name__ == "__main__":
    main()
