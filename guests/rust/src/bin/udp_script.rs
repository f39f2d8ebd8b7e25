//! Runs a script of `wasi:sockets/udp` operations given as arguments (one command per
//! argument, words separated by spaces) and prints one line per command, so that host tests
//! can assert exactly what each WIT call returned.
//!
//! Commands (`N` names a socket; `ADDR` is `1.2.3.4:5`, `[::1]:5`, `$N` for socket N's local
//! address, or `-` for none):
//! - `socket N v4|v6`, `bind N ADDR` (start + finish), `start-bind N ADDR`, `finish-bind N`
//! - `stream N [ADDR]`, `local N`, `remote N`, `family N`
//! - `hop N [VALUE]`, `rcvbuf N [VALUE]`, `sndbuf N [VALUE]` (get, or set then get)
//! - `check-send N`, `send N ADDR LEN [COUNT]` (check-send, then one send of COUNT datagrams),
//!   `send-unchecked N ADDR LEN [COUNT]` (send without check-send), `send-mixed N ADDR1 ADDR2 LEN`
//! - `recv N MAX WAIT_MS` (wait up to WAIT_MS for readability, then receive),
//!   `recv-all N COUNT WAIT_MS` (receive until COUNT datagrams arrived)
//! - `echo N COUNT WAIT_MS` (receive COUNT datagrams, send each back to its source)
//! - `old-check-send N`, `old-recv N` (on the pair a previous `stream` call returned)
//! - `send-ready N WAIT_MS` (wait on the outgoing stream's pollable), `sleep MS`
//! - `exit CODE`, `trap`, `hang`: end the guest abruptly (see `weir_guests::end_abruptly`)
use std::collections::HashMap;

use wasip2::clocks::monotonic_clock::subscribe_duration;
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Network};
use weir_guests::{format_addr, show, wait, wit_addr};
use wasip2::sockets::udp::{IncomingDatagramStream, OutgoingDatagram, OutgoingDatagramStream, UdpSocket};
use wasip2::sockets::udp_create_socket::create_udp_socket;

struct Entry {
    socket: UdpSocket,
    streams: Option<(IncomingDatagramStream, OutgoingDatagramStream)>,
    /// The pair from the previous `stream` call, kept to probe that it no longer works.
    old_streams: Option<(IncomingDatagramStream, OutgoingDatagramStream)>,
}

fn parse_addr(text: &str, sockets: &HashMap<String, Entry>) -> Option<IpSocketAddress> {
    if text == "-" || text.is_empty() {
        return None;
    }
    if let Some(name) = text.strip_prefix('$') {
        return sockets[name].socket.local_address().ok();
    }
    Some(wit_addr(text))
}

fn datagrams(to: &Option<IpSocketAddress>, len: usize, count: usize) -> Vec<OutgoingDatagram> {
    (0..count)
        .map(|i| OutgoingDatagram { data: vec![(i % 256) as u8; len], remote_address: *to })
        .collect()
}

