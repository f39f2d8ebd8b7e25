//! Runs a script of `wasi:sockets/tcp` and `ip-name-lookup` operations given as arguments
//! (one command per argument, words separated by spaces) and prints one line per command, so
//! that host tests can assert exactly what each WIT call returned.
//!
//! Commands (`N` names a socket; `ADDR` is `1.2.3.4:5`, `[::1]:5`, or `$N` for socket N's
//! local address):
//! - `socket N v4|v6`, `bind N ADDR` (start + finish), `start-bind N ADDR`, `finish-bind N`
//! - `connect N ADDR` (start, wait up to 5 s on the pollable, finish), `start-connect N ADDR`,
//!   `finish-connect N` (one call, no waiting)
//! - `listen N` (start + finish), `start-listen N`, `finish-listen N`, `backlog N VALUE`
//! - `accept N AS [WAIT_MS]` (wait on the pollable, then accept; the new socket is named AS)
//! - `local N`, `remote N`, `family N`, `is-listening N`
//! - `keepalive N [on|off]`, `keepidle|keepintvl N [NANOS]`, `keepcnt|hop|rcvbuf|sndbuf N
//!   [VALUE]` (get, or set then get)
//! - `write N TEXT` (check-write, write, flush, wait for the flush), `write-bytes N LEN`
//!   (LEN pattern bytes in permit-sized writes), `blast N LEN` (the same without waiting for
//!   the last bytes to leave), `read N [WAIT_MS]` (wait, then one read),
//!   `read-all N` (read until the stream closes; prints the byte count and the ending)
//! - `probe-input N`, `probe-output N`: every operation of the input (output) stream once,
//!   each length 0 and non-zero, printed as `op=RESULT` (for streams that reported `closed`)
//! - `shutdown N receive|send|both`, `drop N`, `drop-streams N`, `sleep MS`
//! - `resolve NAME` (all addresses, waiting as needed), `resolve-now NAME` (first
//!   `resolve-next-address` call only); an error of `resolve-next-address` prints as
//!   `next err(CODE)`, one of `resolve-addresses` as `err(CODE)`
//! - `start-resolve NAME`: `resolve-addresses` only; the stream is kept, unread
//! - `resolve-many NAME COUNT`: start COUNT lookups at once, then wait for all of them;
//!   prints how many returned an address and each error code with its count
//! - `write-for N MS`: write pattern bytes whenever the permit allows, for MS milliseconds
//!   (a peer that never reads stops the permit); prints the bytes accepted
//! - `exit CODE`, `trap`, `hang`: end the guest abruptly (see `weir_guests::end_abruptly`)
//! - `serve N COUNT` (echo server: accept COUNT connections, echo each until the peer closes,
//!   all at once with one poll loop; prints how many connections and bytes it served)
use std::collections::HashMap;

use wasip2::clocks::monotonic_clock::subscribe_duration;
use wasip2::io::streams::{InputStream, OutputStream, StreamError};
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::ip_name_lookup::resolve_addresses;
use wasip2::sockets::network::{IpAddress, IpAddressFamily, IpSocketAddress, Network};
use wasip2::sockets::tcp::{ShutdownType, TcpSocket};
use wasip2::sockets::tcp_create_socket::create_tcp_socket;
use weir_guests::{format_addr, serve, show, stream_error, wait, wit_addr};

struct Entry {
    socket: TcpSocket,
    streams: Option<(InputStream, OutputStream)>,
}

fn parse_addr(text: &str, sockets: &HashMap<String, Entry>) -> IpSocketAddress {
    match text.strip_prefix('$') {
        Some(name) => sockets[name].socket.local_address().expect("local address"),
        None => wit_addr(text),
    }
}

fn format_ip(a: &IpAddress) -> String {
    match a {
        IpAddress::Ipv4((x, y, z, w)) => format!("{x}.{y}.{z}.{w}"),
        IpAddress::Ipv6(s) => std::net::Ipv6Addr::new(s.0, s.1, s.2, s.3, s.4, s.5, s.6, s.7).to_string(),
    }
}

/// Writes `bytes` with the check-write/write loop, then flushes and waits for the flush.
fn write_all(out: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    write_only(out, bytes)?;
    out.flush()?;
    let ready = out.subscribe();
    loop {
        if out.check_write()? > 0 {
            return Ok(());
        }
        ready.block();
    }
}

