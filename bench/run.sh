#!/usr/bin/env bash
# make bench: every benchmark, one line each ("bench NAME key=value ..."), explained in
# bench/README.md. Each figure stands next to a baseline measured in the same run (a bare
# libmicrohttpd server, raw SQLite inserts, cat, a smaller revocation, the same grants with
# no node killed, a bare JSON parse),
# never next to a constant. Not part of make test; it asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
/usr/bin/python3 bench/bench.py
# revocation at the window's end: BENCH_GRANTS grants (default 1,000) against a baseline of
# BENCH_BASELINE_GRANTS (default 5) ending at once.
base=$(BENCH_GRANTS=${BENCH_BASELINE_GRANTS:-5} /usr/bin/python3 bench/revoke.py 2>/dev/null |
    grep '^bench revoke')
full=$(/usr/bin/python3 bench/revoke.py 2>/dev/null | grep '^bench revoke')
/usr/bin/python3 - "$base" "$full" <<'PY'
import sys
def kv(line):
    return dict(p.split('=') for p in line.split()[2:])
b, f = kv(sys.argv[1]), kv(sys.argv[2])
print('%s baseline_grants=%s baseline_p99_ms=%s ratio=%.2f' % (
    sys.argv[2], b['grants'], b['p99_ms'], float(f['p99_ms']) / max(float(b['p99_ms']), 1.0)))
PY
# failover: node A killed, node B ends its grants, against both nodes up.
base=$(BENCH_FAILOVER_KILL=none /usr/bin/python3 bench/failover.py 2>/dev/null |
    grep '^bench failover-none')
full=$(/usr/bin/python3 bench/failover.py 2>/dev/null | grep '^bench failover ')
/usr/bin/python3 - "$base" "$full" <<'PY'
import sys
def kv(line):
    return dict(p.split('=') for p in line.split()[2:])
b, f = kv(sys.argv[1]), kv(sys.argv[2])
print('%s baseline_p99_ms=%s ratio=%.2f' % (
    sys.argv[2], b['p99_ms'], float(f['p99_ms']) / max(float(b['p99_ms']), 1.0)))
PY
BENCH_AUDIT_RECORDS=${BENCH_AUDIT_RECORDS:-1000000} bench/audit.sh
