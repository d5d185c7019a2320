#!/usr/bin/env bash
# make bench-failover [BENCH_GRANTS=N] [BENCH_FAILOVER_KILL=before|during]
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/failover.py "$@"
