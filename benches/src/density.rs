//! Density benchmark: N instances alive at once in one process, each with a bound UDP socket
//! and a connected TCP stream doing small echoes.
//!
//! `weir-bench density [COUNTS] [ECHOES] [RUNS]` (defaults `1,100,1000`, 100, 1). For each N
//! and host a child process (`child-density`) compiles the `density` guest, reports
//! "ready", and on "go" starts N instances concurrently on a 2-worker tokio runtime. Each
//! instance binds UDP, connects TCP, does ECHOES rounds of a 16-byte TCP echo and a 16-byte
//! UDP echo against this process's echo servers, sends one more byte to say it is done, then
//! holds its sockets until this process closes the connection.
//!
//! This process measures, per child:
//! - **memory per instance**: (the child's `VmRSS` with all N instances alive and done −
//!   its `VmRSS` at "ready", after compiling) / N. The guest is the same for every host, so
//!   the difference between hosts is host memory;
//! - **echoes/s**: N × ECHOES × 2 (TCP + UDP round trips) over the time from "go" until the
//!   last instance said it was done (instantiation included);
//! - the child's open descriptors and threads at that point.
//!
//! The `native` host is the same protocol in plain tokio tasks (one per instance), for scale.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};

use crate::{WasmtimeWasiHost, WeirHost, arg};

const HOSTS: [&str; 3] = ["native", "wasmtime-wasi", "weir"];
const MESSAGE: usize = 16;

/// One child's figures.
#[derive(Clone, Copy)]
struct Figures {
    bytes_per_instance: f64,
    echoes_per_second: f64,
    descriptors: usize,
    threads: usize,
}

fn proc_status_bytes(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field}"))?;
    let kib: u64 = line.split_whitespace().nth(1).context("value")?.parse()?;
    Ok(kib * 1024)
}

fn proc_count(pid: u32, what: &str) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/{what}"))?.count())
}

