# hookline build: four daemons, hook-api and hookctl, warnings as errors, libraries via pkg-config.
PKGS     := libcurl msgpack libuv libbsd-overlay sqlite3 jansson libcrypto
CC       ?= cc
OPT      ?= -O2 -g
CFLAGS   += $(OPT) -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE \
            -Icommon $(shell pkg-config --cflags $(PKGS))
LDLIBS   += $(shell pkg-config --libs $(PKGS)) -lmicrohttpd -lm
BUILD    ?= build
BIN      ?= bin
VERSION  := $(shell cat VERSION)
CFLAGS   += -DHOOKLINE_VERSION=\"$(VERSION)\"

UTIL_SRC   := $(wildcard common/util/*.c)
DOMAIN_SRC := $(wildcard common/domain/*.c)
COMMON_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(UTIL_SRC) $(DOMAIN_SRC))

PROGRAMS := hook-ingest hook-router hook-sender hook-scheduler hook-api hookctl
DIR_hook-ingest    := ingest
DIR_hook-router    := router
DIR_hook-sender    := sender
DIR_hook-scheduler := scheduler
DIR_hook-api       := api
DIR_hookctl        := hookctl

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
BENCH_SRC := $(wildcard tests/bench/*.c)

.PHONY: all test unit integration asan asan-test clean format format-check run stop deps bench \
	bench-recovery
all: $(addprefix $(BIN)/,$(PROGRAMS)) $(UNIT_BIN) $(BUILD)/tests/clockshift.so

$(BUILD)/%.o: %.c $(wildcard common/*/*.h) $(wildcard */*.h) VERSION
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libhookline.a: $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

define program_rule
$(BIN)/$(1): $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(DIR_$(1))/*.c)) $(BUILD)/libhookline.a
	@mkdir -p $(BIN)
	$$(CC) $$(CFLAGS) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call program_rule,$(p))))

# Unit tests link a module's stage objects (minus main.c) when the test is named after a stage.
$(BUILD)/tests/%: tests/unit/%.c tests/unit/check.h $(BUILD)/libhookline.a \
		$(patsubst %.c,$(BUILD)/%.o,$(filter-out %/main.c,$(wildcard ingest/*.c router/*.c sender/*.c scheduler/*.c api/*.c hookctl/*.c)))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(filter $(BUILD)/%.o,$^) $(BUILD)/libhookline.a $(LDLIBS)

# The clock-step tests' LD_PRELOAD shim (tests/clockshift): never sanitized, it wraps libc.
$(BUILD)/tests/clockshift.so: tests/clockshift/clockshift.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -shared -fPIC -o $@ $< -ldl

test: all
	BIN=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) tests/run.sh

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer, in its own tree.
asan-test:
	$(MAKE) BUILD=build-asan BIN=build-asan/bin OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" test
asan: asan-test

# Scheduler restart with 100,000 pending retries: time to ready, to a full status, RSS (a
# benchmark: not part of test).
bench-recovery: all
	BIN=$(abspath $(BIN)) tests/bench/sched_recovery.sh

# Scheduler memory per pending retry and restart time with 1,000,000 pending retries written
# straight into its journal (tests/bench/sched_memory.{c,py}; a benchmark, not part of test).
.PHONY: bench-memory
$(BUILD)/bench/sched_memory: tests/bench/sched_memory.c $(BUILD)/libhookline.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libhookline.a $(LDLIBS)

bench-memory: all $(BUILD)/bench/sched_memory
	BIN=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/bench/sched_memory.py

# Memory of each stage with a backlog: routers stopped with 300,000 small events and with 30,000
# of 64 KiB, senders stopped with 2,000 events x 16 webhooks of 16 KiB; peak and after-drain RSS
# (tests/bench/flow_memory.py; a benchmark, not part of test).
.PHONY: bench-flow
bench-flow: all
	BIN=$(abspath $(BIN)) /usr/bin/python3 tests/bench/flow_memory.py

# Throughput, latency, CPU and memory of the whole pipeline against nginx, with wrk, a plain
# libcurl-multi sender (tests/bench/curl_ceiling.c) and a bare sender on our HTTP engine
# (tests/bench/bare_sender.c) as ceilings, at 16/256/2,000 endpoints, over TLS and with 2
# senders: a table on stdout and
# $(BUILD)/bench/results.json (a benchmark, not part of test; docs/PERFORMANCE.md).
$(BUILD)/bench/bare_sender: tests/bench/bare_sender.c $(patsubst %.c,$(BUILD)/%.o,$(wildcard sender/http*.c)) \
		$(BUILD)/sender/guard.o \
		$(BUILD)/libhookline.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isender -o $@ $< $(filter %.o,$^) $(BUILD)/libhookline.a $(LDLIBS)

# The plain libcurl ceiling: libcurl multi on libuv and nothing of ours (tests/bench/curl_ceiling.c).
$(BUILD)/bench/curl_ceiling: tests/bench/curl_ceiling.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# BENCH_PHASES picks phases (tests/bench/bench.py lists them); BENCH_RUNS, BENCH_EVENTS as there.
bench: all $(BUILD)/bench/bare_sender $(BUILD)/bench/curl_ceiling
	BIN=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/bench/bench.py

# libFuzzer targets (tests/fuzz/fuzz_*.c) under ASan/UBSan, built by clang in their own tree;
# tests/fuzz/run.sh runs them and prints exec/s. fuzz-ci: shorter, plus the regression cases.
.PHONY: fuzz fuzz-ci fuzz-build
FUZZ_SECONDS ?= 60
FUZZ_OPT := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build-fuzz/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(BUILD)/libhookline.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libhookline.a $(LDLIBS)

fuzz-build:
	$(MAKE) CC=clang BUILD=build-fuzz OPT="$(FUZZ_OPT)" $(FUZZ_BIN)
fuzz: fuzz-build
	tests/fuzz/run.sh build-fuzz/fuzz $(FUZZ_SECONDS)
fuzz-ci: fuzz-build
	tests/fuzz/run.sh --ci build-fuzz/fuzz $(or $(FUZZ_CI_SECONDS),20)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

run: all
	scripts/run-example.sh
stop:
	scripts/run-example.sh stop

clean:
	rm -rf $(BUILD) build-asan build-fuzz $(BIN)

# The delivery log's incremental prune on 200,000 rows: lock held per batch, a concurrent
# writer's waits, against the old one-statement prune (tests/bench/prune_bench.c; a benchmark,
# not part of test). The log's durability cost: tests/bench/dlog_bench.py.
.PHONY: bench-dlog
$(BUILD)/bench/prune_bench: tests/bench/prune_bench.c $(BUILD)/scheduler/sched_prune.o $(BUILD)/libhookline.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/scheduler/sched_prune.o $(BUILD)/libhookline.a $(LDLIBS)

# The log's write cost per record through the sender's store calls (tests/bench/dlog_write.c).
$(BUILD)/bench/dlog_write: tests/bench/dlog_write.c $(BUILD)/libhookline.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libhookline.a $(LDLIBS)

bench-dlog: all $(BUILD)/bench/prune_bench $(BUILD)/bench/dlog_write
	d=$$(mktemp -d) && $(BUILD)/bench/dlog_write $$d 20000 100 100000; rm -rf $$d
	d=$$(mktemp -d) && $(BUILD)/bench/prune_bench $$d 200000; rm -rf $$d
	BIN=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/bench/dlog_bench.py

# Idempotent ingest: hook-ingest's accept rate with --dedupe-window on and off (medians of
# BENCH_DEDUPE_RUNS, the ratio), and its RSS and start time with 10,000,000 remembered ids filled
# straight into DATA/dedupe by tests/bench/dedupe_fill.c (a benchmark, not part of test).
.PHONY: bench-dedupe
DEDUPE_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard ingest/ingest_dedupe.c ingest/dedupe_*.c))
$(BUILD)/bench/dedupe_fill: tests/bench/dedupe_fill.c $(DEDUPE_OBJS) $(BUILD)/libhookline.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(DEDUPE_OBJS) $(BUILD)/libhookline.a $(LDLIBS)

bench-dedupe: all $(BUILD)/bench/dedupe_fill
	BIN=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/bench/dedupe_bench.py

# hook-api: GET deliveries latency (p50/p99) over a delivery log of 1,000,000 records filled
# straight into the store, and POST events throughput with 16 concurrent clients (wrk and a Lua
# script) (tests/bench/api_bench.py; a benchmark, not part of test).
.PHONY: bench-api
bench-api: all
	BIN=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) /usr/bin/python3 tests/bench/api_bench.py

# The web console (api/console/) embedded into hook-api as byte arrays by tools/embed.c (no
# network): $(BUILD)/gen/console_files.inc, #included by api/api_console.c.
CONSOLE_SRC := $(sort $(wildcard api/console/*))
$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<
$(BUILD)/gen/console_files.inc: $(BUILD)/tools/embed $(CONSOLE_SRC)
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed $@ $(CONSOLE_SRC)
$(BUILD)/api/api_console.o: $(BUILD)/gen/console_files.inc
$(BUILD)/api/api_console.o: CFLAGS += -I$(BUILD)/gen
