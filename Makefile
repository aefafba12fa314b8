SHELL := /bin/bash

# The README's commands. Each installs what it needs first (.ci/setup is idempotent).
#
#   make demo    producer (camera 0, or the test pattern without a camera) + a viewer
#   make test    the whole test suite: Rust and Python
.PHONY: apple setup build gst gst-bench demo test test-rust test-python test-c capi install-c capi-bench lint layers miri loom fuzz-smoke fuzz soak bench bench-deps

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@bash .ci/setup

## Release binaries and the Python package (installed into .venv, editable). maturin builds in
## target/maturin: sharing target/ with cargo, each rebuilt the crates after the other.
build: setup
	cargo build --release --workspace --bins
	@# A per-interpreter build of older checkouts would shadow the abi3 one (Python tries
	@# .cpython-3XX-*.so before .abi3.so).
	@rm -f python/shmframes/_shmframes.cpython-*.so
	VIRTUAL_ENV=$(CURDIR)/$(VENV) CARGO_TARGET_DIR=$(CURDIR)/target/maturin $(VENV)/bin/maturin develop --release --quiet

## The GStreamer plugin (shmframessrc, shmframessink), copied alone into target/gst so that
## GST_PLUGIN_PATH=target/gst finds it without scanning the rest of target/.
GST_DIR := target/gst
gst: setup
	cargo build --release -p gstshmframes
	@mkdir -p $(GST_DIR) && cp target/release/libgstshmframes.so $(GST_DIR)/
	@echo "gst: built $(GST_DIR)/libgstshmframes.so; use it with: export GST_PLUGIN_PATH=$(CURDIR)/$(GST_DIR)"

## Producer + consumer. With a display (and OpenCV) the consumer is a window, else it prints
## stats. Stop with Ctrl+C. DEMO_ARGS are passed to frame-producer (e.g. DEMO_ARGS="--fps 60").
demo: build
	@$(PY) -c 'import cv2' 2>/dev/null || { [ -z "$$DISPLAY" ] || $(VENV)/bin/pip install -q "opencv-python>=4.5"; }
	@if ls /dev/video* >/dev/null 2>&1; then src="--camera 0"; else src="--synthetic"; echo "demo: no camera here, using the test pattern"; fi; \
	./target/release/frame-producer $$src --name shm_video $(DEMO_ARGS) & producer=$$!; \
	trap 'kill $$producer 2>/dev/null; wait $$producer 2>/dev/null' EXIT INT TERM; \
	$(PY) -m shmframes.view shm_video --timeout 10

test: build gst test-c test-rust test-python lint layers miri loom fuzz-smoke apple test-windows

## The C ABI's tests run alone: their cbindgen (a dev-dependency) turns on indexmap's std
## feature, which the tools' wgpu shares, and would rebuild naga and wgpu for the tests (about
## 5 minutes here) if it were part of the workspace's test build.
test-rust:
	cargo test --release --workspace --exclude shmframes-capi --all-targets
	cargo test --release --workspace --exclude shmframes-capi --doc
	cargo test --release -p shmframes-capi --all-targets
	cargo test --release -p shmframes-capi --doc

test-python:
	$(PY) -m pytest -q tests/python

lint:
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	cargo clippy --release -p shmframes-python --features abi3-py39 -- -D warnings
	@# --release: the dependencies' metadata clippy just made is reused (the dev profile
	@# re-checked every dependency: about 2.5 minutes of CI).
	RUSTDOCFLAGS="-D warnings" cargo doc --release --workspace --no-deps --quiet
	$(VENV)/bin/ruff check python tests/python tests/windows/python benches

## C and C++ (issue 24, docs/c.md): libshmframes (shared and static), shmframes.h (C, made by
## cbindgen), shmframes.hpp (C++17), pkg-config and CMake files, and the two C++ examples built
## against them, all under PREFIX. cargo-c is the usual tool for this, but building it takes
## longer here than the rest of CI's C part together, so the .pc and CMake files are written
## from the templates in src/capi/install/.
PREFIX ?= /usr/local
C_PREFIX = $(abspath $(PREFIX))
CAPI_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
CAPI_MAJOR := $(firstword $(subst ., ,$(CAPI_VERSION)))
CAPI_LIBS_PRIVATE := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
CAPI_BUILD := target/c-build
CAPI_LIB_DIR = $(or $(CARGO_TARGET_DIR),target)/release

capi:
	cargo build --release -p shmframes-capi

