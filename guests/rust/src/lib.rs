//! Helpers shared by the script guests (`udp_script`, `tcp_script`).
use wasip2::clocks::monotonic_clock::subscribe_duration;
use wasip2::io::poll::{poll, Pollable};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};
use wasip2::sockets::tcp::TcpSocket;
use wasip2::sockets::network::{ErrorCode, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress};

/// `1.2.3.4:5` or `[::1]:5`.
pub fn format_addr(a: &IpSocketAddress) -> String {
    match a {
        IpSocketAddress::Ipv4(a) => {
            let (x, y, z, w) = a.address;
            format!("{x}.{y}.{z}.{w}:{}", a.port)
        }
        IpSocketAddress::Ipv6(a) => {
            let ip = std::net::Ipv6Addr::new(
                a.address.0, a.address.1, a.address.2, a.address.3, a.address.4, a.address.5,
                a.address.6, a.address.7,
            );
            format!("[{ip}]:{}", a.port)
        }
    }
}

/// Parses `1.2.3.4:5` or `[::1]:5`.
pub fn wit_addr(text: &str) -> IpSocketAddress {
    let addr: std::net::SocketAddr = text.parse().expect("address");
    match addr {
        std::net::SocketAddr::V4(a) => {
            let [x, y, z, w] = a.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress { port: a.port(), address: (x, y, z, w) })
        }
        std::net::SocketAddr::V6(a) => {
            let s = a.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: a.port(),
                flow_info: 0,
                address: (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
                scope_id: 0,
            })
        }
    }
}

/// `ok(VALUE)` or `err(CODE)`.
pub fn show<T: std::fmt::Debug>(r: Result<T, ErrorCode>) -> String {
    match r {
        Ok(v) => format!("ok({v:?})"),
        Err(e) => format!("err({})", e.name()),
    }
}

/// Waits up to `ms` milliseconds for `pollable`; whether it became ready.
pub fn wait(pollable: &Pollable, ms: u64) -> bool {
    let timer = subscribe_duration(ms * 1_000_000);
    poll(&[pollable, &timer]).contains(&0)
}

/// `err(closed)` or `err(failed: DEBUG-STRING)`.
pub fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "err(closed)".into(),
        StreamError::LastOperationFailed(e) => format!("err(failed: {})", e.to_debug_string()),
    }
}

/// One connection of the echo server: bytes read but not yet written back. Fields drop in
/// order: the pollables before the streams they watch.
struct Conn {
    input_ready: Pollable,
    output_ready: Pollable,
    input: InputStream,
    output: OutputStream,
    _socket: TcpSocket,
    pending: Vec<u8>,
    eof: bool,
}

/// An echo server on a listening socket: accepts connections (`limit` of them, or forever)
/// and echoes each until its peer closes, all at once with one poll loop. Returns how many
/// connections it served and how many bytes it echoed.
pub fn serve(listener: &TcpSocket, limit: Option<usize>) -> Result<(usize, usize), String> {
    let accept_ready = listener.subscribe();
    let mut conns: Vec<Conn> = Vec::new();
    let (mut accepted, mut done, mut bytes) = (0, 0, 0usize);
    let more = |accepted: usize| limit.is_none_or(|limit| accepted < limit);
    while more(done) {
        // Poll the listener (while more connections are expected) and every connection: for
        // reading when nothing is pending, for writing otherwise.
        let mut pollables: Vec<&Pollable> = Vec::new();
        if more(accepted) {
            pollables.push(&accept_ready);
        }
        for c in &conns {
            pollables.push(if c.pending.is_empty() { &c.input_ready } else { &c.output_ready });
        }
        poll(&pollables);
        while more(accepted) {
            match listener.accept() {
                Ok((socket, input, output)) => {
                    accepted += 1;
                    let (input_ready, output_ready) = (input.subscribe(), output.subscribe());
                    conns.push(Conn { input_ready, output_ready, input, output, _socket: socket, pending: Vec::new(), eof: false });
                }
                Err(e) if e.name() == "would-block" => break,
                Err(e) => return Err(format!("accept err({})", e.name())),
            }
        }
        for c in conns.iter_mut() {
            if c.pending.is_empty() && !c.eof {
                match c.input.read(65536) {
                    Ok(data) => c.pending.extend(data),
                    Err(StreamError::Closed) => c.eof = true,
                    Err(e) => return Err(stream_error(e)),
                }
            }
            if !c.pending.is_empty() {
                match c.output.check_write() {
                    Ok(0) => {}
                    Ok(permit) => {
                        let n = (permit as usize).min(c.pending.len());
                        if let Err(e) = c.output.write(&c.pending[..n]) {
                            return Err(stream_error(e));
                        }
                        bytes += n;
                        c.pending.drain(..n);
                    }
                    Err(e) => return Err(stream_error(e)),
                }
            }
        }
        let before = conns.len();
        conns.retain(|c| !(c.eof && c.pending.is_empty()));
        done += before - conns.len();
    }
    Ok((done, bytes))
}

/// The script commands that end a guest abruptly, leaving every resource it holds to the
/// host: `exit CODE` (`exit` without running destructors), `trap` (a wasm `unreachable`),
/// `hang` (waits forever, for a host that drops the guest mid-call). Returns for any other
/// command.
pub fn end_abruptly(words: &[&str]) {
    match words.first().copied() {
        Some("exit") => std::process::exit(words.get(1).and_then(|c| c.parse().ok()).unwrap_or(0)),
        Some("trap") => core::arch::wasm32::unreachable(),
        Some("hang") => loop {
            subscribe_duration(u64::MAX).block();
        },
        _ => {}
    }
}