/// The check-write/write loop alone, spending each permit in up to three writes (the WIT
/// allows any number of writes within one permit).
fn write_only(out: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    let ready = out.subscribe();
    let mut offset = 0;
    while offset < bytes.len() {
        let permit = out.check_write()? as usize;
        if permit == 0 {
            ready.block();
            continue;
        }
        let end = offset + permit.min(bytes.len() - offset);
        let third = (end - offset).div_ceil(3).max(1);
        while offset < end {
            let n = third.min(end - offset);
            out.write(&bytes[offset..offset + n])?;
            offset += n;
        }
    }
    Ok(())
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Reads until the stream closes; returns the byte count, or the count and the error.
fn read_all(input: &InputStream) -> (usize, Option<String>) {
    let ready = input.subscribe();
    let mut total = 0;
    loop {
        match input.read(65536) {
            Ok(bytes) if bytes.is_empty() => ready.block(),
            Ok(bytes) => total += bytes.len(),
            Err(StreamError::Closed) => return (total, None),
            Err(e) => return (total, Some(stream_error(e))),
        }
    }
}

fn stream_result<T: std::fmt::Debug>(r: Result<T, StreamError>) -> String {
    match r {
        Ok(v) => format!("ok({v:?})"),
        Err(e) => stream_error(e),
    }
}

/// Every input-stream operation once, each with length 0 and 10.
fn probe_input(input: &InputStream) -> String {
    let mut results = Vec::new();
    for len in [0, 10] {
        results.push(format!("read({len})={}", stream_result(input.read(len).map(|b| b.len()))));
        results.push(format!("skip({len})={}", stream_result(input.skip(len))));
        results.push(format!(
            "blocking-read({len})={}",
            stream_result(input.blocking_read(len).map(|b| b.len()))
        ));
        results.push(format!("blocking-skip({len})={}", stream_result(input.blocking_skip(len))));
    }
    results.push(format!("ready={}", input.subscribe().ready()));
    results.join(" ")
}

/// Every output-stream operation once, each with length 0 and 1 (no check-write first: a
/// closed stream has no permit to check).
fn probe_output(out: &OutputStream) -> String {
    let mut results = vec![format!("check-write={}", stream_result(out.check_write()))];
    for len in [0usize, 1] {
        let bytes = vec![b'x'; len];
        results.push(format!("write({len})={}", stream_result(out.write(&bytes))));
        results.push(format!("write-zeroes({len})={}", stream_result(out.write_zeroes(len as u64))));
        results.push(format!(
            "blocking-write-and-flush({len})={}",
            stream_result(out.blocking_write_and_flush(&bytes))
        ));
        results.push(format!(
            "blocking-write-zeroes-and-flush({len})={}",
            stream_result(out.blocking_write_zeroes_and_flush(len as u64))
        ));
    }
    results.push(format!("flush={}", stream_result(out.flush())));
    results.push(format!("blocking-flush={}", stream_result(out.blocking_flush())));
    results.push(format!("ready={}", out.subscribe().ready()));
    results.join(" ")
}

fn resolve(network: &Network, name: &str, wait_for_all: bool) -> String {
    let stream = match resolve_addresses(network, name) {
        Ok(stream) => stream,
        Err(e) => return format!("err({})", e.name()),
    };
    let mut addresses = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(a)) => addresses.push(format_ip(&a)),
            Ok(None) => return format!("ok([{}])", addresses.join(", ")),
            Err(e) if e.name() == "would-block" && wait_for_all => stream.subscribe().block(),
            // Marked, to tell it from an error of `resolve-addresses` itself.
            Err(e) => return format!("next err({})", e.name()),
        }
    }
}

