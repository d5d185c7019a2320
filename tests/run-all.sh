#!/usr/bin/env bash
# Runs every suite (unit, emulator self-test, integration, browser) and ends with the one
# summary line CI reads: "N passed, N failed". `tests/run-all.sh unit` runs one suite.
set -uo pipefail
cd "$(dirname "$0")/.."
only="${1:-all}"
mkdir -p tests/out
pass=0; fail=0

add() {  # add PASSED FAILED NAME
  pass=$((pass + $1)); fail=$((fail + $2))
  echo "$3: $1 passed, $2 failed" | sed 's/^/  /'
}

if [ "$only" = all ] || [ "$only" = unit ]; then
  echo "== unit tests (cmocka)"
  for t in build/tests/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    # a binary may run several groups: add up every group's summary
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    if [ "$f" -ne 0 ]; then printf '%s\n' "$out" | grep -E 'FAIL|ERROR|error|Assert' | head -20; fi
    add "$p" "$f" "$(basename "$t")"
  done
fi

run_py() {  # run_py NAME COMMAND...
  local out rc p f
  out=$("${@:2}" 2>&1 | tee "tests/out/$1.log"); rc=$?
  p=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' | tail -1)
  f=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' | tail -1)
  p=${p:-0}; f=${f:-0}
  if [ "$f" -eq 0 ] && [ "${PIPESTATUS[0]:-$rc}" != 0 ] && [ "$p" -eq 0 ]; then f=1; fi
  printf '%s\n' "$out" | grep -E '^(FAIL|ERROR)' | head -40
  add "$p" "$f" "$1"
}

if [ "$only" = all ] || [ "$only" = integration ]; then
  echo "== AWS emulator self-test"
  run_py emulator /usr/bin/python3 tests/aws-emulator/selftest.py
  echo "== integration tests"
  run_py integration /usr/bin/python3 tests/integration/run.py
fi

if [ "$only" = all ] || [ "$only" = browser ]; then
  if [ -f tests/browser/run.mjs ]; then
    echo "== browser tests"
    run_py browser node tests/browser/run.mjs
  fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
