#!/usr/bin/env bash
# WASI 0.3 streams: the same component (guests/p3/probe) under `weir run` and `wasmtime run`
# 48.0.8 (wasmtime-wasi's p3), and native Rust (crates/weir/examples/native_streams.rs)
# doing the same calls, in one run. Each program times its own transfer.
#
# - stdout: 1 GiB in 1 MiB writes to a pipe of PIPE bytes (1 MiB by default, as the 0.2
#   stdout benchmark; 65536 for Linux's default), read to its end by native_streams, which
#   checks the byte count;
# - TCP send: 1 GiB to a loopback sink (1 MiB writes), until the `send` future resolves;
# - TCP receive: 1 GiB from a loopback source (64 KiB reads), until the peer's FIN;
# - UDP receive: 64 B datagrams counted for 1 s from a loopback sender sending flat out.
#
#   benches/p3-stream-bench.sh [RUNS] [PIPE]     (defaults 3, 1048576)
#
# Installs wasmtime-cli 48.0.8 (`cargo install`, ~11 min cold) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
RUNS="${1:-3}"
PIPE="${2:-1048576}"
GIB=1073741824
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
ensure_wasmtime
scripts/build-guests.sh
cargo build --quiet --release -p weir-cli
cargo build --quiet --release -p weir --example native_streams
NATIVE=target/release/examples/native_streams
PROBE=$(mktemp --suffix=.wasm)
trap 'rm -f "$PROBE"; kill $(jobs -p) 2>/dev/null || true' EXIT
cargo run --quiet --release -p weir-test-guests --bin componentize -- --reactor \
    guests/p3/target/wasm32-wasip1/release/p3_probe.wasm "$PROBE"
SINK=46101 SOURCE=46102 UDP=46103
"$NATIVE" tcp-sink "$SINK" &
"$NATIVE" tcp-source "$SOURCE" "$GIB" &
sleep 0.3

WEIR=(target/release/weir run -S inherit-network "$PROBE")
WASMTIME_RUN=("$WASMTIME" run -S inherit-network "$PROBE")

# ns LINE -> the time in "... in T ns..."
ns() { sed -E 's/.* in ([0-9]+) ns.*/\1/' <<<"$1"; }
gbps() { awk -v t="$1" 'BEGIN { printf "%.2f", 1073741824 / t }'; }
# stdout HOST... -> ns of a 1 GiB stdout write through the pipe
stdout_ns() { ns "$("$NATIVE" pipe-run "$PIPE" "$@" 2>&1 >/dev/null | grep ' in ')"; }
udp_rate() {
    "$NATIVE" udp-blast "$UDP" &
    local blaster=$!
    local line
    line=$("$@")
    kill "$blaster"; wait "$blaster" 2>/dev/null || true
    awk '{ printf "%.0f", $2 / ($4 / 1e9) }' <<<"$line"
}

echo "WASI 0.3 streams, $(nproc) cores; stdout pipe $PIPE bytes"
echo
echo "| run | transfer | weir | wasmtime | native | weir/wasmtime | weir/native |"
echo "|---|---|---|---|---|---|---|"
for run in $(seq 1 "$RUNS"); do
    w=$(stdout_ns "${WEIR[@]}" stdout-bench "$GIB")
    t=$(stdout_ns "${WASMTIME_RUN[@]}" stdout-bench "$GIB")
    n=$(stdout_ns "$NATIVE" stdout "$GIB")
    wg=$(gbps "$w"); tg=$(gbps "$t"); ng=$(gbps "$n")
    echo "| $run | stdout 1 GiB (GB/s) | $wg | $tg | $ng | $(ratio "$wg" "$tg") | $(ratio "$wg" "$ng") |"

    w=$(ns "$("${WEIR[@]}" tcp-send "$SINK" "$GIB")")
    t=$(ns "$("${WASMTIME_RUN[@]}" tcp-send "$SINK" "$GIB")")
    n=$(ns "$("$NATIVE" tcp-send "$SINK" "$GIB")")
    wg=$(gbps "$w"); tg=$(gbps "$t"); ng=$(gbps "$n")
    echo "| $run | TCP send 1 GiB (GB/s) | $wg | $tg | $ng | $(ratio "$wg" "$tg") | $(ratio "$wg" "$ng") |"

    w=$(ns "$("${WEIR[@]}" tcp-receive "$SOURCE")")
    t=$(ns "$("${WASMTIME_RUN[@]}" tcp-receive "$SOURCE")")
    n=$(ns "$("$NATIVE" tcp-receive "$SOURCE")")
    wg=$(gbps "$w"); tg=$(gbps "$t"); ng=$(gbps "$n")
    echo "| $run | TCP receive 1 GiB (GB/s) | $wg | $tg | $ng | $(ratio "$wg" "$tg") | $(ratio "$wg" "$ng") |"

    w=$(udp_rate "${WEIR[@]}" udp-receive "$UDP" 1000)
    t=$(udp_rate "${WASMTIME_RUN[@]}" udp-receive "$UDP" 1000)
    n=$(udp_rate "$NATIVE" udp-receive "$UDP" 1000)
    echo "| $run | UDP receive 64 B (datagrams/s) | $w | $t | $n | $(ratio "$w" "$t") | $(ratio "$w" "$n") |"
done
