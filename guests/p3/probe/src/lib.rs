//! A WASI 0.3 command for the tests: `p3_probe ACTION [ARG]`.
//!
//! - `env`: prints its arguments, environment and initial cwd.
//! - `exit N`: `exit-with-code(N)`; `exit-ok`: `exit(ok)`; `fail`: `run` returns `err`.
//! - `cat`: copies stdin to stdout through `read-via-stream`/`write-via-stream`, 64 KiB
//!   reads, then prints both futures' results to stderr.
//! - `random N`: prints the lengths `get-random-bytes(N)` and `get-insecure-random-bytes(N)`
//!   returned.
//! - `sleep MS`: `wait-for(MS)`, then prints how long it took.
//! - `cancel-sleep`: races `wait-for(10 s)` against `wait-for(20 ms)`, drops (cancels) the
//!   long one, prints how long it took.
//! - `drop-halfway`: writes to a stdout stream, then drops the writer and the result future
//!   without waiting for either, and returns.
//! - `udp`: a UDP script over loopback (bind, send/receive both ways, connect, implicit
//!   bind, 64 concurrent sends, each typical error of the WIT), one line per step.
//! - `lookup NAME`: `resolve-addresses(NAME)`; `tcp`: `tcp-socket.create`.
//! - `udp-flood N PORT`: sends N datagrams of 64 B to 127.0.0.1:PORT, 64 `send`s in flight
//!   at a time, and prints how long it took (the UDP send benchmark's guest).
//! - `flood N`: writes N bytes (the flood pattern, `i % 251`) to stdout, then prints the
//!   future's result to stderr.

use std::future::Future;
use std::task::Poll;

use wasip3::cli::{environment, exit, stderr, stdin, stdout};
use wasip3::clocks::monotonic_clock;
use wasip3::random::{insecure, random};
use wasip3::wit_stream;
use wasip3::wit_bindgen::StreamResult;

use wasip3::sockets::types::{
    IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, TcpSocket, UdpSocket,
};

struct Probe;

fn v4(address: (u8, u8, u8, u8), port: u16) -> IpSocketAddress {
    IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address })
}

fn port_of(address: &IpSocketAddress) -> u16 {
    match address {
        IpSocketAddress::Ipv4(a) => a.port,
        IpSocketAddress::Ipv6(a) => a.port,
    }
}

