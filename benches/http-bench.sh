#!/usr/bin/env bash
# `weir serve` against `wasmtime serve` 48.0.8 on the same components, same engine settings
# (both defaults: Cranelift, pooling allocator), in one run, driven by Debian's `wrk`.
#
#   benches/http-bench.sh [SECONDS_PER_RUN]     (default 10)
#
# Prints Markdown tables: hello-world requests/s and p50/p99 latency at 1, 16 and 64
# connections, and the echo of 1 MiB bodies in MB/s (request body bytes echoed per second);
# native Rust (`crates/weir-http/examples/native_http.rs`, the same handlers on hyper) as
# the baseline.
# Installs `wrk` (apt) and `wasmtime-cli` 48.0.8 (`cargo install`, ~11 min cold) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
SECONDS_PER_RUN="${1:-10}"
# A backtrace captured per request (wasmtime makes an error when a store is dropped) is not
# what users' servers pay.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

ensure_wrk
ensure_wasmtime
cargo build --quiet --release -p weir-cli
cargo build --quiet --release -p weir-http --example native_http
# The splicing echo (guests/http/echo-splice) is a bench guest, not an example: build it.
scripts/build-guests.sh
ECHO_SPLICE=$(mktemp --suffix=.wasm)
cargo run --quiet --release -p weir-test-guests --bin componentize -- --proxy \
    guests/http/target/wasm32-wasip1/release/http_echo_splice.wasm "$ECHO_SPLICE"
WEIR=target/release/weir
NATIVE=target/release/examples/native_http

LUA=$(mktemp --suffix=.lua)
trap 'rm -f "$LUA" "$ECHO_SPLICE"; kill $(jobs -p) 2>/dev/null || true' EXIT
cat >"$LUA" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("w", 1048576)
wrk.headers["content-type"] = "application/octet-stream"
EOF

# cpu_ticks PID: user + system CPU time of a process so far, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

declare -A RESULT
SERVER_PID=""
# start_server PORT COMMAND...: starts a server and waits until it listens.
start_server() {
    local port=$1; shift
    "$@" >/dev/null 2>&1 &
    SERVER_PID=$!
    wait_listening "$port"
}

stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
}

bench_hello() {
    local name=$1 port=$2; shift 2
    start_server "$port" "$@"
    # Warm up (compilation happens at start; this warms the instance pool).
    wrk -t1 -c4 -d2s "http://127.0.0.1:$port/" >/dev/null
    for c in 1 16 64; do
        local before after result
        before=$(cpu_ticks "$SERVER_PID")
        result=$(run_wrk "http://127.0.0.1:$port/" "$c")
        after=$(cpu_ticks "$SERVER_PID")
        # Server CPU time per request, in µs (requests = rate × duration).
        RESULT[$name,hello,$c]="$result $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
            -v r="${result%% *}" -v d="$SECONDS_PER_RUN" 'BEGIN { printf "%.0f", t / hz * 1e6 / (r * d) }')"
    done
    stop_server
}

bench_echo() {
    local name=$1 port=$2; shift 2
    start_server "$port" "$@"
    wrk -t1 -c2 -d2s -s "$LUA" "http://127.0.0.1:$port/" >/dev/null
    RESULT[$name,echo]=$(run_wrk "http://127.0.0.1:$port/" 16 "$LUA")
    stop_server
}

HELLO=examples/http-hello.wasm
ECHO=examples/http-echo.wasm
bench_hello weir 18081 "$WEIR" serve --addr 127.0.0.1:18081 "$HELLO"
bench_hello wasmtime 18082 "$WASMTIME" serve --addr 127.0.0.1:18082 "$HELLO"
# weir serve batches pooling decommits by default (32); wasmtime serve does not (1). The
# same setting given to wasmtime shows what is engine tuning and what is host work.
bench_hello wasmtime_batched 18087 "$WASMTIME" serve --addr 127.0.0.1:18087 \
    -O pooling-decommit-batch-size=32 "$HELLO"
bench_hello native 18085 "$NATIVE" hello 127.0.0.1:18085
bench_echo native 18086 "$NATIVE" echo 127.0.0.1:18086
bench_echo weir 18083 "$WEIR" serve --addr 127.0.0.1:18083 "$ECHO"
bench_echo wasmtime 18084 "$WASMTIME" serve --addr 127.0.0.1:18084 "$ECHO"
bench_echo weir_splice 18088 "$WEIR" serve --addr 127.0.0.1:18088 "$ECHO_SPLICE"
bench_echo wasmtime_splice 18089 "$WASMTIME" serve --addr 127.0.0.1:18089 "$ECHO_SPLICE"

echo "hello-world ($HELLO), wrk ${SECONDS_PER_RUN}s per row, $(nproc) cores"
echo
echo "| connections | weir req/s | wasmtime req/s | native req/s | weir/wasmtime | weir/native | weir p50 / p99 ms | wasmtime p50 / p99 ms | native p50 / p99 ms | p99 weir/wasmtime | server CPU µs/request weir / wasmtime / native |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for c in 1 16 64; do
    read -r wr w50 w99 wcpu <<<"${RESULT[weir,hello,$c]}"
    read -r tr t50 t99 tcpu <<<"${RESULT[wasmtime,hello,$c]}"
    read -r nr n50 n99 ncpu <<<"${RESULT[native,hello,$c]}"
    echo "| $c | $wr | $tr | $nr | $(ratio "$wr" "$tr") | $(ratio "$wr" "$nr") | $w50 / $w99 | $t50 / $t99 | $n50 / $n99 | $(ratio "$w99" "$t99") | $wcpu / $tcpu / $ncpu |"
done
echo
echo "Same engine setting for both: wasmtime serve -O pooling-decommit-batch-size=32 (weir serve's default)"
echo
echo "| connections | weir req/s | wasmtime req/s | weir/wasmtime | weir p50 / p99 ms | wasmtime p50 / p99 ms | p99 weir/wasmtime |"
echo "|---|---|---|---|---|---|---|"
for c in 1 16 64; do
    read -r wr w50 w99 _ <<<"${RESULT[weir,hello,$c]}"
    read -r tr t50 t99 _ <<<"${RESULT[wasmtime_batched,hello,$c]}"
    echo "| $c | $wr | $tr | $(ratio "$wr" "$tr") | $w50 / $w99 | $t50 / $t99 | $(ratio "$w99" "$t99") |"
done
echo
read -r wr _ _ <<<"${RESULT[weir,echo]}"
read -r tr _ _ <<<"${RESULT[wasmtime,echo]}"
read -r nr _ _ <<<"${RESULT[native,echo]}"
mbps() { awk -v r="$1" 'BEGIN { printf "%.1f", r * 1.048576 }'; }
wmb=$(mbps "$wr"); tmb=$(mbps "$tr"); nmb=$(mbps "$nr")
echo "| echo of 1 MiB bodies, 16 connections | weir MB/s | wasmtime MB/s | native MB/s | weir/wasmtime | weir/native |"
echo "|---|---|---|---|---|---|"
echo "| $ECHO (copies through guest memory) | $wmb | $tmb | $nmb | $(ratio "$wmb" "$tmb") | $(ratio "$wmb" "$nmb") |"
read -r wr _ _ <<<"${RESULT[weir_splice,echo]}"
read -r tr _ _ <<<"${RESULT[wasmtime_splice,echo]}"
wmb=$(mbps "$wr"); tmb=$(mbps "$tr")
echo "| guests/http/echo-splice (\`blocking-splice\`) | $wmb | $tmb | $nmb | $(ratio "$wmb" "$tmb") | $(ratio "$wmb" "$nmb") |"
