#!/usr/bin/env bash
# Runs every suite and ends with the two lines CI reads, the last one exactly
# "N passed, N failed":
#     skipped: N
#     N passed, N failed
# Usage: tests/run-all.sh [all|unit|integration|soak|selftest]
#   all          runner self-test, unit, AWS emulator self-test, integration, the short
#                kill -9 soak (the default; the browser checks run inside the integration
#                suite, tests/browser/browse.mjs)
#   unit         the cmocka binaries build/tests/test_*, one per tests/unit/test_*.c; a
#                binary whose source reads ELEVATE_TEST_PG_URL (test_store) runs with a
#                throwaway PostgreSQL of its own (tests/unit/with_pg.py), and fails if
#                the server cannot start
#   integration  the python suites
#   soak         the short kill -9 soak (tests/soak/soak.py --short; `make soak`: the full one)
#   selftest     only tests/runner-selftest/run.sh, which checks this script
# Exits non-zero if anything failed.
#
# A runner must not hide failure. A suite also fails - one failure on top of what its own
# summary counted, with its exit status or signal and the tail of its log - when it
#   - exits non-zero (killed by a signal: named, e.g. SIGSEGV) yet counted no failure,
#   - prints no summary (cmocka: a group that started and never printed "[  PASSED  ]";
#     python: no "N passed, N failed[, N skipped]" line),
#   - runs no tests (all skipped counts as none),
#   - or, for a unit binary, was not built.
# Logs: tests/out/NAME.log for the python suites and the self-test, tests/out/unit/NAME.log.
# Sanitizer reports (TSan, ASan, UBSan: log_path is set unless the caller set one) go to
# tests/out/sanitizer/; a report from any process fails the run.
#
# Overrides, so that tests/runner-selftest/run.sh can point the runner at fake suites.
# Setting RUNALL_UNIT or RUNALL_PY turns the self-test step off (no recursion).
#   RUNALL_UNIT  unit binaries or globs, space separated (instead of build/tests/test_*)
#   RUNALL_PY    python suites as NAME=SCRIPT, space separated, each run by /usr/bin/python3
#                (instead of emulator=tests/aws-emulator/selftest.py
#                integration=tests/integration/run.py)
#   RUNALL_OUT   the log directory (instead of tests/out)
set -uo pipefail
cd "$(dirname "$0")/.."
only="${1:-all}"
case "$only" in
  all|unit|integration|soak|selftest) ;;
  *) echo "usage: $0 [all|unit|integration|soak|selftest]" >&2; exit 2 ;;
esac
overridden=${RUNALL_UNIT+x}${RUNALL_PY+x}
if [ "$only" = selftest ] && [ -n "$overridden" ]; then
  echo "$0: selftest mode with RUNALL_UNIT/RUNALL_PY set would recurse" >&2; exit 2
fi
out="${RUNALL_OUT:-tests/out}"
mkdir -p "$out/unit" || exit 1
pass=0; fail=0; skip=0

# Sanitizer reports of every process the suites start (the daemon under ThreadSanitizer
# goes on running after a report) land in files here; any report fails the run.
san="$out/sanitizer"
rm -rf "$san" && mkdir -p "$san" || exit 1
for v in TSAN_OPTIONS ASAN_OPTIONS UBSAN_OPTIONS; do
  case "${!v:-}" in
    *log_path=*) ;;
    *) export "$v=${!v:+${!v}:}log_path=$PWD/$san/${v%%_*}" ;;
  esac
done

