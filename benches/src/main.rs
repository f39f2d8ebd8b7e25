//! Side-by-side benchmarks: the same guest under Weir and under wasmtime-wasi 48 (same
//! engine, same process image), plus a native Rust program doing the same work.
//!
//! `weir-bench stdout [TOTAL_BYTES] [CHUNK_BYTES] [RUNS] [pipe|null]`: the `stdout_flood`
//! guest writes TOTAL bytes (default 1 GiB) to stdout in CHUNK-byte writes (default 64 KiB)
//! with the check-write/write loop. Each run is a child process whose stdout is a pipe that
//! this process drains and counts (or `/dev/null`); the child times the run and reports it on
//! stderr. `WEIR_STDIO_THREAD_ONLY=1` makes Weir hand every write to its writer thread (the
//! path before direct writes), to compare both. Prints GB/s
//! (best and median of RUNS) and the ratios.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};

mod cache;
mod density;
mod p1;
mod tcp;
mod udp;

pub(crate) const HOSTS: [&str; 3] = ["native", "wasmtime-wasi", "weir"];
const PIPE_BYTES: usize = 1 << 20;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stdout") => stdout_bench(&args[1..]),
        Some("child-stdout") => child_stdout(&args[1..]),
        Some("udp-send") => udp::send_bench(&args[1..]),
        Some("udp-receive") => udp::receive_bench(&args[1..]),
        Some("tcp") => tcp::bench(&args[1..]),
        Some("p1") => p1::bench(&args[1..]),
        Some("cache") => cache::bench(&args[1..]),
        Some("density") => density::bench(&args[1..]),
        Some("child-density") => density::child(&args[1..]),
        Some("child-p1") => p1::child(&args[1..]),
        _ => bail!(
            "usage: weir-bench stdout [TOTAL_BYTES] [CHUNK_BYTES] [RUNS] [pipe|null]\n       \
             weir-bench udp-send [COUNT] [RUNS]\n       weir-bench udp-receive [MILLIS] [RUNS]\n       \
             weir-bench tcp [TOTAL_BYTES] [RUNS]\n       weir-bench p1 [RUNS]\n       weir-bench cache [RUNS] [FUNCTIONS]\n       \
             weir-bench density [COUNTS] [ECHOES] [RUNS]"
        ),
    }
}

pub(crate) fn arg(args: &[String], i: usize, default: u64) -> Result<u64> {
    match args.get(i) {
        Some(value) => value.parse().with_context(|| format!("argument `{value}`")),
        None => Ok(default),
    }
}

fn stdout_bench(args: &[String]) -> Result<()> {
    let total = arg(args, 0, 1 << 30)?;
    let chunk = arg(args, 1, 64 << 10)?;
    let runs = arg(args, 2, 5)?;
    let sink = match args.get(3).map(String::as_str) {
        None | Some("pipe") => Sink::Pipe,
        Some("null") => Sink::DevNull,
        Some(other) => bail!("stdout sink `{other}`: expected `pipe` or `null`"),
    };
    // Build the guest once up front so a missing guest fails before any timing.
    weir_test_guests::rust_guest("stdout_flood").map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let exe = std::env::current_exe()?;
    let mut results: Vec<(&str, Vec<f64>)> = HOSTS.iter().map(|h| (*h, Vec::new())).collect();
    // Interleave hosts so that machine noise spreads evenly.
    for _ in 0..runs {
        for (host, samples) in results.iter_mut() {
            let child_args = [
                "child-stdout".to_string(),
                host.to_string(),
                total.to_string(),
                chunk.to_string(),
            ];
            let run = time_child_to(&exe, &child_args, host, sink)?;
            if sink == Sink::Pipe && run.received != total {
                bail!("{host}: {} of {total} bytes received", run.received);
            }
            let ns = run.elapsed_ns;
            samples.push(total as f64 / ns as f64); // bytes per ns = GB/s
        }
    }
    let stat = |samples: &[f64]| {
        let mut sorted = samples.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        (sorted[sorted.len() - 1], sorted[sorted.len() / 2])
    };
    let (native_best, native_median) = stat(&results[0].1);
    let (wasi_best, wasi_median) = stat(&results[1].1);
    println!(
        "stdout: {} MiB in {} KiB writes, {runs} runs, {}",
        total >> 20,
        chunk >> 10,
        match sink {
            Sink::Pipe => "1 MiB pipe to a draining reader",
            Sink::DevNull => "to /dev/null",
        }
    );
    println!(
        "| host | best GB/s | median GB/s | best vs wasmtime-wasi | best vs native | median vs wasmtime-wasi | median vs native |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (host, samples) in &results {
        let (best, median) = stat(samples);
        println!(
            "| {host} | {best:.2} | {median:.2} | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            best / wasi_best,
            best / native_best,
            median / wasi_median,
            median / native_median
        );
    }
    Ok(())
}

