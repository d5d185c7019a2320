# elevate — plain Makefile. `make`, `make test`, `make demo`, `make demo-ha`, `make SANITIZER=address,undefined test`,
# `make fuzz [FUZZ_SECONDS=N]`.
PKGS      := libcurl openssl libmicrohttpd jansson libsodium sqlite3 libpq libxml-2.0 libseccomp
CC        ?= cc
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)
# libpq (Debian libpq-dev) is in PKGS (the store's PostgreSQL backend); pg_smoke links it
# alone.
PQ_CFLAGS := $(shell pkg-config --cflags libpq 2>/dev/null)
PQ_LIBS   := $(shell pkg-config --libs libpq 2>/dev/null)

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wcast-qual -Wformat=2 -Werror
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
OPT      ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(HARDEN) -Iinclude $(PKG_CFLAGS) -MMD -MP
LDFLAGS  += -pie -Wl,-z,relro,-z,now
LDLIBS   += $(PKG_LIBS) -lpthread -lm

ifneq ($(SANITIZER),)
CFLAGS  += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZER)
endif

# Objects remember the flags they were built with: switching SANITIZER rebuilds everything.
FLAGS_SIG := $(shell echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cksum | cut -d' ' -f1)
$(shell mkdir -p build; [ "$$(cat build/.flags 2>/dev/null)" = "$(FLAGS_SIG)" ] || echo $(FLAGS_SIG) > build/.flags)

CORE_SRC   := $(sort $(wildcard src/core/*.c))
DAEMON_SRC := $(sort $(wildcard src/daemon/*.c))
# bin/elevate is quick.c (cached credentials, jansson and libsodium only) in front of
# bin/elevate-full, the whole CLI.
QUICK_SRC  := src/cli/quick.c src/cli/api_conf.c src/cli/creds_cache.c src/cli/output.c
CLI_SRC    := $(filter-out src/cli/quick.c,$(sort $(wildcard src/cli/*.c)))
UNIT_SRC   := $(sort $(wildcard tests/unit/test_*.c))

CORE_OBJ   := $(CORE_SRC:%.c=build/%.o)
DAEMON_OBJ := $(DAEMON_SRC:%.c=build/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=build/%.o)
QUICK_OBJ  := $(QUICK_SRC:%.c=build/%.o)
QUICK_LIBS := $(shell pkg-config --libs jansson libsodium 2>/dev/null)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=build/tests/%)
# Programs the integration tests run (tests/integration/*.c).
IT_BIN     := build/tests/pg_smoke

LIB := build/libelevate.a

.PHONY: all deps test test-long unit integration soak demo demo-flows demo-ha bench bench-revoke \
        bench-failover bench-audit fuzz clean check-deps
all: bin/elevated bin/elevate bin/elevate-full

build/%.o: %.c build/.flags
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	@echo "  AR      $@"
	@ar rcs $@ $^

bin/elevated: $(DAEMON_OBJ) $(LIB)
	@mkdir -p bin
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(DAEMON_OBJ) $(LIB) $(LDLIBS)

bin/elevate-full: $(CLI_OBJ) $(LIB)
	@mkdir -p bin
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

bin/elevate: $(QUICK_OBJ) $(LIB)
	@mkdir -p bin
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -Wl,--as-needed -o $@ $(QUICK_OBJ) $(LIB) $(QUICK_LIBS)

build/tests/%: tests/unit/%.c $(LIB) build/.flags
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) $(CMOCKA_LIBS)

build/tests/pg_smoke: tests/integration/pg_smoke.c build/.flags
	@mkdir -p $(dir $@)
	@pkg-config --exists libpq || { echo "libpq not found by pkg-config: install Debian's" \
	    "libpq-dev (scripts/deps.sh)" >&2; exit 1; }
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(PQ_CFLAGS) $(LDFLAGS) -o $@ $< $(PQ_LIBS)

# Unit tests of the daemon's HTTP layer (test_http*.c) link its objects but main.o too.
DAEMON_LIB_OBJ := $(filter-out build/src/daemon/main.o,$(DAEMON_OBJ))
build/tests/test_http%: tests/unit/test_http%.c $(DAEMON_LIB_OBJ) $(LIB) build/.flags
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) -Isrc/daemon $(LDFLAGS) -o $@ $< $(DAEMON_LIB_OBJ) $(LIB) $(LDLIBS) \
	    $(CMOCKA_LIBS)

deps:
	@scripts/deps.sh

# make test: install what is missing, build, run every suite, end with "N passed, N failed".
test: deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN) $(IT_BIN)
	@tests/run-all.sh

# make test-long: acceptance cases at their full length, too long for make test's 10
# minutes (.ci/run runs it): a webhook receiver down for a whole minute.
test-long: deps all
	@ELEVATE_WEBHOOK_OUTAGE_SECONDS=60 /usr/bin/python3 tests/integration/run.py \
	    test_webhooks::test_receiver_down_then_up_gets_every_event_once

unit: all $(UNIT_BIN)
	@tests/run-all.sh unit

integration: all $(IT_BIN)
	@tests/run-all.sh integration

# make soak: 200 grants, the daemon killed with SIGKILL at least 10 times, SMTP outages,
# AWS throttling and 5xx bursts (at most 6 minutes); make test runs its short form.
soak: deps all
	@/usr/bin/python3 tests/soak/soak.py

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

# make demo-flows: auto-approval, break-glass with the mail server down, the AWS console,
# several profiles in one request, a scheduled window, a signed webhook
demo-flows: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo-flows.sh

# make demo-ha: PostgreSQL and two nodes on this machine, node A killed half-way.
demo-ha: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo-ha.sh

# make bench: every benchmark, one line each (bench/README.md); never part of make test.
BENCH_BIN := build/bench/loadgen build/bench/bare build/bench/store_bench build/bench/audit_bench
bench: all $(BENCH_BIN)
	@bench/run.sh

bench-revoke: all
	@bench/revoke.sh

# make bench-failover: two nodes on PostgreSQL, node A killed, node B ends its grants.
bench-failover: all
	@bench/failover.sh

# make bench-audit [BENCH_AUDIT_RECORDS=N]: verify speed against a bare jansson parse.
bench-audit: all build/bench/audit_bench
	@bench/audit.sh

build/bench/%: bench/%.c $(LIB) build/.flags
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# make fuzz: build the fuzzers; make fuzz FUZZ_SECONDS=N: then run each N seconds
# (tests/fuzz/README.md).
fuzz:
	@tests/fuzz/build.sh $(if $(filter-out 0,$(FUZZ_SECONDS)),run $(FUZZ_SECONDS))

clean:
	rm -rf build bin tests/out

-include $(CORE_OBJ:.o=.d) $(DAEMON_OBJ:.o=.d) $(CLI_OBJ:.o=.d) build/src/cli/quick.d $(UNIT_SRC:tests/unit/%.c=build/tests/%.d) $(IT_BIN:=.d)
