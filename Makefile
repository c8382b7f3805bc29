# Aurora - build, run and test.  `make run` and `make test` install missing Debian packages first.
#   make            build aurora, aurora-bench, aurora-ctl, unit tests
#   make run        install deps, build, start the gateway (embedded store, default app)
#   make test       install deps, build, run unit + integration + fuzz-smoke tests
#   make test SAN=address,undefined   the same under ASan+UBSan (own build dir)
#   make fuzz       build libFuzzer targets (clang)
#   make broker-only  the MQTT test files against aurora-broker (the broker with no extension registered)
#   WERROR=1        warnings are errors (CI sets it)

CC      ?= gcc
SAN     ?=
WERROR  ?=
OPT     ?= -O2

WARN    := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wvla -Wno-unused-parameter -Wimplicit-fallthrough
CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -g -pthread $(WARN) -I. -MMD -MP
LDLIBS  := -luring -lxxhash -lssl -lcrypto -lleveldb -ljansson -lpthread -lm

ifneq ($(WERROR),)
CFLAGS  += -Werror
endif

ifneq ($(SAN),)
BUILD   := build-san
CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
else
BUILD   := build
LDLIBS  += -ljemalloc
endif

LIB_SRC   := $(wildcard core/*.c) $(filter-out gateway/main.c,$(wildcard gateway/*.c gateway/*/*.c)) $(wildcard store/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC := $(wildcard perf/bench/*.c)
CTL_SRC   := $(wildcard tools/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)

BINS := $(BUILD)/aurora $(BUILD)/aurora-broker
ifneq ($(BENCH_SRC),)
BINS += $(BUILD)/aurora-bench
endif
ifneq ($(wildcard perf/ceiling/*.c),)
BINS += $(BUILD)/uring-ceiling
endif
ifneq ($(CTL_SRC),)
BINS += $(BUILD)/aurora-ctl
endif
ifneq ($(wildcard perf/rest-ceiling.c),)
BINS += $(BUILD)/rest-ceiling
endif

.PHONY: all deps test-deps run test unit fuzz clean broker-only tsan-workpool
all: $(BINS) $(UNIT_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libaurora.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/aurora: $(BUILD)/gateway/main.o $(BUILD)/libaurora.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# aurora-broker: the MQTT broker with no extension registered (the composition root gateway/gateway.c built with
# AU_BROKER_ONLY: no IM rows, no IM wiring), a test binary: `make broker-only` runs the MQTT test files against it
# (tests/run.sh runs it as a stage too). Its gateway-broker.o defines every symbol of gateway.o, so the archive's
# gateway.o is never pulled in.
$(BUILD)/gateway/gateway-broker.o: gateway/gateway.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DAU_BROKER_ONLY -c $< -o $@

$(BUILD)/aurora-broker: $(BUILD)/gateway/main.o $(BUILD)/gateway/gateway-broker.o $(BUILD)/libaurora.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/aurora-bench: $(BENCH_SRC:%.c=$(BUILD)/%.o) $(BUILD)/libaurora.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/uring-ceiling: $(patsubst %.c,$(BUILD)/%.o,$(wildcard perf/ceiling/*.c)) $(BUILD)/libaurora.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/aurora-ctl: $(CTL_SRC:%.c=$(BUILD)/%.o) $(BUILD)/libaurora.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/rest-ceiling: $(BUILD)/perf/rest-ceiling.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libaurora.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer targets: clang, the parser sources only, ASan+UBSan.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -I. -fsanitize=fuzzer,address,undefined
FUZZ_DEPS := core/common.c core/log.c $(wildcard gateway/mqtt/codec*.c gateway/http/http_parse.c gateway/http/http_server.c gateway/mqtt/topic.c gateway/mqtt/subindex.c gateway/mqtt/retained.c gateway/im/errors.c gateway/im/imjson_*.c gateway/http/multipart.c store/media_sniff.c)
FUZZ_LDLIBS := -ljansson -lm
build-fuzz/%: tests/fuzz/%.c $(FUZZ_DEPS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_DEPS) $(FUZZ_LDLIBS)
fuzz: $(FUZZ_BIN)

# ThreadSanitizer build of the worker-pool race tests (core/ and the test only: no uninstrumented library in
# the code under test), and its run: `make tsan-workpool` (CC=clang works too).
TSAN_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -pthread $(WARN) -I. -fsanitize=thread -fno-omit-frame-pointer
build-tsan/test_workpool: tests/unit/test_workpool.c $(wildcard core/*.c core/*.h)
	@mkdir -p build-tsan
	$(CC) $(TSAN_CFLAGS) -o $@ tests/unit/test_workpool.c $(wildcard core/*.c) -luring -lxxhash -ljansson -lm
tsan-workpool: build-tsan/test_workpool
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 $(TSAN_OPTIONS)" ./build-tsan/test_workpool

# Debian packages the build and the tests need; installed when missing (root) by `make run`/`make test`.
BUILD_PKGS := gcc make liburing-dev libjemalloc-dev libxxhash-dev libssl-dev libleveldb-dev libjansson-dev
TEST_PKGS  := clang mosquitto mosquitto-clients python3-paho-mqtt curl wrk openssl procps iproute2
deps:
	@sh tools/install-deps.sh $(BUILD_PKGS)
test-deps:
	@sh tools/install-deps.sh $(BUILD_PKGS) $(TEST_PKGS)

run: deps
	$(MAKE) all
	./$(BUILD)/aurora $(ARGS)

unit: all
	@sh tests/run-unit.sh $(BUILD)

# The MQTT test files against the broker with no extension registered (tests/run.sh's broker-only stage).
broker-only: all
	@BUILD=$(BUILD) FUZZ_TIME=0 INTEGRATION=broker-only sh tests/run.sh

test: test-deps
	$(MAKE) all
	$(MAKE) fuzz
	@BUILD=$(BUILD) sh tests/run.sh

clean:
	rm -rf build build-san build-fuzz build-tsan

-include $(shell find build build-san -name '*.d' 2>/dev/null)
