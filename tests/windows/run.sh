#!/usr/bin/env bash
# The Windows harness (`make test-windows`): builds the Windows programs with mingw-w64 and
# cargo (x86_64-pc-windows-gnu) and runs them under Wine in the private prefix made by
# tests/windows/setup.sh. What it proves today (the core itself is not ported yet):
#   1. a cross-built Rust program runs (std through the ProcessPrng stand-in, threads, a named
#      file mapping seen through two views);
#   2. the embeddable CPython 3.13 imports numpy 2.1.3, computes, and views a mapping;
#   3. the cpp_py_shmbuf-compatible raw producer and consumer (tests/windows/cpp) interoperate,
#      as Win32 programs under Wine and as their POSIX build on Linux;
#   4. a mapping's name goes with its last handle, not its last view (docs/windows.md relies on
#      it: a restarted producer gets its name back once readers closed their handles);
#   5. the session's named mappings can be listed (NtQueryDirectoryObject), as --list will;
#   6. (information only) whether placeholders work (VirtualAlloc2), for lending frames;
#   7. the core's own test suite (unit and integration tests), cross-built, under Wine;
#   8. the tools cross-built (profile wine-tools: unoptimised, ~3 minutes here; with --tools,
#      the release build users run, ~8-13 minutes), frame-producer.exe feeds frame-stats.exe;
#   9. the Python wheel (abi3) in the embeddable CPython with numpy: frames from a Python
#      producer and from frame-producer.exe; an idle reader's wake-ups (0) and
#      ProducerGone after `taskkill /F`; ProducerGone after TerminateProcess; `python -m
#      shmframes.view --headless` on frame-producer.exe;
#  10. the GStreamer plugin type-checked for Windows (not linked: no GStreamer SDK here).
#   --bench also measures Wine's cross-process wake and death-notice latencies (p50/p99).
# Build products go to target/windows/ (bin/, linux/, cargo/). Wine is stopped at the end.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
win="${SHMFRAMES_WINDOWS_DIR:-$root/target/windows}"
bench=0
tools=0
rounds=200
for a in "$@"; do
    case "$a" in
        --bench) bench=1 ;;
        --tools) tools=1 ;;
        --rounds=*) rounds="${a#--rounds=}" ;;
        *) echo "usage: $0 [--tools] [--bench] [--rounds=N]" >&2; exit 2 ;;
    esac
done
if [ ! -f "$win/env.sh" ] || [ ! -x /usr/lib/wine/wine64 ]; then
    echo "test-windows: the Wine harness is not set up: run 'bash .ci/setup windows' (or make windows-setup)" >&2
    exit 2
fi
# shellcheck source=/dev/null
. "$win/env.sh"
run="$here/wine-run"
bin="$win/bin"
mkdir -p "$bin" "$win/linux"
trap '/usr/lib/wine/wineserver64 -k 2>/dev/null || true' EXIT
failed=0
# A Linux path as a Windows program sees it (Wine's drive Z: is the Unix root).
winepath_of() { local p="${1//\//\\}"; echo "Z:$p"; }
step() { printf '\n== %s\n' "$*"; }
check() { # check DESCRIPTION COMMAND...: runs, reports, counts failures
    local what="$1" t0 rc
    shift
    t0=$(date +%s%N)
    set +e
    "$@"
    rc=$?
    set -e
    printf -- '-- %s: %s (%d ms)\n' "$what" "$([ $rc -eq 0 ] && echo ok || echo "FAILED, exit $rc")" \
        $(( ($(date +%s%N) - t0) / 1000000 ))
    [ $rc -eq 0 ] || failed=$((failed + 1))
}
# build OUT SOURCE COMPILER FLAGS...: compiles when a source is newer than OUT.
build() {
    local out="$1" src="$2" cc="$3"
    shift 3
    if [ ! -f "$out" ] || [ "$src" -nt "$out" ] || [ "$here/cpp/shmring.h" -nt "$out" ] \
        || [ "$here/bench/common.h" -nt "$out" ]; then
        "$cc" "$src" -o "$out" "$@"
    fi
}

step "build"
t0=$(date +%s%N)
for p in raw_producer raw_consumer; do
    build "$bin/$p.exe" "$here/cpp/$p.cpp" x86_64-w64-mingw32-g++ -std=c++14 -O2 -Wall -Wextra -static
    build "$win/linux/$p" "$here/cpp/$p.cpp" g++ -std=c++14 -O2 -Wall -Wextra
done
for p in wake_latency death_latency name_lifetime list_sections placeholders; do
    build "$bin/$p.exe" "$here/bench/$p.c" x86_64-w64-mingw32-gcc -O2 -Wall -lntdll
done
CARGO_TARGET_DIR="$win/cargo" cargo build --quiet --release --target x86_64-pc-windows-gnu \
    --manifest-path "$here/smoke/Cargo.toml"
