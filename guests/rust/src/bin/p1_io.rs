//! Preview1 I/O workloads for `weir-bench p1`, run as a core module (no adapter):
//! - `write TOTAL CHUNK`: TOTAL bytes to stdout in CHUNK-byte `fd_write`s (byte `i` is
//!   `i % 251`), straight to fd 1 with no std buffering in between;
//! - `read PATH CHUNK`: reads the file at PATH in CHUNK-byte `fd_read`s and prints the byte
//!   count and a checksum.
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

fn number(arg: Option<String>, name: &str) -> u64 {
    match arg.as_deref().map(str::parse) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("p1_io: {name} must be a number");
            std::process::exit(2);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("write") => {
            let total = number(args.next(), "TOTAL");
            let chunk = number(args.next(), "CHUNK") as usize;
            let pattern: Vec<u8> = (0..chunk + 251).map(|i| (i % 251) as u8).collect();
            // SAFETY: fd 1 is the preview1 stdout; ManuallyDrop keeps it open.
            let mut out = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
            let mut written = 0u64;
            while written < total {
                let n = (chunk as u64).min(total - written) as usize;
                let phase = (written % 251) as usize;
                if let Err(e) = out.write_all(&pattern[phase..phase + n]) {
                    eprintln!("p1_io: write failed after {written} bytes: {e}");
                    std::process::exit(1);
                }
                written += n as u64;
            }
        }
        Some("read") => {
            let path = args.next().unwrap_or_default();
            let chunk = number(args.next(), "CHUNK") as usize;
            let mut file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) => {
                    eprintln!("p1_io: cannot open {path}: {e}");
                    std::process::exit(1);
                }
            };
            let mut buffer = vec![0u8; chunk];
            let (mut total, mut sum) = (0u64, 0u64);
            loop {
                match file.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        total += n as u64;
                        // One byte per page keeps the checksum honest without dominating.
                        sum = buffer[..n].iter().step_by(4096).fold(sum, |s, &b| s + b as u64);
                    }
                    Err(e) => {
                        eprintln!("p1_io: read failed after {total} bytes: {e}");
                        std::process::exit(1);
                    }
                }
            }
            println!("{total} {sum}");
        }
        _ => {
            eprintln!("usage: p1_io write TOTAL CHUNK | p1_io read PATH CHUNK");
            std::process::exit(2);
        }
    }
}
