//! Writes `TOTAL` bytes (argument 1, default 64 MiB) to stdout in chunks of at most `CHUNK`
//! bytes (argument 2, default 64 KiB) with the check-write / write loop, waiting on the
//! stream's pollable whenever the permit is 0. Byte `i` of the output is `i % 251`, so the
//! receiver can check that everything arrived intact and in order.
use wasip2::cli::stdout::get_stdout;

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64 << 20);
    let chunk: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64 << 10);
    // One pattern buffer covering every phase of `i % 251` for any chunk start.
    let pattern: Vec<u8> = (0..chunk + 251).map(|i| (i % 251) as u8).collect();
    let stdout = get_stdout();
    let pollable = stdout.subscribe();
    let mut written: u64 = 0;
    while written < total {
        let permit = match stdout.check_write() {
            Ok(0) => {
                pollable.block();
                continue;
            }
            Ok(n) => n,
            Err(e) => {
                eprintln!("check-write failed after {written} bytes: {e:?}");
                std::process::exit(1);
            }
        };
        let n = permit.min(chunk as u64).min(total - written) as usize;
        let phase = (written % 251) as usize;
        if let Err(e) = stdout.write(&pattern[phase..phase + n]) {
            eprintln!("write failed after {written} bytes: {e:?}");
            std::process::exit(1);
        }
        written += n as u64;
    }
    drop(pollable);
    if let Err(e) = stdout.blocking_flush() {
        eprintln!("flush failed: {e:?}");
        std::process::exit(1);
    }
}
