#!/usr/bin/env bash
# make bench: every benchmark. Results are ratios against a baseline measured in the same
# run, never absolute timings compared with a constant.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== revocation at the window's end (baseline: 1 grant; measured: N grants at once)"
base=$(BENCH_GRANTS=${BENCH_BASELINE_GRANTS:-5} /usr/bin/python3 bench/revoke.py 2>/dev/null | grep '^bench revoke')
full=$(/usr/bin/python3 bench/revoke.py 2>/dev/null | grep '^bench revoke')
echo "baseline: $base"
echo "$full"
python3 - "$base" "$full" <<'PY'
import sys
def kv(line):
    return dict(p.split('=') for p in line.split()[2:])
b, f = kv(sys.argv[1]), kv(sys.argv[2])
print('bench revoke ratio p99_full/p99_baseline=%.2f grants=%s/%s' % (
    float(f['p99_ms']) / max(float(b['p99_ms']), 1.0), f['grants'], b['grants']))
PY
