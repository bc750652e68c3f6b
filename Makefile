# hookline build: four daemons and hookctl, warnings as errors, libraries via pkg-config.
PKGS     := libcurl msgpack libuv libbsd-overlay sqlite3 jansson libcrypto
CC       ?= cc
OPT      ?= -O2 -g
CFLAGS   += $(OPT) -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE \
            -Icommon $(shell pkg-config --cflags $(PKGS))
LDLIBS   += $(shell pkg-config --libs $(PKGS)) -lm
BUILD    ?= build
BIN      ?= bin
VERSION  := $(shell cat VERSION)
CFLAGS   += -DHOOKLINE_VERSION=\"$(VERSION)\"

UTIL_SRC   := $(wildcard common/util/*.c)
DOMAIN_SRC := $(wildcard common/domain/*.c)
COMMON_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(UTIL_SRC) $(DOMAIN_SRC))

PROGRAMS := hook-ingest hook-router hook-sender hook-scheduler hookctl
DIR_hook-ingest    := ingest
DIR_hook-router    := router
DIR_hook-sender    := sender
DIR_hook-scheduler := scheduler
DIR_hookctl        := hookctl

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
BENCH_SRC := $(wildcard tests/bench/*.c)

.PHONY: all test unit integration asan asan-test clean format format-check run stop deps bench
all: $(addprefix $(BIN)/,$(PROGRAMS)) $(UNIT_BIN)

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
		$(patsubst %.c,$(BUILD)/%.o,$(filter-out %/main.c,$(wildcard ingest/*.c router/*.c sender/*.c scheduler/*.c hookctl/*.c)))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(filter $(BUILD)/%.o,$^) $(BUILD)/libhookline.a $(LDLIBS)

test: all
	BIN=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) tests/run.sh

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer, in its own tree.
asan-test:
	$(MAKE) BUILD=build-asan BIN=build-asan/bin OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" test
asan: asan-test

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

run: all
	scripts/run-example.sh
stop:
	scripts/run-example.sh stop

clean:
	rm -rf $(BUILD) build-asan $(BIN)