fn main() {
    let network: Network = instance_network();
    let mut sockets: HashMap<String, Entry> = HashMap::new();
    let mut pending_lookups = Vec::new();
    for command in std::env::args().skip(1) {
        let words: Vec<&str> = command.split_whitespace().collect();
        let name = words.get(1).copied().unwrap_or("").to_string();
        let arg = |i: usize| words.get(i).copied().unwrap_or("");
        weir_guests::end_abruptly(&words);
        let line = match words[0] {
            "socket" => {
                let family = if arg(2) == "v6" { IpAddressFamily::Ipv6 } else { IpAddressFamily::Ipv4 };
                match create_tcp_socket(family) {
                    Ok(socket) => {
                        sockets.insert(name.clone(), Entry { socket, streams: None });
                        "ok".to_string()
                    }
                    Err(e) => format!("err({})", e.name()),
                }
            }
            "bind" => {
                let s = &sockets[&name].socket;
                match s.start_bind(&network, parse_addr(arg(2), &sockets)) {
                    Ok(()) => show(s.finish_bind()),
                    Err(e) => format!("err({})", e.name()),
                }
            }
            "start-bind" => show(sockets[&name].socket.start_bind(&network, parse_addr(arg(2), &sockets))),
            "finish-bind" => show(sockets[&name].socket.finish_bind()),
            "connect" | "start-connect" => {
                let addr = parse_addr(arg(2), &sockets);
                let entry = sockets.get_mut(&name).unwrap();
                match entry.socket.start_connect(&network, addr) {
                    Err(e) => format!("err({})", e.name()),
                    Ok(()) if words[0] == "start-connect" => "ok".into(),
                    Ok(()) => {
                        wait(&entry.socket.subscribe(), 5000);
                        match entry.socket.finish_connect() {
                            Ok(streams) => {
                                entry.streams = Some(streams);
                                "ok".into()
                            }
                            Err(e) => format!("err({})", e.name()),
                        }
                    }
                }
            }
            "finish-connect" => {
                let entry = sockets.get_mut(&name).unwrap();
                match entry.socket.finish_connect() {
                    Ok(streams) => {
                        entry.streams = Some(streams);
                        "ok".into()
                    }
                    Err(e) => format!("err({})", e.name()),
                }
            }
            "listen" => {
                let s = &sockets[&name].socket;
                match s.start_listen() {
                    Ok(()) => show(s.finish_listen()),
                    Err(e) => format!("err({})", e.name()),
                }
            }
            "start-listen" => show(sockets[&name].socket.start_listen()),
            "finish-listen" => show(sockets[&name].socket.finish_listen()),
            "backlog" => show(sockets[&name].socket.set_listen_backlog_size(arg(2).parse().unwrap())),
            "accept" => {
                let wait_ms: u64 = arg(3).parse().unwrap_or(5000);
                let listener = &sockets[&name].socket;
                if wait_ms > 0 {
                    wait(&listener.subscribe(), wait_ms);
                }
                match listener.accept() {
                    Ok((socket, input, output)) => {
                        let peer = socket.remote_address().map(|a| format_addr(&a));
                        sockets.insert(arg(2).to_string(), Entry { socket, streams: Some((input, output)) });
                        format!("ok(peer {})", peer.unwrap_or_else(|e| e.name().to_string()))
                    }
                    Err(e) => format!("err({})", e.name()),
                }
            }
            "local" => match sockets[&name].socket.local_address() {
                Ok(a) => format!("ok({})", format_addr(&a)),
                Err(e) => format!("err({})", e.name()),
            },
            "remote" => match sockets[&name].socket.remote_address() {
                Ok(a) => format!("ok({})", format_addr(&a)),
                Err(e) => format!("err({})", e.name()),
            },
            "family" => format!("{:?}", sockets[&name].socket.address_family()),
            "is-listening" => format!("{}", sockets[&name].socket.is_listening()),
            "keepalive" => {
                let s = &sockets[&name].socket;
                let set = match arg(2) {
                    "" => String::new(),
                    v => format!("set {} ", show(s.set_keep_alive_enabled(v == "on"))),
                };
                format!("{set}get {}", show(s.keep_alive_enabled()))
            }
            "keepidle" | "keepintvl" | "keepcnt" | "hop" | "rcvbuf" | "sndbuf" => {
                let s = &sockets[&name].socket;
                let set = if arg(2).is_empty() {
                    String::new()
                } else {
                    let v: u64 = arg(2).parse().unwrap();
                    let r = match words[0] {
                        "keepidle" => s.set_keep_alive_idle_time(v),
                        "keepintvl" => s.set_keep_alive_interval(v),
                        "keepcnt" => s.set_keep_alive_count(v as u32),
                        "hop" => s.set_hop_limit(v as u8),
                        "rcvbuf" => s.set_receive_buffer_size(v),
                        _ => s.set_send_buffer_size(v),
                    };
                    format!("set {} ", show(r))
                };
                let get = match words[0] {
                    "keepidle" => show(s.keep_alive_idle_time()),
                    "keepintvl" => show(s.keep_alive_interval()),
                    "keepcnt" => show(s.keep_alive_count().map(u64::from)),
                    "hop" => show(s.hop_limit().map(u64::from)),
                    "rcvbuf" => show(s.receive_buffer_size()),
                    _ => show(s.send_buffer_size()),
                };
                format!("{set}get {get}")
            }
            "write" => {
                let text = words[2..].join(" ");
                let out = &sockets[&name].streams.as_ref().unwrap().1;
                match write_all(out, text.as_bytes()) {
                    Ok(()) => format!("ok({})", text.len()),
                    Err(e) => stream_error(e),
                }
            }
            "write-bytes" | "blast" => {
                let len: usize = arg(2).parse().unwrap();
                let out = &sockets[&name].streams.as_ref().unwrap().1;
                let result = if words[0] == "blast" {
                    write_only(out, &pattern(len))
                } else {
                    write_all(out, &pattern(len))
                };
                match result {
                    Ok(()) => format!("ok({len})"),
                    Err(e) => stream_error(e),
                }
            }
            "read" => {
                let wait_ms: u64 = arg(2).parse().unwrap_or(5000);
                let input = &sockets[&name].streams.as_ref().unwrap().0;
                if wait_ms > 0 {
                    wait(&input.subscribe(), wait_ms);
                }
                match input.read(65536) {
                    Ok(bytes) => format!("ok({:?})", String::from_utf8_lossy(&bytes)),
                    Err(e) => stream_error(e),
                }
            }
            "probe-input" => probe_input(&sockets[&name].streams.as_ref().unwrap().0),
            "probe-output" => probe_output(&sockets[&name].streams.as_ref().unwrap().1),
            "read-all" => {
                let input = &sockets[&name].streams.as_ref().unwrap().0;
                match read_all(input) {
                    (n, None) => format!("{n} bytes, then closed"),
                    (n, Some(e)) => format!("{n} bytes, then {e}"),
                }
            }
            "shutdown" => {
                let how = match arg(2) {
                    "receive" => ShutdownType::Receive,
                    "send" => ShutdownType::Send,
                    _ => ShutdownType::Both,
                };
                show(sockets[&name].socket.shutdown(how))
            }
            "drop" => {
                sockets.remove(&name);
                "ok".into()
            }
            "drop-streams" => {
                sockets.get_mut(&name).unwrap().streams = None;
                "ok".into()
            }
            "sleep" => {
                subscribe_duration(arg(1).parse::<u64>().unwrap() * 1_000_000).block();
                "ok".into()
            }
            "resolve" => resolve(&network, arg(1), true),
            "resolve-now" => resolve(&network, arg(1), false),
            "start-resolve" => match resolve_addresses(&network, arg(1)) {
                Ok(stream) => {
                    pending_lookups.push(stream);
                    "ok".to_string()
                }
                Err(e) => format!("err({})", e.name()),
            },
            "resolve-many" => resolve_many(&network, arg(1), arg(2).parse().unwrap()),
            "write-for" => {
                let out = &sockets[&name].streams.as_ref().unwrap().1;
                write_for(out, arg(2).parse().unwrap())
            }
            "serve" => match serve(&sockets[&name].socket, Some(arg(2).parse().unwrap())) {
                Ok((connections, bytes)) => format!("served {connections} connections, {bytes} bytes"),
                Err(e) => e,
            },
            other => panic!("unknown command `{other}`"),
        };
        println!("{command} => {line}");
    }
}

