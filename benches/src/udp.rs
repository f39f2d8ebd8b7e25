//! UDP benchmarks: the `udp_flood` guest under Weir and wasmtime-wasi, and native Rust.
//!
//! `udp-send`: send COUNT datagrams of 64 and 1400 bytes to a local socket nobody reads
//! (the kernel drops what overflows its receive buffer; the sender is unaffected), in batches
//! of the check-send permit. Native baselines: one `send` per datagram, and `sendmmsg` in
//! batches of 64 (no GSO).
//!
//! `udp-receive`: a native thread floods a local port with 64-byte datagrams (`sendmmsg`)
//! while the receiver counts what it gets in MILLIS ms (receive batches of 64). Native
//! baseline: `recvmmsg` via quinn-udp... here plain `recv` in a loop, and batched.

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::{arg, run_guest};

const BATCH: usize = 64;

fn native_sendmmsg(socket: &UdpSocket, payload: &[u8], count: u64) -> Result<()> {
    let mut sent = 0u64;
    while sent < count {
        let n = (count - sent).min(BATCH as u64) as usize;
        let iovs: Vec<[IoSlice<'_>; 1]> = (0..n).map(|_| [IoSlice::new(payload)]).collect();
        let mut controls: Vec<rustix::net::SendAncillaryBuffer<'_, '_, '_>> =
            (0..n).map(|_| Default::default()).collect();
        let mut messages: Vec<rustix::net::MMsgHdr<'_>> = iovs
            .iter()
            .zip(controls.iter_mut())
            .map(|(iov, control)| rustix::net::MMsgHdr::new(iov, control))
            .collect();
        sent +=
            rustix::net::sendmmsg(socket, &mut messages, rustix::net::SendFlags::empty())? as u64;
    }
    Ok(())
}

pub(crate) fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn print_table(title: &str, rows: &[(&str, f64)], wasi: f64, native: f64, native_name: &str) {
    println!("{title}");
    println!("| host | datagrams/s (median) | vs wasmtime-wasi | vs {native_name} |");
    println!("|---|---|---|---|");
    for (host, rate) in rows {
        println!(
            "| {host} | {:.0} | {:.2}x | {:.2}x |",
            rate,
            rate / wasi,
            rate / native
        );
    }
}

pub fn send_bench(args: &[String]) -> Result<()> {
    let count = arg(args, 0, 1_000_000)?;
    let runs = arg(args, 1, 3)? as usize;
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let dest = sink.local_addr()?;
    for size in [64usize, 1400] {
        let hosts = ["native send", "native sendmmsg", "wasmtime-wasi", "weir"];
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); hosts.len()];
        for _ in 0..runs {
            for (i, host) in hosts.iter().enumerate() {
                if std::env::var("BENCH_ONLY").is_ok_and(|only| only != *host) {
                    samples[i].push(f64::NAN);
                    continue;
                }
                let elapsed = match *host {
                    "native send" | "native sendmmsg" => {
                        let socket = UdpSocket::bind("127.0.0.1:0")?;
                        socket.connect(dest)?;
                        let payload = vec![7u8; size];
                        let start = Instant::now();
                        if *host == "native send" {
                            for _ in 0..count {
                                socket.send(&payload)?;
                            }
                        } else {
                            native_sendmmsg(&socket, &payload, count)?;
                        }
                        start.elapsed()
                    }
                    guest_host => {
                        let guest_args = [
                            "send".into(),
                            dest.to_string(),
                            size.to_string(),
                            count.to_string(),
                        ];
                        run_guest("udp_flood", guest_host, &guest_args, || {})?.0
                    }
                };
                samples[i].push(count as f64 / elapsed.as_secs_f64());
            }
        }
        let rates: Vec<(&str, f64)> = hosts
            .iter()
            .copied()
            .zip(samples.into_iter().map(median))
            .collect();
        print_table(
            &format!("udp-send: {count} datagrams of {size} B to a loopback socket, {runs} runs"),
            &rates,
            rates[2].1,
            rates[1].1,
            "native sendmmsg",
        );
        println!();
    }
    Ok(())
}

/// CPU time consumed so far by the whole process (all threads).
fn process_cpu() -> Duration {
    cpu_time(rustix::time::ClockId::ProcessCPUTime)
}