install-c: setup capi
	install -d $(C_PREFIX)/include $(C_PREFIX)/lib/pkgconfig $(C_PREFIX)/lib/cmake/shmframes $(C_PREFIX)/bin
	install -m 644 src/capi/include/shmframes.h src/capi/include/shmframes.hpp $(C_PREFIX)/include/
	install -m 755 $(CAPI_LIB_DIR)/libshmframes_capi.so $(C_PREFIX)/lib/libshmframes.so.$(CAPI_VERSION)
	ln -sf libshmframes.so.$(CAPI_VERSION) $(C_PREFIX)/lib/libshmframes.so.$(CAPI_MAJOR)
	ln -sf libshmframes.so.$(CAPI_MAJOR) $(C_PREFIX)/lib/libshmframes.so
	install -m 644 $(CAPI_LIB_DIR)/libshmframes_capi.a $(C_PREFIX)/lib/libshmframes.a
	sed -e 's|@PREFIX@|$(C_PREFIX)|' -e 's|@VERSION@|$(CAPI_VERSION)|' -e 's|@LIBS_PRIVATE@|$(CAPI_LIBS_PRIVATE)|' \
		src/capi/install/shmframes.pc.in > $(C_PREFIX)/lib/pkgconfig/shmframes.pc
	sed -e 's|@VERSION@|$(CAPI_VERSION)|g' -e 's|@MAJOR@|$(CAPI_MAJOR)|g' \
		-e 's|@CMAKE_LIBS_PRIVATE@|$(subst $() ,;,$(patsubst -l%,%,$(CAPI_LIBS_PRIVATE)))|' \
		src/capi/install/shmframesConfig.cmake.in > $(C_PREFIX)/lib/cmake/shmframes/shmframesConfig.cmake
	sed -e 's|@VERSION@|$(CAPI_VERSION)|g' src/capi/install/shmframesConfigVersion.cmake.in \
		> $(C_PREFIX)/lib/cmake/shmframes/shmframesConfigVersion.cmake
	cmake -S examples/cpp -B $(CAPI_BUILD)/examples -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=$(C_PREFIX) \
		-Dshmframes_DIR=$(C_PREFIX)/lib/cmake/shmframes -DCMAKE_INSTALL_PREFIX=$(C_PREFIX) >/dev/null
	cmake --build $(CAPI_BUILD)/examples -j2
	cmake --install $(CAPI_BUILD)/examples >/dev/null
	@echo "install-c: installed into $(C_PREFIX)"

## The C and C++ tests (tests/c), against an install in target/c-install (which the Python
## tests in tests/python/test_capi.py also use): the C11 header check, bad calls in C, the C++
## wrapper; each built plainly and again under AddressSanitizer + UndefinedBehaviorSanitizer.
C_TEST_PREFIX := $(CURDIR)/target/c-install
C_PKG = PKG_CONFIG_PATH=$(C_TEST_PREFIX)/lib/pkgconfig pkg-config
C_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
test-c:
	$(MAKE) --no-print-directory install-c PREFIX=$(C_TEST_PREFIX)
	@mkdir -p $(CAPI_BUILD)/tests
	gcc -std=c11 -Wall -Wextra -Werror -pedantic $$($(C_PKG) --cflags shmframes) tests/c/c11_check.c \
		-o $(CAPI_BUILD)/tests/c11_check $$($(C_PKG) --libs shmframes)
	g++ -std=c++17 -Wall -Wextra -Werror -pthread $$($(C_PKG) --cflags shmframes) tests/c/cpp_api.cpp \
		-o $(CAPI_BUILD)/tests/cpp_api $$($(C_PKG) --libs shmframes)
	gcc -std=c11 -g $(C_SAN) $$($(C_PKG) --cflags shmframes) tests/c/c11_check.c \
		-o $(CAPI_BUILD)/tests/c11_check_san $$($(C_PKG) --libs shmframes)
	g++ -std=c++17 -g -pthread $(C_SAN) $$($(C_PKG) --cflags shmframes) tests/c/cpp_api.cpp \
		-o $(CAPI_BUILD)/tests/cpp_api_san $$($(C_PKG) --libs shmframes)
	g++ -std=c++17 -Wall -Wextra -Werror -pthread $$($(C_PKG) --cflags shmframes) tests/c/cpp_api.cpp \
		-o $(CAPI_BUILD)/tests/cpp_api_static $(C_TEST_PREFIX)/lib/libshmframes.a $$($(C_PKG) --static --libs-only-l shmframes | sed 's/-lshmframes//')
	cd $(CAPI_BUILD)/tests && export LD_LIBRARY_PATH=$(C_TEST_PREFIX)/lib && \
		./c11_check && ./cpp_api && ./cpp_api_static && \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ./c11_check_san && \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ./cpp_api_san

