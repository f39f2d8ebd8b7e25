//! TCP benchmark: loopback stream throughput in both directions, 64 KiB writes.
//!
//! `guest → native`: the `tcp_flood send` guest connects to a native listener and writes
//! TOTAL bytes (check-write/write, at most 64 KiB per write); a native thread reads them to
//! the end. `native → guest`: a native thread accepts the `tcp_flood receive` guest's
//! connection and writes TOTAL bytes in 64 KiB writes; the guest reads until the end. The
//! native baseline replaces the guest with a native client doing the same. Each run is timed
//! from the start of the guest (after compilation) or native client until the last byte was
//! read.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::udp::median;
use crate::{arg, run_guest};

const CHUNK: usize = 64 << 10;
const HOSTS: [&str; 3] = ["native", "wasmtime-wasi", "weir"];

/// Reads everything from the first connection to `listener`; returns the byte count.
fn read_all(listener: TcpListener) -> std::thread::JoinHandle<Result<u64>> {
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept()?;
        let mut buffer = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buffer)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    })
}

/// Writes `total` bytes to `stream` in writes of at most 64 KiB.
fn write_chunks(stream: &mut TcpStream, total: u64) -> Result<()> {
    let buffer = vec![0xa5u8; CHUNK];
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(CHUNK as u64) as usize;
        stream.write_all(&buffer[..n])?;
        sent += n as u64;
    }
    Ok(())
}

/// Writes `total` bytes to the first connection to `listener`, then closes it.
fn write_all(listener: TcpListener, total: u64) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || write_chunks(&mut listener.accept()?.0, total))
}

/// One guest → native run; returns the elapsed time until the reader saw the end.
fn send_once(host: &str, total: u64) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let reader = read_all(listener);
    let mut start = Instant::now();
    match host {
        "native" => write_chunks(&mut TcpStream::connect(address)?, total)?,
        guest_host => {
            let args = [
                "send".to_string(),
                address.to_string(),
                total.to_string(),
                CHUNK.to_string(),
            ];
            // Timed from the guest's start, after compilation.
            run_guest("tcp_flood", guest_host, &args, || start = Instant::now())?;
        }
    }
    let received = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
    let elapsed = start.elapsed();
    if received != total {
        bail!("{host}: the reader got {received} of {total} bytes");
    }
    Ok(elapsed)
}

/// One native → guest run; returns the elapsed time until the guest read the end.
fn receive_once(host: &str, total: u64) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let writer = write_all(listener, total);
    let mut start = Instant::now();
    let received = match host {
        "native" => {
            let mut stream = TcpStream::connect(address)?;
            let mut buffer = vec![0u8; CHUNK];
            let mut received = 0u64;
            loop {
                match stream.read(&mut buffer)? {
                    0 => break received,
                    n => received += n as u64,
                }
            }
        }
        guest_host => {
            let args = ["receive".to_string(), address.to_string()];
            let (_, out) = run_guest("tcp_flood", guest_host, &args, || start = Instant::now())?;
            out.trim()
                .parse()
                .with_context(|| format!("{guest_host} printed `{out}`"))?
        }
    };
    let elapsed = start.elapsed();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    if received != total {
        bail!("{host}: the guest read {received} of {total} bytes");
    }
    Ok(elapsed)
}

pub fn bench(args: &[String]) -> Result<()> {
    let total = arg(args, 0, 1 << 30)?;
    let runs = arg(args, 1, 3)? as usize;
    // Fail before any timing if the guest is missing.
    weir_test_guests::rust_guest("tcp_flood").map_err(|e| anyhow::anyhow!("{e:#}"))?;
    type Run = fn(&str, u64) -> Result<Duration>;
    let directions: [(&str, Run); 2] = [
        ("guest → native", send_once),
        ("native → guest", receive_once),
    ];
    for (direction, run) in directions {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); HOSTS.len()];
        for _ in 0..runs {
            for (i, host) in HOSTS.iter().enumerate() {
                if std::env::var("BENCH_ONLY").is_ok_and(|only| only != *host) {
                    samples[i].push(f64::NAN);
                    continue;
                }
                let elapsed = run(host, total)?;
                samples[i].push(total as f64 / elapsed.as_secs_f64() / 1e9);
            }
        }
        let medians: Vec<f64> = samples.into_iter().map(median).collect();
        println!(
            "tcp {direction}: {} MiB over loopback in 64 KiB writes, {runs} runs (median)",
            total >> 20
        );
        println!("| host | GB/s | vs wasmtime-wasi | vs native |");
        println!("|---|---|---|---|");
        for (host, rate) in HOSTS.iter().zip(&medians) {
            println!(
                "| {host} | {rate:.2} | {:.2}x | {:.2}x |",
                rate / medians[1],
                rate / medians[0]
            );
        }
        println!();
    }
    Ok(())
}