fn cpu_time(clock: rustix::time::ClockId) -> Duration {
    let t = rustix::time::clock_gettime(clock);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// A native thread flooding a port with 64-byte datagrams until stopped.
struct Flood {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Duration>>,
}

impl Flood {
    /// `gso`: send each batch as one UDP GSO buffer (`UDP_SEGMENT`) instead of `sendmmsg`.
    fn start(target: SocketAddr, gso: bool) -> Result<Flood> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("flooder".into())
            .spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0")?;
                socket.connect(target)?;
                let payload = [9u8; 64];
                let batch = [9u8; 64 * BATCH];
                let state = quinn_udp::UdpSocketState::new((&socket).into())?;
                if gso && state.max_gso_segments() < BATCH {
                    anyhow::bail!("this kernel cannot send {BATCH} GSO segments per call");
                }
                let transmit = quinn_udp::Transmit {
                    destination: target,
                    ecn: None,
                    contents: &batch,
                    segment_size: Some(64),
                    src_ip: None,
                };
                while !flag.load(Ordering::Relaxed) {
                    // ECONNREFUSED while the receiver is not bound yet: keep going.
                    let _ = if gso {
                        state
                            .try_send((&socket).into(), &transmit)
                            .map_err(Into::into)
                    } else {
                        native_sendmmsg(&socket, &payload, BATCH as u64)
                    };
                }
                Ok(cpu_time(rustix::time::ClockId::ThreadCPUTime))
            })?;
        Ok(Flood { stop, thread })
    }

    /// Stops the flood; returns the CPU time the flooding thread used.
    fn finish(self) -> Result<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("flood thread panicked"))?
    }
}

/// One receive measurement: datagrams received, and the CPU time the receiving side used
/// (the whole process's CPU time during the run minus the flooding thread's).
struct ReceiveSample {
    received: u64,
    receiver_cpu: Duration,
}

fn receive_once(host: &str, port: u16, millis: u64, gso: bool) -> Result<ReceiveSample> {
    let target: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut started: Option<(Duration, Flood)> = None;
    let received = match host {
        "native recv" => {
            let socket = UdpSocket::bind(target)?;
            socket.set_read_timeout(Some(Duration::from_millis(50)))?;
            let mut buffer = [0u8; 2048];
            started = Some((process_cpu(), Flood::start(target, gso)?));
            let deadline = Instant::now() + Duration::from_millis(millis);
            let mut n = 0u64;
            while Instant::now() < deadline {
                if socket.recv(&mut buffer).is_ok() {
                    n += 1;
                }
            }
            n
        }
        guest_host => {
            let guest_args = ["receive".into(), port.to_string(), millis.to_string()];
            let mut flood_error = None;
            let (_, out) = run_guest("udp_flood", guest_host, &guest_args, || match Flood::start(
                target, gso,
            ) {
                Ok(flood) => started = Some((process_cpu(), flood)),
                Err(error) => flood_error = Some(error),
            })?;
            if let Some(error) = flood_error {
                return Err(error);
            }
            out.trim()
                .parse()
                .with_context(|| format!("{guest_host} printed `{out}`"))?
        }
    };
    let (cpu_before, flood) = started.context("the flood never started")?;
    let flood_cpu = flood.finish()?;
    let receiver_cpu = process_cpu()
        .saturating_sub(cpu_before)
        .saturating_sub(flood_cpu);
    Ok(ReceiveSample {
        received,
        receiver_cpu,
    })
}

pub fn receive_bench(args: &[String]) -> Result<()> {
    let millis = arg(args, 0, 2000)?;
    let runs = arg(args, 1, 3)? as usize;
    let hosts = ["native recv", "wasmtime-wasi", "weir"];
    for (flood_name, gso) in [("sendmmsg", false), ("UDP GSO", true)] {
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); hosts.len()];
        let mut per_cpu: Vec<Vec<f64>> = vec![Vec::new(); hosts.len()];
        for _ in 0..runs {
            for (i, host) in hosts.iter().enumerate() {
                if std::env::var("BENCH_ONLY").is_ok_and(|only| only != *host) {
                    rates[i].push(f64::NAN);
                    per_cpu[i].push(f64::NAN);
                    continue;
                }
                let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
                let sample = receive_once(host, port, millis, gso)?;
                rates[i].push(sample.received as f64 / (millis as f64 / 1000.0));
                per_cpu[i].push(sample.received as f64 / sample.receiver_cpu.as_secs_f64());
            }
        }
        for (title, samples) in [
            ("datagrams per second of wall-clock time", rates),
            (
                "datagrams per CPU-second of the receiving side (process CPU minus the flooder's)",
                per_cpu,
            ),
        ] {
            let medians: Vec<(&str, f64)> = hosts
                .iter()
                .copied()
                .zip(samples.into_iter().map(median))
                .collect();
            print_table(
                &format!(
                    "udp-receive: 64 B datagrams flooded by a native {flood_name} thread, {millis} ms per run, {runs} runs: {title}"
                ),
                &medians,
                medians[1].1,
                medians[0].1,
                "native recv",
            );
            println!();
        }
    }
    Ok(())
}