echo "-- built in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

step "1. a Rust program cross-built for Windows, under Wine (cargo's runner: tests/windows/wine-run)"
smoke() { CARGO_TARGET_DIR="$win/cargo" cargo "$1" --quiet --release --target x86_64-pc-windows-gnu \
    --manifest-path "$here/smoke/Cargo.toml"; }
check "cargo run (smoke.exe)" smoke run
check "cargo test (its unit test)" smoke test

step "2. the embeddable CPython 3.13 + numpy 2.1.3, under Wine"
check "python.exe check_numpy.py" "$run" "$win/python/python.exe" "$here/python/check_numpy.py"

step "3. raw channels, cpp_py_shmbuf's layout: producer -> consumer"
raw_pair() { # raw_pair RUNNER PRODUCER CONSUMER NAME W H COUNT IN_RING
    local runner="$1" prod="$2" cons="$3" name="$4" p rc
    shift 4
    $runner "$prod" "$name" "$@" 20 &
    p=$!
    set +e
    $runner "$cons" "$name" "$1" "$2" "$3" 20
    rc=$?
    wait $p || rc=1
    set -e
    return $rc
}
n="shmframes-wine-raw-$$"
check "Windows, 320x240 BGR x 100 (5 frames in the ring)" \
    raw_pair "$run" "$bin/raw_producer.exe" "$bin/raw_consumer.exe" "$n-a" 320 240 100 5
check "Windows, 33x7 BGR x 300, messages split at the ring's end" \
    raw_pair "$run" "$bin/raw_producer.exe" "$bin/raw_consumer.exe" "$n-b" 33 7 300 2
check "Linux build, 320x240 BGR x 100 (shm_open)" \
    raw_pair "" "$win/linux/raw_producer" "$win/linux/raw_consumer" "$n-c" 320 240 100 5
check "Linux build, 33x7 BGR x 300, split messages" \
    raw_pair "" "$win/linux/raw_producer" "$win/linux/raw_consumer" "$n-d" 33 7 300 2

step "4. a mapping's name lives as long as its handles (views do not keep it)"
names() {
    local out
    out="$("$run" "$bin/name_lifetime.exe")" || return 1
    echo "$out"
    grep -q "keeps its handle.*OpenFileMapping finds the old mapping.*ERROR_ALREADY_EXISTS" <<<"$out" &&
        grep -q "closed its handle.*OpenFileMapping fails; CreateFileMapping makes a fresh one.*old view still reads 42" <<<"$out"
}
check "name_lifetime.exe" names

step "5. the session's named mappings can be listed (frame-stats --list, docs/windows.md)"
check "list_sections.exe" "$run" "$bin/list_sections.exe"

step "6. (information, not a check) placeholders for taking lent windows back (lend.rs)"
"$run" "$bin/placeholders.exe" || echo "-- placeholders: not available here (Wine 8 refuses MEM_RESERVE_PLACEHOLDER; docs/windows.md)"

step "7. the core's test suite (shmframes: unit and integration tests), cross-built, under Wine"
# The same target directory as the smoke crate: one Windows build of the dependencies.
# The chaos test runs 15 s here instead of 60 (Linux runs it in full).
core_tests() { SHMFRAMES_RAW_PEERS="$(winepath_of "$bin")" SHMFRAMES_CHAOS_SECS=15 CARGO_TARGET_DIR="$win/cargo" cargo test --quiet --release -p shmframes \
    --target x86_64-pc-windows-gnu --lib --tests --manifest-path "$root/Cargo.toml"; }
check "cargo test -p shmframes --target x86_64-pc-windows-gnu" core_tests
core_clippy() { CARGO_TARGET_DIR="$win/cargo" cargo clippy --quiet --release -p shmframes \
    --target x86_64-pc-windows-gnu --lib --tests --manifest-path "$root/Cargo.toml" -- -D warnings; }
check "cargo clippy -p shmframes --target x86_64-pc-windows-gnu (the Windows backend's lints)" core_clippy

if [ $tools -eq 1 ]; then profile=release; else profile=wine-tools; fi
step "8. the tools for Windows (cargo build --profile $profile --bins), under Wine: frame-producer.exe -> frame-stats.exe"
tools() { (cd "$root" && CARGO_TARGET_DIR="$win/cargo" cargo build --quiet --profile "$profile" \
    --target x86_64-pc-windows-gnu --bins); }
