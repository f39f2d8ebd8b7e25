#!/usr/bin/env bash
# WASI 0.3 HTTP: `weir serve` against `wasmtime serve` 48.0.8 (wasmtime-wasi-http's p3) on
# the same `wasi:http/service` component (examples/p3-http.wasm, source guests/p3/http),
# each with its defaults and `-S cli`, in one run, driven by Debian's `wrk`. wasmtime's
# default for 0.3 services reuses an instance for up to 128 requests (16 at once), where
# Weir gives every request a fresh instance (as both do for 0.2); the `wasmtime, isolated`
# column runs wasmtime with one request per instance too
# (`--max-instance-reuse-count 1 --max-instance-concurrent-reuse-count 1`):
# requests/s and p50/p99 latency of `/` at 1, 16 and 64 connections, and `/echo` of 1 MiB
# bodies at 16 connections (request body MB echoed per second). A native Rust row
# (`crates/weir-http/examples/native_http.rs`: the same two handlers on plain hyper, no
# WebAssembly) shows what the server would do without any host.
#
#   benches/p3-http-bench.sh [SECONDS_PER_RUN]     (default 10)
#
# Installs `wrk` (apt) and `wasmtime-cli` 48.0.8 (`cargo install`, ~11 min cold) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
SECONDS_PER_RUN="${1:-10}"
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
ensure_wrk
ensure_wasmtime
cargo build --quiet --release -p weir-cli
cargo build --quiet --release -p weir-http --example native_http
NATIVE=target/release/examples/native_http
SERVICE=examples/p3-http.wasm
LUA=$(mktemp --suffix=.lua)
trap 'rm -f "$LUA"; kill $(jobs -p) 2>/dev/null || true' EXIT
cat >"$LUA" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("w", 1048576)
wrk.headers["content-type"] = "application/octet-stream"
LUA

declare -A RESULT
bench() {
    local name=$1 port=$2; shift 2
    "$@" --addr "127.0.0.1:$port" "$SERVICE" >/dev/null 2>&1 &
    local pid=$!
    wait_listening "$port"
    wrk -t1 -c4 -d2s "http://127.0.0.1:$port/" >/dev/null
    for c in 1 16 64; do
        RESULT[$name,hello,$c]=$(run_wrk "http://127.0.0.1:$port/" "$c")
    done
    wrk -t1 -c2 -d2s -s "$LUA" "http://127.0.0.1:$port/echo" >/dev/null
    RESULT[$name,echo]=$(run_wrk "http://127.0.0.1:$port/echo" 16 "$LUA")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

# native_http serves one handler per process: hello for `/`, echo for `/echo`.
bench_native() {
    "$NATIVE" hello 127.0.0.1:46405 >/dev/null 2>&1 &
    local pid=$!
    wait_listening 46405
    wrk -t1 -c4 -d2s "http://127.0.0.1:46405/" >/dev/null
    for c in 1 16 64; do
        RESULT[native,hello,$c]=$(run_wrk "http://127.0.0.1:46405/" "$c")
    done
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    "$NATIVE" echo 127.0.0.1:46406 >/dev/null 2>&1 &
    pid=$!
    wait_listening 46406
    wrk -t1 -c2 -d2s -s "$LUA" "http://127.0.0.1:46406/echo" >/dev/null
    RESULT[native,echo]=$(run_wrk "http://127.0.0.1:46406/echo" 16 "$LUA")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

bench weir 46401 target/release/weir serve -S cli
bench weirreuse 46404 target/release/weir serve -S cli --max-instance-reuse-count 128 \
    --max-instance-concurrent-reuse-count 16
bench wasmtime 46402 "$WASMTIME" serve -S cli
bench isolated 46403 "$WASMTIME" serve -S cli --max-instance-reuse-count 1 \
    --max-instance-concurrent-reuse-count 1
bench_native

echo "WASI 0.3 HTTP ($SERVICE), ${SECONDS_PER_RUN}s per run, $(nproc) cores"
echo
echo "| load | weir req/s | wasmtime req/s | wasmtime, isolated req/s | weir/wasmtime | weir/isolated | p50 / p99 ms: weir, wasmtime, isolated | p99 weir/isolated |"
echo "|---|---|---|---|---|---|---|---|"
mbps() { awk -v r="$1" 'BEGIN { printf "%.0f", r * 1.048576 }'; }
row() {
    local label=$1 key=$2 unit=${3:-}
    read -r wr w50 w99 <<<"${RESULT[weir,$key]}"
    read -r tr t50 t99 <<<"${RESULT[wasmtime,$key]}"
    read -r ir i50 i99 <<<"${RESULT[isolated,$key]}"
    local ws=$wr ts=$tr is=$ir
    if [ "$unit" = MB ]; then ws=$(mbps "$wr"); ts=$(mbps "$tr"); is=$(mbps "$ir"); fi
    echo "| $label | $ws | $ts | $is | $(ratio "$wr" "$tr") | $(ratio "$wr" "$ir") | $w50 / $w99, $t50 / $t99, $i50 / $i99 | $(ratio "$w99" "$i99") |"
}
for c in 1 16 64; do row "hello, $c conn" "hello,$c"; done
row "echo 1 MiB, 16 conn (MB/s)" echo MB
echo
echo "With reuse on both sides (weir \`--max-instance-reuse-count 128\`, wasmtime's default):"
echo
echo "| load | weir, reuse req/s | wasmtime req/s | native req/s | weir/wasmtime | weir/native | p50 / p99 ms: weir, wasmtime, native | p99 weir/wasmtime |"
echo "|---|---|---|---|---|---|---|---|"
reuse_row() {
    local label=$1 key=$2 unit=${3:-}
    read -r wr w50 w99 <<<"${RESULT[weirreuse,$key]}"
    read -r tr t50 t99 <<<"${RESULT[wasmtime,$key]}"
    read -r nr n50 n99 <<<"${RESULT[native,$key]}"
    local ws=$wr ts=$tr ns=$nr
    if [ "$unit" = MB ]; then ws=$(mbps "$wr"); ts=$(mbps "$tr"); ns=$(mbps "$nr"); fi
    echo "| $label | $ws | $ts | $ns | $(ratio "$wr" "$tr") | $(ratio "$wr" "$nr") | $w50 / $w99, $t50 / $t99, $n50 / $n99 | $(ratio "$w99" "$t99") |"
}
for c in 1 16 64; do reuse_row "hello, $c conn" "hello,$c"; done
reuse_row "echo 1 MiB, 16 conn (MB/s)" echo MB
