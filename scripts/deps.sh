#!/usr/bin/env bash
# Installs what elevate needs to build, test and demo on Debian 12, only what is missing:
# Debian packages via apt-get (sudo when not root) and the npm packages in tests/browser.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(
  build-essential pkg-config
  libcurl4-openssl-dev libssl-dev libmicrohttpd-dev libjansson-dev libsodium-dev
  libsqlite3-dev libxml2-dev libcmocka-dev libseccomp-dev
  python3 python3-botocore python3-aiosmtpd python3-cryptography awscli sqlite3 openssl curl
  # PostgreSQL, the store of several nodes (issue 12): libpq to build against, and the
  # server and psql that the tests run in a temporary directory of their own
  # (tests/integration/pg.py; Debian's own cluster, if it made one, is not used).
  libpq-dev postgresql postgresql-client
  # Time zones of auto-approval rules' hours (/usr/share/zoneinfo, read by tzone.c)
  tzdata
  chromium
  # The fuzzers (make fuzz). libclang-rt-dev (Debian 12: libclang-rt-14-dev) ships
  # libclang_rt.fuzzer and the sanitizer runtimes; clang only recommends it, and
  # --no-install-recommends would leave it out.
  clang libclang-rt-dev
)
# Node.js and npm may come from elsewhere than Debian (the CI image has its own):
# only ask Debian for them when there are none.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Browser tests drive Debian's chromium with playwright-core (no browser download).
if [ -f tests/browser/package.json ] && [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "deps: npm install in tests/browser"
  (cd tests/browser && npm install --no-audit --no-fund --silent >/dev/null)
fi
