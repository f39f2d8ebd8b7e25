#!/usr/bin/env bash
# WASI 0.3 UDP send: the same component (guests/p3/probe, `udp-flood N PORT`: N datagrams
# of 64 B, 64 `send` calls in flight at a time) under `weir run` and `wasmtime run` 48.0.8
# (wasmtime-wasi's p3), and native Rust (crates/weir/examples/native_udp_send.rs, one
# `sendto` per datagram), in one run. The time is measured inside each program.
#
#   benches/p3-udp-bench.sh [DATAGRAMS] [RUNS]     (defaults 200000, 3)
#
# Installs wasmtime-cli 48.0.8 (`cargo install`, ~11 min cold) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
COUNT="${1:-200000}"
RUNS="${2:-3}"
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
ensure_wasmtime
scripts/build-guests.sh
cargo build --quiet --release -p weir-cli
cargo build --quiet --release -p weir --example native_udp_send
NATIVE=target/release/examples/native_udp_send
PROBE=$(mktemp --suffix=.wasm)
trap 'rm -f "$PROBE"; kill $(jobs -p) 2>/dev/null || true' EXIT
cargo run --quiet --release -p weir-test-guests --bin componentize -- --reactor \
    guests/p3/target/wasm32-wasip1/release/p3_probe.wasm "$PROBE"
PORT=45999
"$NATIVE" sink "$PORT" 3600 &
sleep 0.3

# rate OUTPUT -> datagrams per second from "sent N failed F in T ns"
rate() { awk '{ printf "%.0f", $2 / ($6 / 1e9) }' <<<"$1"; }

echo "WASI 0.3 UDP send, $COUNT datagrams of 64 B to a loopback socket, $(nproc) cores"
echo
echo "| run | weir datagrams/s | wasmtime datagrams/s | native datagrams/s | weir/wasmtime | weir/native |"
echo "|---|---|---|---|---|---|"
for run in $(seq 1 "$RUNS"); do
    w=$(target/release/weir run -S inherit-network "$PROBE" udp-flood "$COUNT" "$PORT")
    t=$("$WASMTIME" run -S inherit-network "$PROBE" udp-flood "$COUNT" "$PORT")
    n=$("$NATIVE" send "$COUNT" "$PORT")
    wr=$(rate "$w"); tr=$(rate "$t"); nr=$(rate "$n")
    echo "| $run | $wr | $tr | $nr | $(ratio "$wr" "$tr") | $(ratio "$wr" "$nr") |"
done
