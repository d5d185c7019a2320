#!/usr/bin/env bash
# Self-test of tests/run-all.sh: runs it against the fake suites in fake/ (through
# RUNALL_UNIT, RUNALL_PY and RUNALL_OUT, see its header) and checks that a suite that
# crashes, lies about its exit status, prints no summary or runs no tests fails the run,
# that an honest failure is counted once, and that skips are summed on the line before the
# summary. tests/run-all.sh runs this first; it prints "ok"/"FAIL" per check and ends
# with "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runall_sh="$here/../run-all.sh"
fake="$here/fake"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
ulimit -c 0  # the fakes that die of a signal leave no core behind
passed=0; failed=0

# runall MODE UNIT PY: runs the runner on fake suites only; sets out (its output) and rc
runall() {
  rm -rf "$tmp/out"
  out=$(RUNALL_OUT="$tmp/out" RUNALL_UNIT="$2" RUNALL_PY="$3" "$runall_sh" "$1" 2>&1)
  rc=$?
}

# expect NAME CHECK...: one check of the last runall; on failure shows its output
expect() {
  local what=$1; shift
  if "$@"; then
    passed=$((passed + 1)); echo "ok   $what"
  else
    failed=$((failed + 1)); echo "FAIL $what (exit status $rc)"
    printf '%s\n' "$out" | sed 's/^/     | /'
  fi
}
failed_run() { [ "$rc" -ne 0 ]; }
clean_run() { [ "$rc" -eq 0 ]; }
says() { grep -qF -- "$1" <<<"$out"; }
has() { [[ "$out" == *"$1"* ]]; }   # has TEXT: TEXT, lines and all, in the output
says_not() { ! grep -qF -- "$1" <<<"$out"; }
ends() {  # ends SKIPPED_LINE SUMMARY_LINE: the last two lines of the output, exactly
  [ "$(tail -n 2 <<<"$out")" = "$1"$'\n'"$2" ]
}

runall unit "$fake/test_g*" ""
expect 'good unit binary passes' clean_run
expect 'good unit binary: every group counted, skips summed before the summary' \
  ends 'skipped: 2' '4 passed, 0 failed'
expect 'good unit binary: per-suite line' says '  test_good: 4 passed, 0 failed, 2 skipped'

runall unit "$fake/test_good $fake/test_segv" ""
expect 'crashing unit binary fails the run' failed_run
expect 'crashing unit binary: counted as a failure' ends 'skipped: 2' '7 passed, 1 failed'
expect 'crashing unit binary: signal named' \
  says 'test_segv FAILED (exit status 139): killed by SIGSEGV'
expect 'crashing unit binary: tail of its output' says '    | [ RUN      ] crashes_here'

runall unit "$fake/test_exit1" ""
expect 'unit binary exiting 1 after "0 failed" fails the run' failed_run
expect 'unit binary exiting 1: counted' ends 'skipped: 0' '2 passed, 1 failed'
expect 'unit binary exiting 1: said so' \
  says 'test_exit1 FAILED (exit status 1): exited non-zero but counted no failure'

runall unit "$fake/test_silent" ""
expect 'silent unit binary fails the run' failed_run
expect 'silent unit binary: counted' ends 'skipped: 0' '0 passed, 1 failed'
expect 'silent unit binary: said so' \
  says 'test_silent FAILED (exit status 0): printed no cmocka summary'

runall unit "$fake/test_zero" ""
expect 'unit binary of zero tests fails the run' failed_run
expect 'unit binary of zero tests: counted' ends 'skipped: 0' '0 passed, 1 failed'
expect 'unit binary of zero tests: said so' \
  says 'test_zero FAILED (exit status 0): ran no tests'

runall unit "$fake/test_quits" ""
expect 'unit binary leaving a group unfinished (exit 0) fails the run' failed_run
expect 'unfinished group: said so' says '1 of 2 groups printed no summary'

runall unit "$fake/test_failing" ""
expect 'honest unit failure fails the run' failed_run
expect 'honest unit failure: counted once' ends 'skipped: 0' '1 passed, 1 failed'
expect 'honest unit failure: its assertion shown' says 'test_b.c:8: error: Failure!'
expect 'honest unit failure: no runner complaint' says_not 'test_failing FAILED'

runall unit "$fake/test_missing" ""
expect 'missing unit binary fails the run' failed_run
expect 'missing unit binary: said so' says 'test_missing FAILED (not run): not built'

runall integration "" "good=$fake/py_good.py"
expect 'good python suite passes' clean_run
expect 'good python suite: "N passed, N failed, N skipped" read' \
  ends 'skipped: 1' '5 passed, 0 failed'
expect 'good python suite: log kept' test -s "$tmp/out/good.log"

runall integration "" "good=$fake/py_good.py abort=$fake/py_abort.py"
expect 'crashing python suite fails the run' failed_run
expect 'crashing python suite: counted' ends 'skipped: 1' '5 passed, 1 failed'
expect 'crashing python suite: signal named' \
  says 'abort FAILED (exit status 134): killed by SIGABRT'

runall integration "" "failing=$fake/py_failing.py"
expect 'honest python failure fails the run' failed_run
expect 'honest python failure: counted once' ends 'skipped: 0' '2 passed, 1 failed'
expect 'honest python failure: named, with the end of its traceback' \
  has $'    FAIL two (0.8s)\n           File "x.py", line 7, in f7'
expect 'honest python failure: its assertion shown' says '     AssertionError: [0, 1, 2] the reason'
expect 'honest python failure: the start of a long traceback left out' says_not 'line 6, in f6'

runall integration "" "lie=$fake/py_lie.py"
expect 'python suite exiting 1 after "0 failed" fails the run' failed_run
expect 'python suite exiting 1: counted' ends 'skipped: 0' '3 passed, 1 failed'

runall integration "" "silent=$fake/py_silent.py"
expect 'python suite without a summary fails the run' failed_run
expect 'python suite without a summary: said so' \
  says 'silent FAILED (exit status 0): printed no "N passed'

runall integration "" "zero=$fake/py_zero.py"
expect 'python suite of zero tests fails the run' failed_run
expect 'python suite of zero tests: said so' says 'zero FAILED (exit status 0): ran no tests'

runall integration "" "allskip=$fake/py_allskip.py"
expect 'python suite that skipped everything fails the run' failed_run
expect 'python suite that skipped everything: skips still summed' \
  ends 'skipped: 2' '0 passed, 1 failed'
expect 'python suite that skipped everything: said so' \
  says 'allskip FAILED (exit status 0): ran no tests (all 2 skipped)'

runall all "$fake/test_good" "good=$fake/py_good.py"
expect 'all mode with overrides passes' clean_run
expect 'all mode sums every suite' ends 'skipped: 3' '9 passed, 0 failed'
expect 'all mode with overrides runs no self-test (no recursion)' \
  says_not '== runner self-test'

runall all "$fake/test_good $fake/test_segv" "good=$fake/py_good.py"
expect 'all mode: one crash fails the whole run' failed_run
expect 'all mode: one crash counted' ends 'skipped: 3' '12 passed, 1 failed'

out=$(RUNALL_UNIT= "$runall_sh" selftest 2>&1); rc=$?
expect 'selftest mode refuses overrides (no recursion)' test "$rc" -eq 2

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
