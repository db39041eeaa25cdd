#!/usr/bin/env bash
# System libraries pilotchain needs beyond PyPI.
# - libcrypto.so.3 (Debian libssl3): the gm suite's SM2 signatures go through OpenSSL 3's EVP API
#   (the `cryptography` wheel does not expose SM2 signing). See src/pilotchain/crypto/_openssl.py.
# - openssl (the command line): tests check that what pilotchain signs verifies with it, both ways.
# - chromium: the explorer's browser test drives it headless through Playwright's executable_path
#   (tests/apps/explorer/test_browser.py; skipped, saying so, without it).
# - fonts-noto-cjk: the explorer's Chinese interface drawn in that Chromium (its screenshots; the tests
#   read text and do not need the glyphs).
# - iproute2 (ip, tc) and faketime (libfaketime): the multi-host run puts each node in its own network
#   namespace with netem latency/loss and partitions, and gives hosts clock offsets (tests/jepsen/).
# Installs only what is missing; needs root (or sudo) only when something is missing.
set -euo pipefail

missing=()
if ! ldconfig -p 2>/dev/null | grep -q 'libcrypto\.so\.3 '; then missing+=(libssl3); fi
if ! command -v openssl >/dev/null 2>&1; then missing+=(openssl); fi
if [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then missing+=(fonts-noto-cjk); fi
if ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1; then missing+=(iproute2); fi
if ! command -v faketime >/dev/null 2>&1; then missing+=(faketime); fi
# `system-deps.sh java` (make spark): a Java runtime for PySpark
if [ "${1:-}" = "java" ] && ! command -v java >/dev/null 2>&1; then missing+=(openjdk-17-jre-headless); fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "system-deps: installing ${missing[*]} (Debian packages)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "system-deps: need root to install ${missing[*]}; install them and rerun" >&2; exit 1
  fi
fi
$SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
}
