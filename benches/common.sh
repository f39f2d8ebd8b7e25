# Shared by the benchmark scripts (sourced, not run): tool installs and small helpers.

# ensure_wrk: installs Debian's `wrk` if missing.
ensure_wrk() {
    if ! command -v wrk >/dev/null 2>&1; then
        local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
    fi
}

# ensure_wasmtime: sets WASMTIME to a wasmtime-cli 48.0.8, installing it (`cargo install`,
# ~11 min cold) if missing.
ensure_wasmtime() {
    WASMTIME="${WASMTIME:-$(command -v wasmtime || echo "$HOME/.cargo/bin/wasmtime")}"
    if ! "$WASMTIME" --version 2>/dev/null | grep -q '^wasmtime 48\.0\.8'; then
        cargo install wasmtime-cli --version 48.0.8 --locked
        WASMTIME="$HOME/.cargo/bin/wasmtime"
    fi
}

# wait_listening PORT: waits until something accepts on 127.0.0.1:PORT (10 s at most).
wait_listening() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# to_ms VALUE: a wrk latency (`812.00us`, `1.20ms`, `2.01s`) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n
    }'
}

# run_wrk URL CONNECTIONS [LUA] -> "requests/s p50_ms p99_ms", for SECONDS_PER_RUN seconds.
run_wrk() {
    local url=$1 conns=$2 script=${3:-}
    local threads=$(( conns < 2 ? 1 : 2 ))
    local out
    out=$(wrk -t"$threads" -c"$conns" -d"${SECONDS_PER_RUN}s" --latency ${script:+-s "$script"} "$url")
    echo "$(awk '/^Requests\/sec/ {print $2}' <<<"$out") \
$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")") $(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
}

# ratio A B: A / B as `1.23x` (`-` when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
