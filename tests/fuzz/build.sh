#!/bin/sh
# tests/fuzz/build.sh — builds every tests/fuzz/fuzz_*.c as a libFuzzer binary in
# build/fuzz/ (clang, -fsanitize=fuzzer,address,undefined, linked against src/core/*.c
# and src/daemon/*.c but main.c).
# Without clang it compiles each harness with cc -c under the Makefile's warnings and
# -Werror instead: a compile check only, and it says so.
#
#   tests/fuzz/build.sh                 build (or compile-check)
#   tests/fuzz/build.sh run SECONDS     build, then run each fuzzer SECONDS seconds with
#                                       its dictionary, on a copy of its seed corpus
#
# `make fuzz` runs the first form, `make fuzz FUZZ_SECONDS=N` the second.
# Run from anywhere; paths are relative to the repository root. Exits non-zero when a
# build fails or a fuzzer finds something, and says where the input that did it was saved.
set -eu

cd "$(dirname "$0")/../.."

mode=build
secs=0
if [ $# -ge 1 ]; then
	case "$1" in
	run)
		mode=run
		secs=${2:-}
		case "$secs" in
		'' | *[!0-9]*) echo "usage: $0 [run SECONDS]" >&2; exit 2 ;;
		esac
		;;
	*) echo "usage: $0 [run SECONDS]" >&2; exit 2 ;;
	esac
fi

# Same packages and warnings as the Makefile.
PKGS="libcurl openssl libmicrohttpd jansson libsodium sqlite3 libpq libxml-2.0 libseccomp"
WARN="-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
-Wpointer-arith -Wcast-qual -Wformat=2"
PKG_CFLAGS=$(pkg-config --cflags $PKGS)
PKG_LIBS="$(pkg-config --libs $PKGS) -lpthread -lm"
OUT=build/fuzz

harnesses=$(ls tests/fuzz/fuzz_*.c)

if ! command -v clang >/dev/null 2>&1; then
	CC=${CC:-cc}
	echo "clang not found: compile check only ($CC -c with the Makefile's warnings," \
	    "-Werror); no fuzzer was built or run." >&2
	mkdir -p "$OUT/obj"
	for h in $harnesses; do
		n=$(basename "$h" .c)
		echo "  CC      $h"
		$CC -std=c11 -D_GNU_SOURCE $WARN -Werror -Iinclude -Isrc/daemon $PKG_CFLAGS \
		    -c "$h" -o "$OUT/obj/$n.o"
	done
	[ "$mode" = run ] && { echo "cannot run fuzzers without clang" >&2; exit 1; }
	exit 0
fi

FZ="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Iinclude -Isrc/daemon $PKG_CFLAGS \
-fsanitize=address,undefined -fno-sanitize-recover=all"

# The library and the daemon's HTTP layer (all but main.c) once, instrumented for
# coverage (fuzzer-no-link), shared by every harness. Their warnings are the Makefile's
# business; the harnesses get WARN and -Werror below.
mkdir -p "$OUT/core" "$OUT/daemon"
objs=
for c in src/core/*.c src/daemon/*.c; do
	[ "$c" = src/daemon/main.c ] && continue
	d=$(basename "$(dirname "$c")")
	o="$OUT/$d/$(basename "$c" .c).o"
	if [ ! -f "$o" ] || [ "$c" -nt "$o" ] || [ -n "$(find include src/core src/daemon -newer "$o" -name '*.h' | head -1)" ]; then
		echo "  CC      $c"
		clang $FZ -fsanitize=fuzzer-no-link -c "$c" -o "$o"
	fi
	objs="$objs $o"
done

for h in $harnesses; do
	n=$(basename "$h" .c)
	echo "  LD      $OUT/$n"
	clang $FZ $WARN -Werror -fsanitize=fuzzer -o "$OUT/$n" "$h" $objs $PKG_LIBS
done

[ "$mode" = run ] || exit 0

# Each fuzzer works on a copy of its seeds so the checked-in corpus stays small;
# crash-*, leak-*, timeout-* files land in build/fuzz/<name>.artifacts/.
status=0
for h in $harnesses; do
	n=$(basename "$h" .c)
	short=${n#fuzz_}
	work="$OUT/$short.corpus"
	art="$OUT/$short.artifacts"
	mkdir -p "$work" "$art"
	[ -d "tests/fuzz/corpus/$short" ] && cp tests/fuzz/corpus/"$short"/* "$work"/ 2>/dev/null || true
	# The shipped templates and example policy are seeds too, taken from where they live.
	case $short in
	template) cp templates/*.html templates/*.txt "$work"/ ;;
	policy) cp policies/*.json "$work"/ ;;
	esac
	dict=
	[ -f "tests/fuzz/$short.dict" ] && dict="-dict=tests/fuzz/$short.dict"
	echo "== $n: ${secs}s"
	if ! "$OUT/$n" $dict -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
	    -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$art/" \
	    "$work" >"$OUT/$n.log" 2>&1; then
		# The sanitizer's verdict, and where libFuzzer saved the input that did it.
		echo "!! $n FAILED (log: $OUT/$n.log)" >&2
		grep -E '^==[0-9]+==(ERROR|WARNING)|^SUMMARY:|runtime error:|^==[0-9]+== ERROR: libFuzzer' \
		    "$OUT/$n.log" | head -5 | sed 's/^/!!   /' >&2
		# A harness check that abort()s says no more than "deadly signal": name it.
		grep -m1 -E '^ *#[0-9]+ 0x[0-9a-f]+ in [^ ]+ .*tests/fuzz/fuzz_' "$OUT/$n.log" |
		    sed 's/^ *#[0-9]* 0x[0-9a-f]* in /!!   first harness frame: /' >&2
		saved=$(sed -n 's/.*Test unit written to //p' "$OUT/$n.log")
		if [ -n "$saved" ]; then
			for f in $saved; do
				echo "!!   input saved to $f; replay: $OUT/$n $f" >&2
			done
		else
			echo "!!   no input was saved (see the log)" >&2
		fi
		status=1
	fi
	# Executions, coverage (edges, features) and corpus size at the end of the run.
	sed -n 's/^#\([0-9]*\)[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/   execs \1, cov \2, ft \3, corpus \4/p' \
	    "$OUT/$n.log"
done
exit $status
