# Otter build. `make test` installs missing Debian packages, builds and runs
# every Criterion suite; `make bench` runs perf/run against the peers.
# BUILD selects the output folder; SAN=asan|tsan selects a sanitizer build.
# V=1 shows full command lines.

PREFIX  ?= /usr/local
# The library's version; the SONAME carries its major number (libotter.so.0).
VERSION := 0.1.0
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
DESTDIR ?=
SAN     ?=
WERROR  ?=
ifeq ($(SAN),asan)
BUILD   ?= build-asan
else ifeq ($(SAN),tsan)
BUILD   ?= build-tsan
else
BUILD   ?= build
endif

CC      ?= cc
OPT     ?= -O2
WARN    := -Wall -Wextra -Wshadow -Wconversion -Wno-unused-parameter \
           -Wno-missing-field-initializers
ifneq ($(WERROR),)
WARN    += -Werror
endif
# -fstack-clash-protection: frames larger than a stack's 64 KiB guard probe it
# page by page, so they overflow into the guard, never into the stack below.
# Frame pointers: perf record -g, gdb and ot_dump walk stacks through them.
CFLAGS_BASE := -std=gnu11 $(OPT) -g -fPIC -fvisibility=hidden -pthread -fstack-clash-protection \
               -fno-omit-frame-pointer \
               -Iinclude -I. -D_GNU_SOURCE $(WARN)
LIBS    := -luring -ljemalloc -lurcu-qsbr -lurcu-common -lpthread -lm

