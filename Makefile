# The README's commands. Each one installs what it needs first (.ci/setup is idempotent).
.PHONY: setup test test-rust lint

setup:
	@bash .ci/setup

## Whole test suite, on the release profile (one build shared with the binaries and benches).
test: setup test-rust lint

test-rust:
	cargo test --release --all-targets
	cargo test --release --doc

lint:
	cargo clippy --release --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