## The C path's per-frame cost against the Rust API's, 1080p, alternating rounds in one run.
capi-bench:
	cargo bench -p shmframes-capi --bench capi_overhead

## The core crate is the channel only: no camera, window, CLI or Python crate below it.
layers:
	@deps=$$(cargo tree -p shmframes -e normal --prefix none --format '{p}' | cut -d' ' -f1 | sort -u); \
	echo "layers: shmframes depends on: $$(echo $$deps | tr '\n' ' ')"; \
	if echo "$$deps" | grep -qE '^(nokhwa|winit|pixels|wgpu|clap|anyhow|pyo3|numpy|image|mozjpeg|yuv)$$'; then \
		echo "layers: FAILED: an app crate reached the core"; exit 1; fi
	@python3 scripts/check_os_layer.py || { echo "layers: FAILED: a system call outside src/core/sys/ (listed above)"; exit 1; }
	@echo "layers: no libc:: or futex outside src/core/sys/"

## Miri runs the ring's unit tests on heap memory: undefined behaviour, alignment, data races
## between the test threads (a few minutes). Needs the nightly toolchain with miri (.ci/setup).
miri:
	@if ! cargo +nightly miri --version >/dev/null 2>&1; then echo "miri: SKIPPED: no nightly toolchain with miri"; exit 0; fi; \
	cargo +nightly miri test -p shmframes --lib -- ring:: table::tests

## The loom model checker on the reader table's claim protocol: every interleaving (up to
## LOOM_MAX_PREEMPTIONS preemptions) of a producer and two readers, slots as checked cells
## (about 40 s with 1, which already catches a missing fence or a missing check; 2 takes over
## 10 minutes here).
## Built in its own target directory: `--cfg loom` would rebuild everything else.
LOOM_MAX_PREEMPTIONS ?= 1
loom:
	RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=$(LOOM_MAX_PREEMPTIONS) CARGO_TARGET_DIR=target/loom \
		cargo test --release -p shmframes --lib model

## The fuzz targets, briefly (CI): 20 s each from the corpus in tests/fuzz/corpus. Needs the
## nightly toolchain (cargo-fuzz builds with sanitizers); .ci/setup installs cargo-fuzz.
FUZZ_SECS ?= 20
fuzz-smoke:
	@if ! rustup toolchain list | grep -q '^nightly'; then echo "fuzz-smoke: SKIPPED: no nightly toolchain (cargo-fuzz needs it)"; exit 0; fi; \
	for t in segment messages; do \
		mkdir -p tests/fuzz/target/corpus/$$t; \
		cargo +nightly fuzz run --fuzz-dir tests/fuzz $$t tests/fuzz/target/corpus/$$t tests/fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECS) -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)" ; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

## A long fuzz run of one target: make fuzz TARGET=segment FUZZ_SECS=600
fuzz:
	cargo +nightly fuzz run --fuzz-dir tests/fuzz $(TARGET) tests/fuzz/corpus/$(TARGET) -- -max_total_time=$(FUZZ_SECS)

## The 10-minute soak (SOAK_SECS to change): checksummed frames at full rate from one process to
## three reader processes (lossless, lossy, latest-only), memory sampled every minute.
SOAK_SECS ?= 600
soak: build
	SHMFRAMES_SOAK_SECS=$(SOAK_SECS) cargo test --release -p shmframes --test many_readers soak -- --ignored --nocapture

## The benchmarks behind the README's performance table (about 25 minutes; run on a quiet
## machine). iceoryx2 is installed into .venv for the side-by-side run only: it is never a
## dependency of shmframes.
bench-deps: setup
	@$(PY) -c 'import iceoryx2' 2>/dev/null || $(VENV)/bin/pip install -q --disable-pip-version-check "iceoryx2==0.10.*"

bench: build bench-deps
	cargo bench --workspace --bench ring --bench convert
	cargo bench -p shmframes --bench cross_thread
	cargo bench -p shmframes-tools --bench pipeline
	OPENBLAS_NUM_THREADS=1 $(PY) benches/python_pipeline.py --json target/readers.json --svg target/readers.svg
	OPENBLAS_NUM_THREADS=1 $(PY) benches/side_by_side.py
	OPENBLAS_NUM_THREADS=1 $(PY) benches/python_slot.py
	OPENBLAS_NUM_THREADS=1 $(PY) benches/latency_cpu.py --json target/latency_cpu.json --svg target/latency_cpu.svg
	OPENBLAS_NUM_THREADS=1 $(PY) benches/python_wake.py
	$(MAKE) gst-bench