/// Runs the UDP steps, returning one line per step (what the host answered).
async fn udp_script() -> String {
    let mut log = String::new();
    let mut step = |name: &str, outcome: String| log += &format!("{name}: {outcome}\n");
    let loopback = (127, 0, 0, 1);
    let a = UdpSocket::create(IpAddressFamily::Ipv4).expect("create a");
    let b = UdpSocket::create(IpAddressFamily::Ipv4).expect("create b");
    step("local before bind", format!("{:?}", a.get_local_address().map(|_| ())));
    step("receive before bind", format!("{:?}", a.receive().await.map(|_| ())));
    step("bind a", format!("{:?}", a.bind(v4(loopback, 0))));
    step("bind a again", format!("{:?}", a.bind(v4(loopback, 0))));
    let v6 = IpSocketAddress::Ipv6(Ipv6SocketAddress { port: 0, flow_info: 0, address: (0, 0, 0, 0, 0, 0, 0, 1), scope_id: 0 });
    step("bind b to ipv6", format!("{:?}", b.bind(v6)));
    step("bind b", format!("{:?}", b.bind(v4(loopback, 0))));
    let (Ok(a_addr), Ok(b_addr)) = (a.get_local_address(), b.get_local_address()) else {
        // Denied by the policy: an implicit bind is a bind too.
        let c = UdpSocket::create(IpAddressFamily::Ipv4).expect("create c");
        let to = v4(loopback, 9);
        step("send unbound", format!("{:?}", c.send(b"x".to_vec(), Some(to)).await));
        step("connect unbound", format!("{:?}", c.connect(to)));
        return log;
    };
    step("a port is set", format!("{}", port_of(&a_addr) != 0));

    step("send a->b", format!("{:?}", a.send(b"hello".to_vec(), Some(b_addr)).await));
    match b.receive().await {
        Ok((data, from)) => step("b received", format!("{:?} from a: {}", String::from_utf8_lossy(&data), port_of(&from) == port_of(&a_addr))),
        Err(e) => step("b received", format!("{e:?}")),
    }
    step("remote before connect", format!("{:?}", b.get_remote_address().map(|_| ())));
    step("disconnect before connect", format!("{:?}", b.disconnect()));
    step("send without address", format!("{:?}", b.send(b"x".to_vec(), None).await));
    step("send to port 0", format!("{:?}", b.send(b"x".to_vec(), Some(v4(loopback, 0))).await));
    step("send to 0.0.0.0", format!("{:?}", b.send(b"x".to_vec(), Some(v4((0, 0, 0, 0), 9))).await));
    step("send 70000 bytes", format!("{:?}", b.send(vec![0; 70_000], Some(a_addr)).await));
    step("connect b to a", format!("{:?}", b.connect(a_addr)));
    step("remote is a", format!("{}", b.get_remote_address().map(|r| port_of(&r) == port_of(&a_addr)).unwrap_or(false)));
    step("send connected", format!("{:?}", b.send(b"reply".to_vec(), None).await));
    step("send connected elsewhere", format!("{:?}", b.send(b"x".to_vec(), Some(v4(loopback, 9))).await));
    match a.receive().await {
        Ok((data, from)) => step("a received", format!("{:?} from b: {}", String::from_utf8_lossy(&data), port_of(&from) == port_of(&b_addr))),
        Err(e) => step("a received", format!("{e:?}")),
    }
    step("disconnect", format!("{:?}", b.disconnect()));

    // Implicit bind by `send`.
    let c = UdpSocket::create(IpAddressFamily::Ipv4).expect("create c");
    step("send unbound", format!("{:?}", c.send(b"implicit".to_vec(), Some(a_addr)).await));
    step("c bound by send", format!("{}", c.get_local_address().map(|l| port_of(&l) != 0).unwrap_or(false)));
    match a.receive().await {
        Ok((data, _)) => step("a received", format!("{:?}", String::from_utf8_lossy(&data))),
        Err(e) => step("a received", format!("{e:?}")),
    }

    // 64 sends in flight at once from one socket; all arrive, in some order.
    let sends: Vec<_> = (0..64u8).map(|i| Box::pin(c.send(vec![i; 64], Some(a_addr)))).collect();
    let results = join_all(sends).await;
    step("64 concurrent sends ok", format!("{}", results.iter().all(|r| r.is_ok())));
    let mut seen = [false; 64];
    for _ in 0..64 {
        if let Ok((data, _)) = a.receive().await {
            if data.len() == 64 {
                seen[data[0] as usize % 64] = true;
            }
        }
    }
    step("64 received", format!("{}", seen.iter().all(|s| *s)));
    log
}

/// Polls every future until all are done (no executor crate in this guest).
async fn join_all<F: Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match std::pin::Pin::new(&mut *future).poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// Writes `bytes` to a new stdout (or stderr) stream and waits for its result: how many
/// bytes the stream did not take, and the future's result.
async fn write_reporting(to_stderr: bool, bytes: Vec<u8>) -> (usize, Result<(), stdout::ErrorCode>) {
    let (mut writer, reader) = wit_stream::new();
    let done = if to_stderr {
        stderr::write_via_stream(reader)
    } else {
        stdout::write_via_stream(reader)
    };
    let unwritten = writer.write_all(bytes).await;
    drop(writer);
    (unwritten.len(), done.await)
}

