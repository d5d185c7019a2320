#!/usr/bin/env bash
# make bench: every benchmark, one line each ("bench NAME key=value ..."), explained in
# bench/README.md. Each figure stands next to a baseline measured in the same run (a bare
# libmicrohttpd server, raw SQLite inserts, cat, a smaller revocation, the same grants with
# no node killed, a bare JSON parse), never next to a constant. Not part of make test; it
# asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# with_baseline LINE BASE [KEY...]: LINE, then BASE's KEYs and p99_ms as baseline_KEY=..,
# and ratio = LINE's p99 / BASE's.
with_baseline() {
    /usr/bin/python3 - "$@" <<'PY'
import sys
def kv(line):
    return dict(p.split('=') for p in line.split()[2:])
f, b = kv(sys.argv[1]), kv(sys.argv[2])
keys = sys.argv[3:] + ['p99_ms']
print('%s %s ratio=%.2f' % (sys.argv[1], ' '.join('baseline_%s=%s' % (k, b[k]) for k in keys),
                            float(f['p99_ms']) / max(float(b['p99_ms']), 1.0)))
PY
}

/usr/bin/python3 bench/bench.py
# revocation at the window's end: BENCH_GRANTS grants (default 1,000) against a baseline of
# BENCH_BASELINE_GRANTS (default 5) ending at once.
base=$(BENCH_GRANTS=${BENCH_BASELINE_GRANTS:-5} /usr/bin/python3 bench/revoke.py 2>/dev/null |
    grep '^bench revoke')
full=$(/usr/bin/python3 bench/revoke.py 2>/dev/null | grep '^bench revoke')
with_baseline "$full" "$base" grants
# failover: node A killed, node B ends its grants, against both nodes up.
base=$(BENCH_FAILOVER_KILL=none /usr/bin/python3 bench/failover.py 2>/dev/null |
    grep '^bench failover-none')
full=$(/usr/bin/python3 bench/failover.py 2>/dev/null | grep '^bench failover ')
with_baseline "$full" "$base"
BENCH_AUDIT_RECORDS=${BENCH_AUDIT_RECORDS:-1000000} bench/audit.sh