ifeq ($(SAN),asan)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -DOT_SANITIZE=1 -DOT_ASAN=1
LDSAN := -fsanitize=address,undefined
else ifeq ($(SAN),tsan)
CFLAGS_BASE += -fsanitize=thread -fno-omit-frame-pointer -DOT_SANITIZE=1 -DOT_TSAN=1
LDSAN := -fsanitize=thread
endif
CFLAGS  := $(CFLAGS_BASE) $(EXTRA_CFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRC  := $(wildcard runtime/*/*.c)
LIB_ASM  := $(wildcard runtime/*/*.S)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(LIB_ASM:%.S=$(BUILD)/obj/%.o)
# libotter-testing: the Criterion helpers of otter/testing.h, never in libotter
TESTING_SRC := $(wildcard testing/*.c)
TESTING_OBJ := $(TESTING_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(wildcard tests/*.c tests/stress/*.c)
TEST_BIN := $(patsubst %.c,$(BUILD)/%,$(TEST_SRC))
TEST_SUPPORT := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJ := $(TEST_SUPPORT:%.c=$(BUILD)/obj/%.o)
PERF_SRC := $(wildcard perf/*.c)
PERF_BIN := $(patsubst perf/%.c,$(BUILD)/perf/%,$(PERF_SRC))
KV_SRC   := $(wildcard examples/kv/*.c)
KV_LIB_SRC := $(filter-out examples/kv/main.c,$(KV_SRC))
EX_SRC   := $(wildcard examples/*.c)
EX_BIN   := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EX_SRC))
HEADERS  := $(wildcard include/*.h include/otter/*.h)

.PHONY: all lib test test-asan test-tsan test-werror test-aarch64 bench examples install clean deps \
        deps-bench format check-format check-install check-symbols check-gdb check-layers
all: lib $(BUILD)/kv $(EX_BIN)

lib: $(BUILD)/libotter.a $(BUILD)/libotter.so $(BUILD)/libotter-testing.a

deps:
	@sh scripts/deps.sh $(if $(SAN),asan,)

deps-bench:
	@sh scripts/deps.sh bench

# Objects depend on the flags they were built with: a change of CFLAGS
# (here or on the command line) rebuilds them.
FLAGS_STAMP := $(BUILD)/obj/.cflags
$(shell mkdir -p $(BUILD)/obj && (echo '$(CFLAGS)' | cmp -s - $(FLAGS_STAMP) || \
    echo '$(CFLAGS)' > $(FLAGS_STAMP)))

$(BUILD)/obj/%.o: %.c $(HEADERS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.S $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AS      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libotter.a: $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# The real file is libotter.so.VERSION with SONAME libotter.so.MAJOR; the two
# links beside it are what ld.so (the SONAME) and -lotter (libotter.so) find.
$(BUILD)/libotter.so: $(LIB_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,libotter.so.$(SOMAJOR) $(if $(SAN),,-Wl,-z,defs) -o $@.$(VERSION) $^ \
	    $(LDSAN) $(LIBS)
	$(Q)ln -sf libotter.so.$(VERSION) $@.$(SOMAJOR) && ln -sf libotter.so.$(SOMAJOR) $@

$(BUILD)/libotter-testing.a: $(TESTING_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# Tests link the static library so internal (hidden) symbols stay reachable
# for white-box suites that include private headers; -rdynamic exports their
# own default-visibility functions, which crash reports then name.
# A suite may include an example's source (test_app_tree.c): examples are prerequisites.
# The support files are compiled once and linked into every suite as objects
# (not an archive: tsan_criterion.c is referenced by no suite), and kept
# (only pattern rules name them, which would make them intermediate).
.SECONDARY: $(TEST_SUPPORT_OBJ)
$(BUILD)/tests/%: tests/%.c $(BUILD)/libotter.a $(BUILD)/libotter-testing.a $(BUILD)/obj/examples_kv.a \
                  $(TEST_SUPPORT_OBJ) $(HEADERS) $(EX_SRC) $(wildcard tests/support/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CFLAGS) -Itests -rdynamic -o $@ $< $(TEST_SUPPORT_OBJ) $(BUILD)/obj/examples_kv.a \
	    $(BUILD)/libotter-testing.a $(BUILD)/libotter.a $(LDSAN) -lcriterion $(LIBS)

$(BUILD)/obj/tests/support/%.o: tests/support/%.c $(HEADERS) $(wildcard tests/support/*.h) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -Itests -MMD -MP -c $< -o $@

$(BUILD)/obj/examples_kv.a: $(KV_LIB_SRC:%.c=$(BUILD)/obj/%.o)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/kv: $(BUILD)/obj/examples_kv.a examples/kv/main.c $(BUILD)/libotter.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ examples/kv/main.c $(BUILD)/obj/examples_kv.a $(BUILD)/libotter.a $(LDSAN) $(LIBS)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libotter.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libotter.a $(LDSAN) $(LIBS)

$(BUILD)/perf/%: perf/%.c $(BUILD)/libotter.a $(wildcard perf/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  PERF    $@")
	$(Q)$(CC) $(CFLAGS) -Iperf -o $@ $< $(BUILD)/libotter.a $(LDSAN) $(LIBS) -lurcu-cds -lurcu

examples: $(BUILD)/kv $(EX_BIN)

tests: $(TEST_BIN) $(BUILD)/kv $(EX_BIN)

# Every suite runs even when one fails; the summary line counts suites. The
# build runs JOBS compilers at once (the suites themselves run one at a time).
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) tests
	@sh scripts/run-tests.sh $(BUILD) $(TEST_BIN)

test-asan:
	@$(MAKE) --no-print-directory SAN=asan test

test-tsan:
	@$(MAKE) --no-print-directory SAN=tsan test

# The context switch for aarch64, which no machine of ours runs natively:
# tests/test_ctx.c built on its own (no Criterion, no liburing) with the
# cross compiler and run under qemu-user; both come from Debian (deps.sh cross).
CROSS_AARCH64 ?= aarch64-linux-gnu-gcc
test-aarch64:
	@sh scripts/deps.sh cross
	@mkdir -p $(BUILD)/aarch64
	$(Q)$(CROSS_AARCH64) -std=gnu11 -O2 -static -Wall -Wextra -Wconversion -Werror -DCTX_STANDALONE \
	    -I. -Iinclude tests/test_ctx.c runtime/sched/switch.S -o $(BUILD)/aarch64/test_ctx -lm
	$(Q)qemu-aarch64 $(BUILD)/aarch64/test_ctx

test-werror:
	@$(MAKE) --no-print-directory BUILD=build-werror WERROR=1 all tests $(patsubst $(BUILD)/%,build-werror/%,$(PERF_BIN))

bench: deps-bench
	@$(MAKE) --no-print-directory BUILD=build-bench OPT="-O3 -DNDEBUG" build-bench/libotter.a build-bench/kv \
	    $(patsubst $(BUILD)/%,build-bench/%,$(PERF_BIN))
	@python3 perf/run --build build-bench

# Installs the shared library (versioned file plus its two links), the static
# one, the headers, otter.pc, and apart from them the Criterion helpers
# (libotter-testing.a, otter/testing.h, otter-testing.pc), and the gdb
# extension (share/otter/gdb, plus an auto-load file gdb finds beside
# libotter.so once share/gdb/auto-load is on its auto-load path). ld.so finds libotter.so.0 in a prefix outside its search path
# only through LD_LIBRARY_PATH (or ldconfig for /usr/local/lib): no rpath is
# recorded, as distributions want.
LIBDIR  := $(PREFIX)/lib
PCSUBST := -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@VERSION@|$(VERSION)|g'
install: lib
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include/otter
	install -m 755 $(BUILD)/libotter.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libotter.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libotter.so.$(SOMAJOR)
	ln -sf libotter.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libotter.so
	install -m 644 $(BUILD)/libotter.a $(BUILD)/libotter-testing.a $(DESTDIR)$(LIBDIR)/
	install -m 644 include/otter.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(wildcard include/otter/*.h) $(DESTDIR)$(PREFIX)/include/otter/
	sed $(PCSUBST) otter.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/otter.pc
	sed $(PCSUBST) otter-testing.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/otter-testing.pc
	install -d $(DESTDIR)$(PREFIX)/share/otter/gdb $(DESTDIR)$(PREFIX)/share/gdb/auto-load$(LIBDIR)
	install -m 644 scripts/gdb/otter-gdb.py $(DESTDIR)$(PREFIX)/share/otter/gdb/
	printf 'import os\nexec(open(os.path.join("%s", "otter-gdb.py")).read())\n' \
	    "$(PREFIX)/share/otter/gdb" > \
	    $(DESTDIR)$(PREFIX)/share/gdb/auto-load$(LIBDIR)/libotter.so.$(VERSION)-gdb.py

# Installs into a fresh prefix, builds the README's example against it with
# its pkg-config lines, shared and static, and runs both (.ci/run: install).
check-install: lib
	@rm -rf $(BUILD)/prefix
	$(Q)$(MAKE) --no-print-directory install PREFIX=$(abspath $(BUILD)/prefix) >/dev/null
	$(Q)sh scripts/check-install.sh $(abspath $(BUILD)/prefix) $(BUILD)

# The gdb extension in batch mode on tests/gdb/target.c, live and on a core
# file (.ci/run: gdb).
$(BUILD)/tests/gdb/target: tests/gdb/target.c $(BUILD)/libotter.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libotter.a $(LDSAN) $(LIBS)

check-gdb: $(BUILD)/tests/gdb/target
	$(Q)sh scripts/check-gdb.sh $(BUILD)

# A runtime folder includes no header of a higher folder (docs/ARCHITECTURE.md, layers).
check-layers:
	$(Q)sh scripts/check-layers.sh

# libotter.so exports the public API (ot_ names) and nothing else.
check-symbols: $(BUILD)/libotter.so
	$(Q)sh scripts/check-symbols.sh $(BUILD)/libotter.so

format:
	clang-format -i $(shell git ls-files '*.c' '*.h')

check-format:
	clang-format --dry-run --Werror $(shell git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan build-werror build-bench build-bench-before

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