fn main() {
    let network: Network = instance_network();
    let mut sockets: HashMap<String, Entry> = HashMap::new();
    for command in std::env::args().skip(1) {
        let words: Vec<&str> = command.split_whitespace().collect();
        let name = words.get(1).copied().unwrap_or("").to_string();
        let arg = |i: usize| words.get(i).copied().unwrap_or("");
        weir_guests::end_abruptly(&words);
        let line = match words[0] {
            "socket" => {
                let family = if arg(2) == "v6" { IpAddressFamily::Ipv6 } else { IpAddressFamily::Ipv4 };
                match create_udp_socket(family) {
                    Ok(socket) => {
                        sockets.insert(name.clone(), Entry { socket, streams: None, old_streams: None });
                        "ok".to_string()
                    }
                    Err(e) => format!("err({})", e.name()),
                }
            }
            "bind" => {
                let addr = parse_addr(arg(2), &sockets).expect("bind address");
                let s = &sockets[&name].socket;
                match s.start_bind(&network, addr) {
                    Ok(()) => show(s.finish_bind()),
                    Err(e) => format!("err({})", e.name()),
                }
            }
            "start-bind" => {
                let addr = parse_addr(arg(2), &sockets).expect("bind address");
                show(sockets[&name].socket.start_bind(&network, addr))
            }
            "finish-bind" => show(sockets[&name].socket.finish_bind()),
            "stream" => {
                let remote = parse_addr(arg(2), &sockets);
                let entry = sockets.get_mut(&name).unwrap();
                entry.old_streams = entry.streams.take();
                match entry.socket.stream(remote) {
                    Ok(streams) => {
                        entry.streams = Some(streams);
                        "ok".to_string()
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
            "hop" | "rcvbuf" | "sndbuf" => {
                let s = &sockets[&name].socket;
                let set = if arg(2).is_empty() {
                    String::new()
                } else {
                    let v: u64 = arg(2).parse().unwrap();
                    let r = match words[0] {
                        "hop" => s.set_unicast_hop_limit(v as u8),
                        "rcvbuf" => s.set_receive_buffer_size(v),
                        _ => s.set_send_buffer_size(v),
                    };
                    format!("set {} ", show(r))
                };
                let get = match words[0] {
                    "hop" => show(s.unicast_hop_limit().map(u64::from)),
                    "rcvbuf" => show(s.receive_buffer_size()),
                    _ => show(s.send_buffer_size()),
                };
                format!("{set}get {get}")
            }
            "check-send" => show(sockets[&name].streams.as_ref().unwrap().1.check_send()),
            "old-check-send" => show(sockets[&name].old_streams.as_ref().unwrap().1.check_send()),
            "old-recv" => match sockets[&name].old_streams.as_ref().unwrap().0.receive(10) {
                Ok(list) => format!("ok({})", list.len()),
                Err(e) => format!("err({})", e.name()),
            },
            "send" | "send-unchecked" => {
                let to = parse_addr(arg(2), &sockets);
                let len: usize = arg(3).parse().unwrap();
                let count: usize = arg(4).parse().unwrap_or(1);
                let out = &sockets[&name].streams.as_ref().unwrap().1;
                let mut prefix = String::new();
                if words[0] == "send" {
                    match out.check_send() {
                        Ok(n) if (n as usize) < count => {
                            prefix = format!("(permit {n}) ");
                        }
                        Ok(_) => {}
                        Err(e) => prefix = format!("(check-send err({})) ", e.name()),
                    }
                }
                format!("{prefix}{}", show(out.send(&datagrams(&to, len, count))))
            }
            "send-mixed" => {
                let first = parse_addr(arg(2), &sockets);
                let second = parse_addr(arg(3), &sockets);
                let len: usize = arg(4).parse().unwrap();
                let out = &sockets[&name].streams.as_ref().unwrap().1;
                let _ = out.check_send();
                let mut list = datagrams(&first, len, 1);
                list.extend(datagrams(&second, len, 1));
                show(out.send(&list))
            }
            "recv" => {
                let max: u64 = arg(2).parse().unwrap();
                let wait_ms: u64 = arg(3).parse().unwrap_or(0);
                let input = &sockets[&name].streams.as_ref().unwrap().0;
                if wait_ms > 0 {
                    wait(&input.subscribe(), wait_ms);
                }
                match input.receive(max) {
                    Ok(list) => {
                        let from: Vec<String> = list.iter().map(|d| format!("{}#{}", format_addr(&d.remote_address), d.data.len())).collect();
                        format!("ok({}) {}", list.len(), from.join(" "))
                    }
                    Err(e) => format!("err({})", e.name()),
                }
            }
            "recv-all" => {
                let count: usize = arg(2).parse().unwrap();
                let wait_ms: u64 = arg(3).parse().unwrap();
                let input = &sockets[&name].streams.as_ref().unwrap().0;
                let ready = input.subscribe();
                let mut bytes = Vec::new();
                while bytes.len() < count && wait(&ready, wait_ms) {
                    for d in input.receive((count - bytes.len()) as u64).unwrap() {
                        bytes.push(d.data);
                    }
                }
                let intact = bytes.iter().enumerate().all(|(i, d)| d.iter().all(|&b| b == (i % 256) as u8));
                format!("received {} intact={intact}", bytes.len())
            }
            "echo" => {
                let count: usize = arg(2).parse().unwrap();
                let wait_ms: u64 = arg(3).parse().unwrap();
                let (input, out) = sockets[&name].streams.as_ref().unwrap();
                let ready = input.subscribe();
                let mut echoed = 0;
                while echoed < count {
                    if !wait(&ready, wait_ms) {
                        break;
                    }
                    for d in input.receive((count - echoed) as u64).unwrap() {
                        let reply = OutgoingDatagram { data: d.data, remote_address: Some(d.remote_address) };
                        loop {
                            match out.check_send() {
                                Ok(0) => {
                                    out.subscribe().block();
                                }
                                Ok(_) => break,
                                Err(e) => panic!("check-send: {}", e.name()),
                            }
                        }
                        assert_eq!(out.send(&[reply]).unwrap(), 1);
                        echoed += 1;
                    }
                }
                format!("echoed {echoed}")
            }
            "send-ready" => {
                let wait_ms: u64 = arg(2).parse().unwrap();
                let out = &sockets[&name].streams.as_ref().unwrap().1;
                if wait(&out.subscribe(), wait_ms) { "ready".into() } else { "timeout".into() }
            }
            "drop" => {
                sockets.remove(&name);
                "ok".into()
            }
            "sleep" => {
                subscribe_duration(arg(1).parse::<u64>().unwrap() * 1_000_000).block();
                "ok".into()
            }
            other => panic!("unknown command `{other}`"),
        };
        println!("{command} => {line}");
    }
}
