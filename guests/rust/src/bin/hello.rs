//! The README's example: greets whoever is named on the command line.
fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "world".to_string());
    println!("Hello, {name}! This is a WASI 0.2 component running under Weir.");
}
