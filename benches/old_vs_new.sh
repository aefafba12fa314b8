#!/usr/bin/env bash
# The one-reader pipeline benchmarks of an older revision and of this checkout, in alternating
# rounds of one run: `benches/tools/pipeline.rs` (frame-producer -> Rust Reader) and
# `benches/python_pipeline.py` (-> Python), each revision with its own binaries and wheel.
#
#   benches/old_vs_new.sh OLD_REV [ROUNDS]      (after `make build`; about 3 minutes a round)
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
if [ ! -x "$OLD_VENV/bin/python" ]; then
    python3 -m venv "$OLD_VENV"
    (cd "$OLD_DIR" && .venv/bin/maturin build --release -q -m python/Cargo.toml -o "$OLD_DIR/wheel" --target-dir "$OLD_TARGET" 2>/dev/null \
        || "$PWD/.venv/bin/maturin" build --release -q -m python/Cargo.toml -o "$OLD_DIR/wheel" --target-dir "$OLD_TARGET")
    "$OLD_VENV/bin/pip" install -q "$OLD_DIR"/wheel/*.whl numpy
fi
# The old python_pipeline.py finds its producer under its own tree.
[ -e "$OLD_DIR/target" ] || ln -s "$OLD_TARGET" "$OLD_DIR/target"
cargo bench -q -p shmframes-tools --bench pipeline --no-run 2>/dev/null
newest_bench() { ls -t "$1"/release/deps/pipeline-* | grep -v '\.d$' | head -1; }
OLD_BENCH=$(newest_bench "$OLD_TARGET")
NEW_BENCH=$(newest_bench target)

export OPENBLAS_NUM_THREADS=1
for round in $(seq 1 "$ROUNDS"); do
    for side in old new; do
        if [ $(( round % 2 )) -eq 0 ]; then side=$([ "$side" = old ] && echo new || echo old); fi
        echo "=== round $round: $side"
        if [ "$side" = old ]; then
            "$OLD_BENCH" --bench
            (cd "$OLD_DIR" && "$OLD_VENV/bin/python" benches/python_pipeline.py)
        else
            "$NEW_BENCH" --bench
            .venv/bin/python benches/python_pipeline.py --one-reader
        fi
    done
done