/// Runs one child (`host`, `n` instances) against echo servers in this process.
fn measure(host: &str, n: usize, echoes: u64) -> Result<Figures> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let tcp = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let udp = runtime.block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))?;
    let (tcp_addr, udp_addr) = (tcp.local_addr()?, udp.local_addr()?);
    let done = Arc::new(AtomicUsize::new(0));
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);

    // TCP echo: each connection's bytes go back; after ECHOES messages and the done byte,
    // the connection is held until `close`.
    let per_connection = echoes as usize * MESSAGE + 1;
    let tcp_server = {
        let done = done.clone();
        runtime.spawn(async move {
            let mut connections = Vec::new();
            for _ in 0..n {
                let (mut stream, _) = tcp.accept().await?;
                let done = done.clone();
                let mut close = close_rx.clone();
                connections.push(tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    let echo_bytes = per_connection - 1;
                    let mut seen = 0;
                    while seen < per_connection {
                        let got = stream.read(&mut buffer).await?;
                        if got == 0 {
                            bail!("an instance closed its connection early");
                        }
                        // Echo the messages, not the final done byte.
                        let echo = got.min(echo_bytes.saturating_sub(seen));
                        seen += got;
                        stream.write_all(&buffer[..echo]).await?;
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    let _ = close.wait_for(|closed| *closed).await;
                    Ok::<_, anyhow::Error>(())
                }));
            }
            for connection in connections {
                connection.await??;
            }
            Ok::<_, anyhow::Error>(())
        })
    };
    let udp_server = runtime.spawn(async move {
        let mut buffer = [0u8; 64];
        loop {
            let (got, from) = udp.recv_from(&mut buffer).await?;
            udp.send_to(&buffer[..got], from).await?;
        }
        #[allow(unreachable_code)]
        Ok::<_, anyhow::Error>(())
    });

    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "child-density",
            host,
            &n.to_string(),
            &echoes.to_string(),
            &tcp_addr.to_string(),
            &udp_addr.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let first = lines.next().context("the child ended before ready")??;
    if first != "ready" {
        bail!("{host}: child said `{first}`");
    }
    let baseline = proc_status_bytes(pid, "VmRSS")?;
    let start = Instant::now();
    writeln!(child.stdin.as_mut().context("child stdin")?, "go")?;
    let deadline = start + Duration::from_secs(600);
    while done.load(Ordering::SeqCst) < n {
        if Instant::now() > deadline || tcp_server.is_finished() {
            let _ = child.kill();
            bail!(
                "{host} N={n}: {} of {n} instances done",
                done.load(Ordering::SeqCst)
            );
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = start.elapsed();
    // Every instance is alive and holding its sockets: the density point.
    std::thread::sleep(Duration::from_millis(100));
    let alive = proc_status_bytes(pid, "VmRSS")?;
    let descriptors = proc_count(pid, "fd")?;
    let threads = proc_count(pid, "task")?;
    close_tx.send(true)?;
    runtime.block_on(tcp_server)??;
    udp_server.abort();
    let last = lines.next().context("the child ended without a result")??;
    let status = child.wait()?;
    if !status.success() || last != "ok" {
        bail!("{host} N={n}: child {status}, said `{last}`");
    }
    Ok(Figures {
        bytes_per_instance: alive.saturating_sub(baseline) as f64 / n as f64,
        echoes_per_second: (n as u64 * echoes * 2) as f64 / elapsed.as_secs_f64(),
        descriptors,
        threads,
    })
}

pub fn bench(args: &[String]) -> Result<()> {
    let counts: Vec<usize> = args
        .first()
        .map(String::as_str)
        .unwrap_or("1,100,1000")
        .split(',')
        .map(|c| c.parse().with_context(|| format!("count `{c}`")))
        .collect::<Result<_>>()?;
    let echoes = arg(args, 1, 100)?;
    let runs = arg(args, 2, 1)? as usize;
    weir_test_guests::rust_guest("density").map_err(|e| anyhow::anyhow!("{e:#}"))?;
    println!(
        "density: N instances at once, each a bound UDP socket + a TCP stream, {echoes} \
         TCP and {echoes} UDP 16-byte echoes each; memory = child RSS growth / N with all alive; \
         best of {runs} run(s)"
    );
    println!(
        "| N | host | KiB per instance | vs wasmtime-wasi | echoes/s | vs wasmtime-wasi | fds | threads |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &counts {
        let mut figures: Vec<Figures> = Vec::new();
        for host in HOSTS {
            let mut best: Option<Figures> = None;
            for _ in 0..runs {
                let run = measure(host, n, echoes)?;
                best = Some(match best {
                    Some(b) if b.bytes_per_instance <= run.bytes_per_instance => Figures {
                        echoes_per_second: b.echoes_per_second.max(run.echoes_per_second),
                        ..b
                    },
                    Some(b) => Figures {
                        echoes_per_second: b.echoes_per_second.max(run.echoes_per_second),
                        ..run
                    },
                    None => run,
                });
            }
            figures.push(best.context("at least one run")?);
        }
        let reference = figures[1];
        for (host, f) in HOSTS.iter().zip(&figures) {
            println!(
                "| {n} | {host} | {:.1} | {:.2}x | {:.0} | {:.2}x | {} | {} |",
                f.bytes_per_instance / 1024.0,
                f.bytes_per_instance / reference.bytes_per_instance,
                f.echoes_per_second,
                f.echoes_per_second / reference.echoes_per_second,
                f.descriptors,
                f.threads
            );
        }
    }
    Ok(())
}

/// The child: `child-density HOST N ECHOES TCP_ADDR UDP_ADDR`.
pub fn child(args: &[String]) -> Result<()> {
    let host = args.first().context("host")?.clone();
    let n = arg(args, 1, 1)? as usize;
    let echoes = arg(args, 2, 100)?;
    let tcp_addr: std::net::SocketAddr = args.get(3).context("tcp address")?.parse()?;
    let udp_addr: std::net::SocketAddr = args.get(4).context("udp address")?.parse()?;
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let engine = Engine::default();
    let bytes = weir_test_guests::rust_guest("density").map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let component = Component::new(&engine, &*bytes).map_err(anyhow::Error::from)?;
    let guest_args: Vec<String> = [
        "density".to_string(),
        tcp_addr.to_string(),
        udp_addr.to_string(),
        echoes.to_string(),
    ]
    .into();
    let instances: Vec<tokio::task::JoinHandle<Result<()>>> = {
        let mut weir_linker = Linker::new(&engine);
        weir::add_to_linker_async(&mut weir_linker).map_err(anyhow::Error::from)?;
        let mut wasmtime_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut wasmtime_linker)
            .map_err(anyhow::Error::from)?;
        let (weir_linker, wasmtime_linker) = (Arc::new(weir_linker), Arc::new(wasmtime_linker));
        println!("ready");
        std::io::stdout().flush()?;
        let mut go = String::new();
        std::io::stdin().read_line(&mut go)?;
        (0..n)
            .map(|_| {
                let (engine, component, args) =
                    (engine.clone(), component.clone(), guest_args.clone());
                let (weir_linker, wasmtime_linker) = (weir_linker.clone(), wasmtime_linker.clone());
                match host.as_str() {
                    "native" => runtime.spawn(native_instance(tcp_addr, udp_addr, echoes)),
                    "weir" => runtime.spawn(async move {
                        let wasi = weir::WasiCtxBuilder::new()
                            .args(args)
                            .inherit_stderr()
                            .network_policy(weir::sockets::NetworkPolicy::allow_all())
                            .build();
                        let mut store = Store::new(
                            &engine,
                            WeirHost {
                                wasi,
                                table: ResourceTable::new(),
                            },
                        );
                        finished(
                            weir::command::call_run_async(&mut store, &weir_linker, &component)
                                .await,
                        )
                    }),
                    _ => runtime.spawn(async move {
                        let wasi = wasmtime_wasi::WasiCtx::builder()
                            .args(&args)
                            .inherit_stderr()
                            .inherit_network()
                            .allow_udp(true)
                            .allow_tcp(true)
                            .build();
                        let mut store = Store::new(
                            &engine,
                            WasmtimeWasiHost {
                                wasi,
                                table: ResourceTable::new(),
                            },
                        );
                        finished(
                            weir::command::call_run_async(&mut store, &wasmtime_linker, &component)
                                .await,
                        )
                    }),
                }
            })
            .collect()
    };
    runtime.block_on(async {
        for instance in instances {
            instance.await??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    println!("ok");
    Ok(())
}

fn finished(outcome: wasmtime::Result<weir::command::Outcome>) -> Result<()> {
    match outcome.map_err(anyhow::Error::from)? {
        weir::command::Outcome::Success => Ok(()),
        other => bail!("an instance ended with {other:?}"),
    }
}

/// The guest's protocol in plain tokio.
async fn native_instance(
    tcp_addr: std::net::SocketAddr,
    udp_addr: std::net::SocketAddr,
    echoes: u64,
) -> Result<()> {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    udp.connect(udp_addr).await?;
    let mut tcp = tokio::net::TcpStream::connect(tcp_addr).await?;
    let message = [0x42u8; MESSAGE];
    let mut buffer = [0u8; 64];
    for _ in 0..echoes {
        tcp.write_all(&message).await?;
        tcp.read_exact(&mut buffer[..MESSAGE]).await?;
        loop {
            udp.send(&message).await?;
            if let Ok(got) =
                tokio::time::timeout(Duration::from_secs(1), udp.recv(&mut buffer)).await
            {
                got?;
                break;
            }
        }
    }
    tcp.write_all(&[1]).await?;
    while tcp.read(&mut buffer).await? > 0 {}
    Ok(())
}

fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}
