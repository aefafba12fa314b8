#!/usr/bin/env bash
# An older revision against this checkout, in alternating rounds of one run (old, new, then
# new, old), each revision with its own binaries, wheel and scripts:
# - `benches/tools/pipeline.rs` (frame-producer -> Rust Reader: throughput, latency) and
#   `benches/python_pipeline.py --one-reader` (-> Python);
# - `benches/liveness.py` (ProducerGone after SIGKILL, room after a reader's SIGKILL, an idle
#   reader's wake-ups and CPU; its kernel-watched column is the product, its polling column
#   the fallback);
# - with MICRO=1, `make bench`'s in-process part: the criterion benchmark `ring` (2 s of
#   measurement per case) and `cross_thread` (3 rounds);
# - with PEERS=1, `benches/side_by_side.py` against iceoryx2 (one short round per side).
#
#   benches/old_vs_new.sh OLD_REV [ROUNDS]      (after `make build`; 3-8 minutes a round)
#
# The old revision is checked out in $OLD_DIR (default /tmp/shmframes-old), built there with its
# own target directory and a virtual environment of its own (the first time: several minutes),
# and left there for the next run. Nothing of it is installed anywhere else.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD_REV=${1:?usage: benches/old_vs_new.sh OLD_REV [ROUNDS]}
ROUNDS=${2:-2}
OLD_DIR=${OLD_DIR:-/tmp/shmframes-old}
OLD_TARGET=${OLD_TARGET:-$OLD_DIR/target}
OLD_VENV=${OLD_VENV:-$OLD_DIR/.venv-bench}

if [ ! -d "$OLD_DIR" ]; then
    git worktree add -q --detach "$OLD_DIR" "$OLD_REV"
fi
if [ ! -x "$OLD_TARGET/release/frame-producer" ]; then
    (cd "$OLD_DIR" && CARGO_TARGET_DIR="$OLD_TARGET" cargo build --release -q -p shmframes-tools --bins --benches)
fi
MICRO=${MICRO:-0}
PEERS=${PEERS:-0}
if [ "$MICRO" = 1 ]; then
    (cd "$OLD_DIR" && CARGO_TARGET_DIR="$OLD_TARGET" cargo bench --no-run -q -p shmframes --bench ring --bench cross_thread)
    cargo bench --no-run -q -p shmframes --bench ring --bench cross_thread
fi
if [ ! -x "$OLD_VENV/bin/python" ]; then
    python3 -m venv "$OLD_VENV"
    (cd "$OLD_DIR" && .venv/bin/maturin build --release -q -m python/Cargo.toml -o "$OLD_DIR/wheel" --target-dir "$OLD_TARGET" 2>/dev/null \
        || "$PWD/.venv/bin/maturin" build --release -q -m python/Cargo.toml -o "$OLD_DIR/wheel" --target-dir "$OLD_TARGET")
    "$OLD_VENV/bin/pip" install -q "$OLD_DIR"/wheel/*.whl numpy
fi
if [ "$PEERS" = 1 ] && ! "$OLD_VENV/bin/python" -c 'import iceoryx2' 2>/dev/null; then
    "$OLD_VENV/bin/pip" install -q --disable-pip-version-check "iceoryx2==0.10.*"
fi
# The old python_pipeline.py finds its producer under its own tree.
[ -e "$OLD_DIR/target" ] || ln -s "$OLD_TARGET" "$OLD_DIR/target"
cargo bench -q -p shmframes-tools --bench pipeline --no-run 2>/dev/null
newest_bench() { ls -t "$1"/release/deps/"${2:-pipeline}"-* | grep -v '\.d$' | head -1; }
OLD_BENCH=$(newest_bench "$OLD_TARGET")
NEW_BENCH=$(newest_bench target)
micro() { # micro TARGET_DIR: the in-process benchmarks of one side, briefly
    "$(newest_bench "$1" ring)" --bench --warm-up-time 1 --measurement-time 2 --noplot \
        --output-format bencher 2>/dev/null | grep "^test "
    CROSS_ROUNDS=3 "$(newest_bench "$1" cross_thread)" --bench 2>/dev/null
}
peers() { # peers PYTHON: one short round of the iceoryx2 side-by-side
    "$1" benches/side_by_side.py --rounds 1 --frames 1500 --latency-frames 300 --idle 5
}

export OPENBLAS_NUM_THREADS=1
for round in $(seq 1 "$ROUNDS"); do
    for side in old new; do
        if [ $(( round % 2 )) -eq 0 ]; then side=$([ "$side" = old ] && echo new || echo old); fi
        echo "=== round $round: $side"
        if [ "$side" = old ]; then
            "$OLD_BENCH" --bench
            (cd "$OLD_DIR" && "$OLD_VENV/bin/python" benches/python_pipeline.py --one-reader)
            (cd "$OLD_DIR" && "$OLD_VENV/bin/python" benches/liveness.py --trials 10 --idle 5 --idle-rounds 1)
            [ "$MICRO" = 1 ] && micro "$OLD_TARGET"
            [ "$PEERS" = 1 ] && (cd "$OLD_DIR" && peers "$OLD_VENV/bin/python")
        else
            "$NEW_BENCH" --bench
            .venv/bin/python benches/python_pipeline.py --one-reader
            .venv/bin/python benches/liveness.py --trials 10 --idle 5 --idle-rounds 1
            [ "$MICRO" = 1 ] && micro target
            [ "$PEERS" = 1 ] && peers .venv/bin/python
        fi
        true
    done
done
