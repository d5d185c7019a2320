#!/usr/bin/env bash
# make bench-revoke [BENCH_GRANTS=N]
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/revoke.py "$@"
