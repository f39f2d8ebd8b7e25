#!/usr/bin/env bash
# The whole test suite: builds the guest programs (installing their toolchain if missing),
# checks formatting and lints, then runs every test (unit, integration, CLI, doc) in release
# mode, where Wasmtime compiles guests fast.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== guests"
./scripts/build-guests.sh

echo "== format"
cargo fmt --all --check

echo "== clippy"
cargo clippy --all-targets --release -- -D warnings

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "== installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

echo "== tests"
cargo nextest run --release --no-fail-fast
cargo test --release --doc