# judge NAME RC LOG PASSED FAILED SKIPPED MISSING SHOW: prints the suite's line and adds it
# to the totals. RC is "" for a suite that could not be run; MISSING is "" if the suite
# printed its summary, else what was wrong; SHOW greps its failures out of LOG, or is
# @traceback for the python suites: each FAIL line with the last lines of its traceback
# (CI shows the end of the output, so the reason of a failure must be printed here).
judge() {
  local name=$1 rc=$2 log=$3 p=$4 f=$5 s=$6 missing=$7 show=$8 why=() sig status
  status="exit status $rc"
  if [ -z "$rc" ]; then status="not run"
  elif [ "$rc" -gt 128 ] && sig=$(kill -l $((rc - 128)) 2>/dev/null); then
    why+=("killed by SIG$sig")
  elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    why+=("exited non-zero but counted no failure")
  fi
  if [ -n "$missing" ]; then why+=("$missing")
  elif [ $((p + f)) -eq 0 ] && [ "$s" -eq 0 ]; then why+=("ran no tests")
  elif [ $((p + f)) -eq 0 ]; then why+=("ran no tests (all $s skipped)")
  fi
  if [ ${#why[@]} -gt 0 ]; then f=$((f + 1)); fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  if [ "$s" -eq 0 ]; then printf '  %s: %d passed, %d failed\n' "$name" "$p" "$f"
  else printf '  %s: %d passed, %d failed, %d skipped\n' "$name" "$p" "$f" "$s"
  fi
  if [ ${#why[@]} -gt 0 ]; then
    printf '    %s FAILED (%s): %s. Last lines of %s:\n' "$name" "$status" \
      "$(printf '%s; ' "${why[@]}" | sed 's/; $//')" "$log"
    if [ -s "$log" ]; then tail -n 15 "$log" | sed 's/^/    | /'; else echo '    | (no output)'; fi
  elif [ "$f" -ne 0 ] && [ "$show" = @traceback ]; then
    awk 'function flush() { if (head != "") { print head; for (i = (n > 6 ? n - 5 : 1); i <= n; i++) print t[i] } head = ""; n = 0 }
         /^(FAIL|ERROR) / { flush(); head = $0; next }
         head != "" && /^     / { t[++n] = $0; next }
         { flush() }
         END { flush() }' "$log" | head -60 | sed 's/^/    /'
  elif [ "$f" -ne 0 ]; then
    grep -E -- "$show" "$log" | head -40 | sed 's/^/    /'
  fi
}

# capture LOG COMMAND...: runs COMMAND with its output (and the shell's own report of a
# fatal signal) in LOG, and sets rc
capture() {
  local log=$1; shift
  { "$@"; } >"$log" 2>&1 </dev/null
  rc=$?
}

cmocka_sum() {  # cmocka_sum WORD LOG: the sum of every group's "[  WORD  ] N test(s)."
  sed -En "s/^\[  $1 *\] ([0-9]+) test\(s\)[.,].*/\1/p" "$2" | awk '{s += $1} END {print s + 0}'
}

# cmocka binary: every group prints "[  PASSED  ] N test(s)." and, when it has them,
# "[  SKIPPED ] N test(s), listed below:" and "[  FAILED  ] N test(s), listed below:"
run_unit() {  # run_unit BINARY
  local bin=$1 name log p f s started finished missing= with=()
  name=$(basename "$bin"); log="$out/unit/$name.log"
  if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
    echo "no such test binary: $bin (make unit builds them)" >"$log"
    judge "$name" "" "$log" 0 0 0 "not built" .
    return
  fi
  if grep -qs ELEVATE_TEST_PG_URL "tests/unit/$name.c"; then
    with=(/usr/bin/python3 tests/unit/with_pg.py)
  fi
  CMOCKA_MESSAGE_OUTPUT=stdout capture "$log" "${with[@]}" "$bin"
  p=$(cmocka_sum PASSED "$log"); f=$(cmocka_sum FAILED "$log"); s=$(cmocka_sum SKIPPED "$log")
  started=$(grep -cE '^\[==========\] Running [0-9]+ test' "$log")
  finished=$(grep -cE '^\[  PASSED  \] [0-9]+ test' "$log")
  if [ "$finished" -eq 0 ]; then missing="printed no cmocka summary"
  elif [ "$started" -gt "$finished" ]; then
    missing="$((started - finished)) of $started groups printed no summary"
  fi
  judge "$name" "$rc" "$log" "$p" "$f" "$s" "$missing" 'FAIL|ERROR|LINE|error|Assert'
}

# python suites (and the runner self-test) end with "N passed, N failed[, N skipped]"
run_summary() {  # run_summary NAME COMMAND...
  local name=$1 log="$out/$1.log" line p=0 f=0 s=0 missing=
  shift
  capture "$log" "$@"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1)
  if [ -n "$line" ]; then
    read -r p _ f _ s _ <<<"${line//,/}"
    s=${s:-0}
  else
    missing='printed no "N passed, N failed" summary'
  fi
  judge "$name" "$rc" "$log" "$p" "$f" "$s" "$missing" @traceback
}

if { [ "$only" = all ] && [ -z "$overridden" ]; } || [ "$only" = selftest ]; then
  echo "== runner self-test"
  run_summary runner-selftest tests/runner-selftest/run.sh
fi

if [ "$only" = all ] || [ "$only" = unit ]; then
  echo "== unit tests (cmocka)"
  bins=()
  if [ -n "${RUNALL_UNIT+x}" ]; then
    for t in $RUNALL_UNIT; do  # split and globbed; make's dependency files are no tests
      case $t in *.d) ;; *) bins+=("$t") ;; esac
    done
  else
    for src in tests/unit/test_*.c; do bins+=("build/tests/$(basename "$src" .c)"); done
  fi
  if [ ${#bins[@]} -eq 0 ]; then
    echo "no unit test binaries" >"$out/unit/none.log"
    judge unit "" "$out/unit/none.log" 0 0 0 "no unit test binaries" .
  fi
  for t in "${bins[@]}"; do run_unit "$t"; done
fi

if [ "$only" = all ] || [ "$only" = integration ]; then
  py="${RUNALL_PY-emulator=tests/aws-emulator/selftest.py integration=tests/integration/run.py}"
  for suite in $py; do
    echo "== python suite ${suite%%=*}: ${suite#*=}"
    run_summary "${suite%%=*}" /usr/bin/python3 "${suite#*=}"
  done
fi

if { [ "$only" = all ] && [ -z "$overridden" ]; } || [ "$only" = soak ]; then
  echo "== kill -9 soak (short form; make soak runs the full one)"
  run_summary soak /usr/bin/python3 tests/soak/soak.py --short
fi

reports=$(find "$san" -type f 2>/dev/null | sort)
if [ -n "$reports" ]; then
  echo "== sanitizer reports"
  printf '  sanitizer: %d report(s) FAILED the run\n' "$(printf '%s\n' "$reports" | wc -l)"
  for r in $reports; do
    echo "    $r:"; grep -m 12 -E 'WARNING|ERROR|SUMMARY|#[0-9] ' "$r" | sed 's/^/    | /'
  done
  fail=$((fail + 1))
fi

echo "skipped: $skip"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
