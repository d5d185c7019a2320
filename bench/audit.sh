#!/usr/bin/env bash
# make bench-audit [BENCH_AUDIT_RECORDS=N]: N records (default 1,000,000) written through
# audit_append() into a real store and exported as the broker exports them, then
# `elevate audit verify` over the export, timed, against merely parsing the same file
# with jansson in the same run. Prints one line:
# bench audit records=N verify_mb_s=.. parse_mb_s=.. ratio=..   (acceptance: ratio >= 0.3)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${BENCH_AUDIT_RECORDS:-1000000}
tmp=$(mktemp -d /tmp/elevate-bench-audit.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
echo "bench audit: writing $n records through audit_append into $tmp/elevate.db" >&2
build/bench/audit_bench gen "$tmp" "$n" >/dev/null 2>"$tmp/gen.err" || { cat "$tmp/gen.err" >&2; exit 1; }
file="$tmp/audit.jsonl"
bytes=$(stat -c %s "$file")
records=$(wc -l < "$file")
# Warm the page cache once so neither timing pays for the disk.
cat "$file" >/dev/null
t0=$(date +%s.%N)
bin/elevate audit verify "$file" --pubkey-file "$tmp/audit.pub" >"$tmp/verify.out"
t1=$(date +%s.%N)
read -r parse_s parsed < <(build/bench/audit_bench parse "$file")
[ "$parsed" = "$records" ] || { echo "bench audit: parsed $parsed of $records lines" >&2; exit 1; }
grep -q "^audit OK: $records records" "$tmp/verify.out" || { cat "$tmp/verify.out" >&2; exit 1; }
awk -v b="$bytes" -v t0="$t0" -v t1="$t1" -v p="$parse_s" -v r="$records" 'BEGIN {
	v = t1 - t0; vm = b / 1048576 / v; pm = b / 1048576 / p;
	printf "bench audit records=%d verify_mb_s=%.1f parse_mb_s=%.1f ratio=%.2f\n", r, vm, pm, vm / pm }'