## shmframessrc ! fakesink against a plain Rust reader, alternating rounds (about 90 s).
gst-bench: build gst
	cargo bench -p gstshmframes --bench gst_pipeline

## The Windows harness (issue 23), part of `make test`: Windows programs and the core's test suite cross-built with
## mingw-w64 and cargo (x86_64-pc-windows-gnu), run under Wine in a private prefix
## (target/windows/). `make windows-setup` installs it (`bash .ci/setup windows`);
## `bash tests/windows/run.sh --bench` also measures Wine's wake and death-notice latencies.
.PHONY: windows-setup test-windows test-windows-tools
windows-setup:
	@bash .ci/setup windows

## Without a way to install Wine and mingw-w64 (no root, no network), `make test` says so and
## goes on: the Linux suite does not depend on it.
test-windows:
	@if bash .ci/setup windows; then bash tests/windows/run.sh; \
	else echo "test-windows: SKIPPED: the Wine harness could not be installed (see above)" >&2; fi

## The same, with the tools built in the release profile users run (~8-13 minutes here: wgpu,
## nokhwa) instead of `make test`'s unoptimised wine-tools profile (~3 minutes).
test-windows-tools: windows-setup
	@bash tests/windows/run.sh --tools

## The macOS build, checked here without a Mac (see docs/platforms.md for what reaches which
## level): for aarch64-apple-darwin and x86_64-apple-darwin, clippy on the core (its macOS
## backend), cargo check of the core, the Python extension and the C ABI, and a full link
## through cargo-zigbuild (zig's linker and macOS libc stubs; .ci/setup installs both into
## .venv) of the core's test programs, libshmframes.dylib and the Python wheel (maturin
## --zig: the abi3 wheel, which needs no macOS Python); the tools are checked with zig compiling their C parts (their binaries need Apple's
## frameworks, AVFoundation and Metal, to link).
## In target/apple, so that the Linux build in target/ is left alone.
APPLE_TARGETS := aarch64-apple-darwin x86_64-apple-darwin
APPLE_ZIG := CARGO_TARGET_DIR=$(CURDIR)/target/apple PATH=$(CURDIR)/$(VENV)/bin:$$PATH
APPLE_ENV := $(APPLE_ZIG) PYO3_CROSS_PYTHON_VERSION=3.11
apple: setup
	@for t in $(APPLE_TARGETS); do \
		rustup target list --installed 2>/dev/null | grep -qx $$t || rustup target add $$t >/dev/null 2>&1 || \
			{ echo "apple: SKIPPED: the rustup target $$t is not installed and cannot be (rustup target add $$t)"; exit 0; }; \
	done; \
	if ! $(VENV)/bin/cargo-zigbuild --version >/dev/null 2>&1 || ! $(PY) -m ziglang version >/dev/null 2>&1; then \
		echo "apple: SKIPPED: cargo-zigbuild and ziglang are not in $(VENV) (make setup installs them)"; exit 0; fi; \
	set -e; for t in $(APPLE_TARGETS); do \
		echo "apple: $$t: clippy (core), check (core, Python extension, C ABI)"; \
		$(APPLE_ENV) cargo clippy --release -q -p shmframes --target $$t -- -D warnings; \
		$(APPLE_ENV) cargo check --release -q -p shmframes -p shmframes-python -p shmframes-capi --target $$t; \
		echo "apple: $$t: linked through zig: the core's tests, libshmframes.dylib"; \
		$(APPLE_ENV) cargo zigbuild --release -q -p shmframes --tests --target $$t; \
		$(APPLE_ENV) cargo zigbuild --release -q -p shmframes-capi --lib --target $$t; \
		echo "apple: $$t: the tools checked (their C code compiled by zig; linking needs Apple's frameworks)"; \
		$(APPLE_ENV) cargo-zigbuild check --release -q -p shmframes-tools --lib --bins --target $$t; \
		echo "apple: $$t: the Python wheel (maturin --zig)"; \
		$(APPLE_ZIG) $(VENV)/bin/maturin build --release --quiet --zig --target $$t --out target/apple/wheels; \
	done; \
	echo "apple: both Apple targets build (nothing was run: there is no Mac here)"
