//! The README's preview1 example: the same greeting, run as a WASI preview1 core module
//! (`wasm32-wasip1` as the compiler left it, no component adapter).
fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "world".to_string());
    println!("Hello, {name}! This is a WASI preview1 module running under Weir.");
}
