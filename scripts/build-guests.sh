#!/usr/bin/env bash
# Builds the Rust test/example guests for wasm32-wasip1 with Debian's rustc-web (which ships
# the std source for -Zbuild-std), installing that toolchain if it is missing.
# Output: guests/rust/target/wasm32-wasip1/release/*.wasm (core modules; the weir-test-guests
# crate turns them into components with the preview1 adapter).
# Then builds the C guests (guests/c/*.c) with Debian's clang-16 and wasi-libc, installing
# them if missing. Output: guests/c/target/NAME.wasm (preview1 core modules, run as they are).
# Then builds the wasi:http/proxy guests (guests/http/*, reactor cdylibs). Output:
# guests/http/target/wasm32-wasip1/release/http_*.wasm (componentized with the proxy adapter).
# Then the WASI 0.3 guests (guests/p3/*): guests/p3/target/wasm32-wasip1/release/p3_*.wasm
# (componentized with the reactor adapter).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wasi-libc >/dev/null 2>&1; then
    echo "build-guests: installing Debian's rustc-web toolchain and wasi-libc" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wasi-libc >/dev/null
fi

if ! command -v clang-16 >/dev/null 2>&1 || [ ! -f /usr/lib/wasm32-wasi/libc.a ] \
    || ! dpkg -s libclang-rt-16-dev-wasm32 lld-16 >/dev/null 2>&1; then
    echo "build-guests: installing Debian's clang-16 for wasm32-wasi and wasi-libc" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        clang-16 libclang-rt-16-dev-wasm32 lld-16 wasi-libc >/dev/null
fi

mkdir -p guests/c/target
for src in guests/c/*.c; do
    clang-16 --target=wasm32-wasi --sysroot=/usr -I/usr/include/wasm32-wasi \
        -L/usr/lib/wasm32-wasi -fuse-ld=lld -O2 -Wall \
        "$src" -o "guests/c/target/$(basename "$src" .c).wasm"
done

cd guests/rust
# Keep the host toolchain's settings out of the guest build.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_TARGET_DIR RUSTC_WRAPPER CARGO_BUILD_TARGET
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C link-self-contained=no -L native=/usr/lib/wasm32-wasi -C link-arg=/usr/lib/wasm32-wasi/crt1-command.o"
/usr/bin/cargo build --quiet --release --target wasm32-wasip1 -Zbuild-std=std,panic_abort "$@"

# Reactors: no `main`, `_initialize` runs the constructors before the first export call.
cd ../http
export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C link-self-contained=no -L native=/usr/lib/wasm32-wasi -C link-arg=/usr/lib/wasm32-wasi/crt1-reactor.o"
/usr/bin/cargo build --quiet --release --target wasm32-wasip1 -Zbuild-std=std,panic_abort --workspace "$@"

# WASI 0.3 guests: reactors too (their `wasi:cli/run@0.3.0` export comes from `wasip3`).
cd ../p3
/usr/bin/cargo build --quiet --release --target wasm32-wasip1 -Zbuild-std=std,panic_abort --workspace "$@"