/// One timed child run: how long the child said its work took, and what it wrote to stdout.
pub(crate) struct ChildRun {
    pub(crate) elapsed_ns: u64,
    pub(crate) received: u64,
    /// The first 4 KiB of the child's stdout.
    pub(crate) head: Vec<u8>,
}

/// Runs this binary with `args` in a child process whose stdout is a 1 MiB pipe that this
/// process drains and counts; the child reports `elapsed_ns=N` on stderr (other stderr lines
/// are echoed, prefixed with `label`). A child that fails is an error.
pub(crate) fn time_child(exe: &std::path::Path, args: &[String], label: &str) -> Result<ChildRun> {
    time_child_to(exe, args, label, Sink::Pipe)
}

/// Where a timed child's stdout goes.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Sink {
    /// A 1 MiB pipe this process drains and counts.
    Pipe,
    /// `/dev/null` (nothing is counted: `received` is 0).
    DevNull,
}

/// [`time_child`] with the child's stdout going to `sink`.
pub(crate) fn time_child_to(
    exe: &std::path::Path,
    args: &[String],
    label: &str,
    sink: Sink,
) -> Result<ChildRun> {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(match sink {
            Sink::Pipe => Stdio::piped(),
            Sink::DevNull => Stdio::from(std::fs::File::create("/dev/null")?),
        })
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take();
    // A 1 MiB pipe (Linux default: 64 KiB) so that the measurement is the host's cost, not
    // the ping-pong of a nearly full pipe; the same for every host.
    if let Some(stdout) = &stdout {
        rustix::pipe::fcntl_setpipe_size(stdout, PIPE_BYTES)?;
    }
    let counter = std::thread::spawn(move || -> std::io::Result<(u64, Vec<u8>)> {
        let Some(mut stdout) = stdout else {
            return Ok((0, Vec::new()));
        };
        let mut buffer = vec![0u8; 1 << 20];
        let (mut count, mut head) = (0u64, Vec::new());
        loop {
            match stdout.read(&mut buffer)? {
                0 => return Ok((count, head)),
                n => {
                    let keep = n.min(4096usize.saturating_sub(head.len()));
                    head.extend_from_slice(&buffer[..keep]);
                    count += n as u64;
                }
            }
        }
    });
    let stderr = BufReader::new(child.stderr.take().context("child stderr")?);
    let mut elapsed_ns = None;
    for line in stderr.lines() {
        let line = line?;
        match line.strip_prefix("elapsed_ns=") {
            Some(ns) => elapsed_ns = Some(ns.parse::<u64>()?),
            None => eprintln!("[{label}] {line}"),
        }
    }
    let status = child.wait()?;
    let (received, head) = counter
        .join()
        .map_err(|_| anyhow::anyhow!("counter thread"))??;
    if !status.success() {
        bail!("{label}: status {status}");
    }
    Ok(ChildRun {
        elapsed_ns: elapsed_ns.context("child reported no time")?,
        received,
        head,
    })
}

/// Runs the Rust guest `guest ARGS` under `host` ("weir" or "wasmtime-wasi", both with full
/// network access) on a current-thread tokio runtime, and returns (elapsed, stdout). `before`
/// runs once the component is compiled, just before the guest starts.
pub(crate) fn run_guest(
    guest: &str,
    host: &str,
    guest_args: &[String],
    before: impl FnOnce(),
) -> Result<(std::time::Duration, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = Engine::default();
    let mut args = vec![guest.to_string()];
    args.extend(guest_args.iter().cloned());
    match host {
        "weir" => {
            let stdout = weir::io::MemoryOutputPipe::new(1 << 16);
            let mut linker = Linker::new(&engine);
            weir::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
            let wasi = weir::WasiCtxBuilder::new()
                .args(args)
                .stdout(stdout.clone())
                .inherit_stderr()
                .network_policy(weir::sockets::NetworkPolicy::allow_all())
                .build();
            let host = WeirHost {
                wasi,
                table: ResourceTable::new(),
            };
            let elapsed = time_guest(&runtime, &engine, guest, linker, host, before, || {})?;
            Ok((
                elapsed,
                String::from_utf8_lossy(&stdout.contents()).into_owned(),
            ))
        }
        "wasmtime-wasi" => {
            let stdout = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(1 << 16);
            let mut linker = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
            let wasi = wasmtime_wasi::WasiCtx::builder()
                .args(&args)
                .stdout(stdout.clone())
                .inherit_stderr()
                .inherit_network()
                .allow_udp(true)
                .allow_tcp(true)
                .build();
            let host = WasmtimeWasiHost {
                wasi,
                table: ResourceTable::new(),
            };
            let elapsed = time_guest(&runtime, &engine, guest, linker, host, before, || {})?;
            Ok((
                elapsed,
                String::from_utf8_lossy(&stdout.contents()).into_owned(),
            ))
        }
        other => anyhow::bail!("unknown host {other}"),
    }
}