async fn write(to_stderr: bool, bytes: Vec<u8>) -> Result<(), ()> {
    match write_reporting(to_stderr, bytes).await {
        (0, Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn say(text: String) -> Result<(), ()> {
    write(false, text.into_bytes()).await
}

fn arg(args: &[String], at: usize) -> u64 {
    args.get(at).and_then(|a| a.parse().ok()).unwrap_or(0)
}

async fn cat() -> Result<(), ()> {
    let (mut input, input_done) = stdin::read_via_stream();
    let (mut writer, reader) = wit_stream::new();
    let output_done = stdout::write_via_stream(reader);
    let mut copied = 0u64;
    loop {
        let (status, chunk) = input.read(Vec::with_capacity(64 * 1024)).await;
        if !chunk.is_empty() {
            copied += chunk.len() as u64;
            if !writer.write_all(chunk).await.is_empty() {
                break;
            }
        }
        match status {
            StreamResult::Complete(_) => {}
            StreamResult::Dropped | StreamResult::Cancelled => break,
        }
    }
    drop(input);
    drop(writer);
    let input_result = input_done.await;
    let output_result = output_done.await;
    let report = format!("copied {copied}; stdin {input_result:?}; stdout {output_result:?}\n");
    write(true, report.into_bytes()).await
}

impl wasip3::exports::cli::run::Guest for Probe {
    async fn run() -> Result<(), ()> {
        let args = environment::get_arguments();
        match args.get(1).map(String::as_str).unwrap_or("") {
            "env" => {
                let mut text = format!("args: {}\n", args.join(" "));
                for (name, value) in environment::get_environment() {
                    text += &format!("env: {name}={value}\n");
                }
                text += &format!("cwd: {:?}\n", environment::get_initial_cwd());
                say(text).await
            }
            "exit" => {
                exit::exit_with_code(arg(&args, 2) as u8);
                Err(())
            }
            "exit-ok" => {
                exit::exit(Ok(()));
                Err(())
            }
            "fail" => Err(()),
            "cat" => cat().await,
            "random" => {
                let n = arg(&args, 2);
                let secure = random::get_random_bytes(n).len();
                let weak = insecure::get_insecure_random_bytes(n).len();
                say(format!("random {secure} insecure {weak}\n")).await
            }
            "sleep" => {
                let start = monotonic_clock::now();
                monotonic_clock::wait_for(arg(&args, 2) * 1_000_000).await;
                let took = (monotonic_clock::now() - start) / 1_000_000;
                say(format!("slept {took} ms\n")).await
            }
            "cancel-sleep" => {
                let start = monotonic_clock::now();
                let mut long = Box::pin(monotonic_clock::wait_for(10_000_000_000));
                let mut short = Box::pin(monotonic_clock::wait_for(20_000_000));
                let short_won = std::future::poll_fn(|cx| {
                    if long.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(false);
                    }
                    short.as_mut().poll(cx).map(|()| true)
                })
                .await;
                drop(long);
                let took = (monotonic_clock::now() - start) / 1_000_000;
                say(format!("short won: {short_won} after {took} ms\n")).await
            }
            "drop-halfway" => {
                let (mut writer, reader) = wit_stream::new();
                let done = stdout::write_via_stream(reader);
                let unwritten = writer.write_all(b"written before the drop\n".to_vec()).await;
                drop(done);
                drop(writer);
                if unwritten.is_empty() { Ok(()) } else { Err(()) }
            }
            "udp" => say(udp_script().await).await,
            "lookup" => {
                let name = args.get(2).cloned().unwrap_or_default();
                let result = wasip3::sockets::ip_name_lookup::resolve_addresses(name).await;
                say(format!("{result:?}\n")).await
            }
            "udp-flood" => {
                let (count, port) = (arg(&args, 2), arg(&args, 3) as u16);
                let socket = UdpSocket::create(IpAddressFamily::Ipv4).expect("create");
                let to = v4((127, 0, 0, 1), port);
                let payload = vec![0x5a; 64];
                let start = monotonic_clock::now();
                let mut sent = 0u64;
                let mut failed = 0u64;
                while sent < count {
                    let wave = (count - sent).min(64);
                    let sends: Vec<_> =
                        (0..wave).map(|_| Box::pin(socket.send(payload.clone(), Some(to)))).collect();
                    failed += join_all(sends).await.iter().filter(|r| r.is_err()).count() as u64;
                    sent += wave;
                }
                let took = monotonic_clock::now() - start;
                say(format!("sent {sent} failed {failed} in {took} ns\n")).await
            }
            "tcp" => {
                let result = TcpSocket::create(IpAddressFamily::Ipv4).map(|_| ());
                say(format!("{result:?}\n")).await
            }
            "flood" => {
                let n = arg(&args, 2) as usize;
                let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                let (unwritten, result) = write_reporting(false, bytes).await;
                let report = format!("flood: {unwritten} bytes not taken, {result:?}\n");
                write(true, report.into_bytes()).await
            }
            other => {
                let _ = write(true, format!("p3_probe: unknown action {other:?}\n").into_bytes()).await;
                Err(())
            }
        }
    }
}

wasip3::cli::command::export!(Probe);