fn resolve_many(network: &Network, name: &str, count: usize) -> String {
    let mut errors: std::collections::BTreeMap<String, usize> = Default::default();
    let mut pending = Vec::new();
    for _ in 0..count {
        match resolve_addresses(network, name) {
            Ok(stream) => pending.push(stream),
            Err(e) => *errors.entry(e.name().to_string()).or_default() += 1,
        }
    }
    // Each stream with its pollable (dropped first: it is the stream's child).
    let mut pending: Vec<_> = pending.into_iter().map(|s| (s.subscribe(), s)).collect();
    let mut resolved = 0;
    while !pending.is_empty() {
        let ready = wasip2::io::poll::poll(&pending.iter().map(|(p, _)| p).collect::<Vec<_>>());
        // Highest index first, so that swap_remove leaves the other ready indices valid.
        let mut ready: Vec<usize> = ready.into_iter().map(|i| i as usize).collect();
        ready.sort_unstable_by(|a, b| b.cmp(a));
        for index in ready {
            let (pollable, stream) = pending.swap_remove(index);
            drop(pollable);
            match stream.resolve_next_address() {
                Ok(Some(_)) => resolved += 1,
                Ok(None) => *errors.entry("no-address".into()).or_default() += 1,
                Err(e) => *errors.entry(e.name().to_string()).or_default() += 1,
            }
        }
    }
    format!("resolved {resolved}, errors {errors:?}")
}

fn write_for(out: &OutputStream, ms: u64) -> String {
    let chunk = pattern(65536);
    let deadline = subscribe_duration(ms * 1_000_000);
    let mut accepted: u64 = 0;
    loop {
        match out.check_write() {
            Ok(0) => {
                let ready = out.subscribe();
                if wasip2::io::poll::poll(&[&ready, &deadline]).contains(&1) {
                    break format!("accepted {accepted}");
                }
            }
            Ok(permit) => {
                let n = (permit as usize).min(chunk.len());
                if let Err(e) = out.write(&chunk[..n]) {
                    break stream_error(e);
                }
                accepted += n as u64;
                if deadline.ready() {
                    break format!("accepted {accepted}");
                }
            }
            Err(e) => break stream_error(e),
        }
    }
}