pub(crate) struct WeirHost {
    pub(crate) wasi: weir::WasiCtx,
    pub(crate) table: ResourceTable,
}

impl weir::WasiView for WeirHost {
    fn wasi(&mut self) -> weir::WasiCtxView<'_> {
        weir::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

pub(crate) struct WasmtimeWasiHost {
    pub(crate) wasi: wasmtime_wasi::WasiCtx,
    pub(crate) table: ResourceTable,
}

impl wasmtime_wasi::WasiView for WasmtimeWasiHost {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Runs `guest` once under `linker`; times the run from just after `before` (called once the
/// component is compiled) until `drain` returned.
pub(crate) fn time_guest<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    engine: &Engine,
    guest: &str,
    linker: Linker<T>,
    host: T,
    before: impl FnOnce(),
    drain: impl FnOnce(),
) -> Result<std::time::Duration> {
    let bytes = weir_test_guests::rust_guest(guest).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let component = Component::new(engine, &*bytes).map_err(anyhow::Error::from)?;
    let mut store = Store::new(engine, host);
    before();
    let start = Instant::now();
    let outcome = runtime
        .block_on(weir::command::call_run_async(
            &mut store, &linker, &component,
        ))
        .map_err(anyhow::Error::from)?;
    drain();
    let elapsed = start.elapsed();
    if outcome != weir::command::Outcome::Success {
        bail!("guest failed: {outcome:?}");
    }
    Ok(elapsed)
}

/// The native baseline of the stdout benchmarks: `total` bytes of the flood pattern (byte
/// `i` is `i % 251`) in unbuffered `chunk`-byte writes straight to fd 1 (std's stdout is
/// line-buffered).
pub(crate) fn native_stdout_writes(total: u64, chunk: usize) -> Result<()> {
    use std::os::fd::AsFd;
    let pattern: Vec<u8> = (0..chunk + 251).map(|i| (i % 251) as u8).collect();
    let mut out = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let mut written = 0u64;
    while written < total {
        let n = (chunk as u64).min(total - written) as usize;
        let phase = (written % 251) as usize;
        out.write_all(&pattern[phase..phase + n])?;
        written += n as u64;
    }
    out.flush()?;
    Ok(())
}

fn child_stdout(args: &[String]) -> Result<()> {
    let host = args.first().context("host")?.as_str();
    let total = arg(args, 1, 1 << 30)?;
    let chunk = arg(args, 2, 64 << 10)?;
    let guest_args = [
        "stdout_flood".to_string(),
        total.to_string(),
        chunk.to_string(),
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let engine = Engine::default();
    let elapsed = match host {
        "native" => {
            let start = Instant::now();
            native_stdout_writes(total, chunk as usize)?;
            start.elapsed()
        }
        "weir" => {
            let mut linker = Linker::new(&engine);
            weir::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
            let wasi = weir::WasiCtxBuilder::new()
                .inherit_stdio()
                .args(guest_args)
                .build();
            let host = WeirHost {
                wasi,
                table: ResourceTable::new(),
            };
            time_guest(
                &runtime,
                &engine,
                "stdout_flood",
                linker,
                host,
                || {},
                weir::io::stdio::flush_stdio,
            )?
        }
        "wasmtime-wasi" => {
            let mut linker = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
            let wasi = wasmtime_wasi::WasiCtx::builder()
                .inherit_stdio()
                .args(&guest_args)
                .build();
            let host = WasmtimeWasiHost {
                wasi,
                table: ResourceTable::new(),
            };
            time_guest(
                &runtime,
                &engine,
                "stdout_flood",
                linker,
                host,
                || {},
                || {
                    let _ = std::io::stdout().flush();
                },
            )?
        }
        other => bail!("unknown host `{other}`"),
    };
    eprintln!("elapsed_ns={}", elapsed.as_nanos());
    Ok(())
}
