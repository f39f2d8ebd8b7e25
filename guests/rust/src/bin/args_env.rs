//! Prints its arguments, environment and initial cwd, then exits with the status named by the
//! `EXIT` variable: `EXIT=code:N` calls `exit-with-code(N)`, `EXIT=err` calls `exit(err)`,
//! `EXIT=std:N` calls `std::process::exit(N)`; otherwise it returns normally.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("args={}", args.join("|"));
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (name, value) in &vars {
        println!("env {name}={value}");
    }
    match std::env::var("EXIT").ok().as_deref().unwrap_or("") {
        "err" => wasip2::cli::exit::exit(Err(())),
        spec if spec.starts_with("code:") => {
            let code: u8 = spec[5..].parse().unwrap_or(99);
            wasip2::cli::exit::exit_with_code(code)
        }
        spec if spec.starts_with("std:") => std::process::exit(spec[4..].parse().unwrap_or(99)),
        _ => {}
    }
}