check "cargo build --profile $profile --target x86_64-pc-windows-gnu --bins" tools
tbin="$win/cargo/x86_64-pc-windows-gnu/$profile"
pipeline() { # 120 frames at 60 fps into frame-stats, which stops after 60
    local n="shmframes-wine-tools-$$" p rc=0 err
    # As a user runs them: nothing but the ProcessPrng stand-in beside the executables.
    cp "$win/dll/bcryptprimitives.dll" "$tbin/"
    # frame-stats first (it waits for the channel): a late start cannot cost it frames.
    local log="$win/pipeline-$$.log"
    WINE_RUN_BESIDE=1 "$run" "$tbin/frame-stats.exe" "$n" --frames 60 --timeout 30 >/dev/null 2>"$log" &
    p=$!
    sleep 1
    WINE_RUN_BESIDE=1 "$run" "$tbin/frame-producer.exe" --synthetic --size 320x240 --fps 60 --name "$n" \
        --frames 120 >/dev/null || rc=1
    wait $p || rc=1
    err="$(cat "$log")"
    rm -f "$log"
    echo "$err" | tail -2
    # The last line: "total: 60 frames in ... (...; M of them published before attaching, ...)".
    grep -q "total: 60 frames in" <<<"$(tail -1 <<<"$err")" || rc=1
    return $rc
}
check "frame-producer.exe --synthetic --size 320x240 --fps 60 --frames 120 | frame-stats.exe --frames 60" pipeline

step "9. the Python wheel (maturin, abi3) in the embeddable CPython 3.13 + numpy 2.1.3, under Wine"
wheel() {
    rm -rf "$win/wheels" && (cd "$root" && CARGO_TARGET_DIR="$win/cargo" "$root/.venv/bin/maturin" \
        build --release --quiet --target x86_64-pc-windows-gnu \
        --out "$win/wheels") &&
        ls "$win"/wheels/shmframes-*-abi3-win_amd64.whl >/dev/null &&
        rm -rf "$win/python/shmframes" && mkdir -p "$win/python/shmframes" &&
        python3 -m zipfile -e "$(ls "$win"/wheels/shmframes-*.whl | head -1)" "$win/python/shmframes"
}
check "maturin build --release --target x86_64-pc-windows-gnu (abi3), unpacked" wheel
k=0
for producer in python "$(winepath_of "$tbin/frame-producer.exe")"; do
    k=$((k + 1))
    check "python.exe check_frames.py ($(basename "${producer//\\//}")): 100 frames, white bar, 0 wake-ups idle, ProducerGone after taskkill /F and TerminateProcess" \
        "$run" "$win/python/python.exe" "$here/python/check_frames.py" "$producer" "shmframes-wine-py-$$-$k"
done

view() { # python -m shmframes.view --headless on frame-producer.exe: its last line counts 60 frames
    local n="shmframes-wine-view-$$" p rc=0 out
    # (10 s of frames: room for a slow start of Python under a loaded machine)
    "$run" "$tbin/frame-producer.exe" --synthetic --size 320x240 --fps 60 --name "$n" --frames 600 \
        >/dev/null 2>&1 &
    p=$!
    out="$("$run" "$win/python/python.exe" -m shmframes.view "$n" --headless --frames 60 2>&1)" || rc=1
    wait $p || rc=1
    tail -1 <<<"$out"
    grep -q "total: 60 frames in" <<<"$(tail -1 <<<"$out")" || rc=1
    return $rc
}
check "python.exe -m shmframes.view --headless --frames 60 (frame-producer.exe)" view

step "10. the GStreamer plugin for Windows, type-checked (cargo check: GStreamer's Windows SDK is not here to link it)"
# pkg-config cannot answer for the target without the SDK: each library is named by hand
# (system-deps' override), which is all a check needs (nothing is linked).
gst_check() ( # (a subshell: the overrides stay here)
    local l k
    for l in GLIB_2_0:glib-2.0 GOBJECT_2_0:gobject-2.0 GIO_2_0:gio-2.0 GMODULE_2_0:gmodule-2.0 \
        GSTREAMER_1_0:gstreamer-1.0 GSTREAMER_BASE_1_0:gstbase-1.0 GSTREAMER_VIDEO_1_0:gstvideo-1.0; do
        k="${l%%:*}"
        export "SYSTEM_DEPS_${k}_NO_PKG_CONFIG=1" "SYSTEM_DEPS_${k}_LIB=${l#*:}"
    done
    cd "$root" && CARGO_TARGET_DIR="$win/cargo" cargo check --quiet -p gstshmframes --target x86_64-pc-windows-gnu
)
check "cargo check -p gstshmframes --target x86_64-pc-windows-gnu" gst_check

if [ $bench -eq 1 ]; then
    step "measurements (Wine $(/usr/lib/wine/wine64 --version 2>/dev/null), $rounds rounds)"
    check "wake latency" "$run" "$bin/wake_latency.exe" "$rounds"
    check "death latency" "$run" "$bin/death_latency.exe" "$rounds"
fi

echo
if [ $failed -gt 0 ]; then
    echo "test-windows: $failed check(s) FAILED"
    exit 1
fi
echo "test-windows: all checks passed"
