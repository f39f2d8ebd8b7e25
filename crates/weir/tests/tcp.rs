//! `wasi:sockets/tcp` and `ip-name-lookup` through the real library: a Rust guest
//! (`tcp_script`) runs a script of socket operations and prints what each call returned; the
//! tests assert the transcript line by line, with native Rust peers where a test needs one.
//! Every test runs async and sync.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{MODES, Mode, assert_lines};
use weir::WasiCtxBuilder;
use weir::sockets::NetworkPolicy;

fn script_with(
    mode: Mode,
    policy: NetworkPolicy,
    configure: impl FnOnce(&mut WasiCtxBuilder),
    commands: &[&str],
) -> Vec<String> {
    common::run_script(mode, "tcp_script", policy, configure, commands)
}

fn script(mode: Mode, commands: &[&str]) -> Vec<String> {
    script_with(mode, NetworkPolicy::allow_all(), |_| {}, commands)
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The byte pattern `tcp_script` writes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Runs a guest script on its own thread (for tests with a native peer).
fn spawn_script(mode: Mode, commands: Vec<String>) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
        script(mode, &commands)
    })
}

/// The `tcp_script` guest with `commands` under an allow-all policy, ready to run, with its
/// network counters and its stdout.
fn guest_with_stats(
    commands: &[String],
) -> (
    weir::WasiCtx,
    std::sync::Arc<weir::sockets::NetworkStats>,
    weir::io::MemoryOutputPipe,
) {
    let out = weir::io::MemoryOutputPipe::new(1 << 16);
    let mut builder = WasiCtxBuilder::new();
    builder
        .arg("tcp_script")
        .args(commands.iter().map(String::as_str))
        .network_policy(NetworkPolicy::allow_all())
        .stdout(out.clone());
    let wasi = builder.build();
    let stats = wasi.network_stats();
    (wasi, stats, out)
}

/// Connects to a guest server, retrying while it is not listening yet.
fn connect_when_listening(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => return stream,
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("guest server on port {port} never listened: {e}"),
        }
    }
}

#[test]
fn bind_listen_accept_and_their_state_errors() {
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket l v4",
                "local l",
                "finish-bind l",
                "start-listen l",
                "start-bind l 127.0.0.1:0",
                "start-bind l 127.0.0.1:0",
                "start-listen l",
                "finish-bind l",
                "finish-bind l",
                "start-bind l 127.0.0.1:0",
                "local l",
                "remote l",
                "is-listening l",
                "finish-listen l",
                "accept l x 0",
                "start-listen l",
                "start-listen l",
                "finish-listen l",
                "finish-listen l",
                "is-listening l",
                "start-listen l",
                "start-connect l 127.0.0.1:9",
                "accept l x 0",
                "socket c v4",
                "connect c $l",
                "accept l s",
                "remote c",
                "local s",
                "is-listening s",
                "start-connect c $l",
                "finish-connect c",
                "start-bind c 127.0.0.1:0",
                "start-listen c",
                "backlog c 10",
                "family c",
                "shutdown l both",
                "write c hello",
                "read s",
                "write s world",
                "read c",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "err(invalid-state)",
                "err(not-in-progress)",
                "err(invalid-state)",
                "ok(())",
                "err(concurrency-conflict)",
                "err(concurrency-conflict)",
                "ok(())",
                "err(not-in-progress)",
                "err(invalid-state)",
                "ok(127.0.0.1:*",
                "err(invalid-state)",
                "false",
                "err(not-in-progress)",
                "err(invalid-state)",
                "ok(())",
                "err(concurrency-conflict)",
                "ok(())",
                "err(not-in-progress)",
                "true",
                "err(invalid-state)",
                "err(invalid-state)",
                "err(would-block)",
                "ok",
                "ok",
                "ok(peer 127.0.0.1:*",
                "ok(127.0.0.1:*",
                "ok(127.0.0.1:*",
                "false",
                "err(invalid-state)",
                "err(not-in-progress)",
                "err(invalid-state)",
                "err(invalid-state)",
                "err(invalid-state)",
                "IpAddressFamily::Ipv4",
                "err(invalid-state)",
                "ok(5)",
                "ok(\"hello\")",
                "ok(5)",
                "ok(\"world\")",
            ],
        );
    }
}

#[test]
fn ipv6_connect_accept_and_transfer() {
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket l v6",
                "bind l [::1]:0",
                "listen l",
                "socket c v6",
                "start-connect c 127.0.0.1:80",
                "connect c $l",
                "accept l s",
                "local s",
                "family s",
                "write c over ipv6",
                "read s",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "ok(())",
                "ok(())",
                "ok",
                "err(invalid-argument)",
                "ok",
                "ok(peer [::1]:*",
                "ok([::1]:*",
                "IpAddressFamily::Ipv6",
                "ok(9)",
                "ok(\"over ipv6\")",
            ],
        );
    }
}

#[test]
fn bind_errors() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = format!("bind b 127.0.0.1:{}", taken.local_addr().unwrap().port());
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket a v4",
                "start-bind a [::1]:0",
                "start-bind a 224.0.0.1:0",
                // Not unicast: refused before any bind (Linux would accept it).
                "start-bind a 255.255.255.255:0",
                "start-bind a 239.255.0.1:4000",
                "start-bind a 192.0.2.1:0",
                "socket b v4",
                &taken,
                // A failed bind may be retried.
                "bind b 127.0.0.1:0",
                "socket v v6",
                "start-bind v [::ffff:127.0.0.1]:0",
                "start-bind v 127.0.0.1:0",
                "start-bind v [ff02::1]:0",
                "start-bind v [ff05::2]:4000",
                "family v",
                // The refused binds left the sockets unbound: a unicast bind still works.
                "bind a 0.0.0.0:0",
                "bind v [::]:0",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "err(address-not-bindable)",
                "ok",
                "err(address-in-use)",
                "ok(())",
                "ok",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "IpAddressFamily::Ipv6",
                "ok(())",
                "ok(())",
            ],
        );
    }
}

#[test]
fn connect_errors_and_refused() {
    let closed = free_port();
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket b v4",
                "start-connect b [::1]:80",
                "start-connect b 0.0.0.0:80",
                "start-connect b 127.0.0.1:0",
                "start-connect b 224.0.0.1:80",
                "start-connect b 255.255.255.255:80",
                "finish-connect b",
                "socket v v6",
                "start-connect v [::ffff:127.0.0.1]:80",
                "socket a v4",
                &format!("connect a 127.0.0.1:{closed}"),
                // A failed connect leaves the socket closed.
                "remote a",
                "local a",
                &format!("start-connect a 127.0.0.1:{closed}"),
                "start-bind a 127.0.0.1:0",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "err(not-in-progress)",
                "ok",
                "err(invalid-argument)",
                "ok",
                "err(connection-refused)",
                "err(invalid-state)",
                "err(invalid-state)",
                "err(invalid-state)",
                "err(invalid-state)",
            ],
        );
    }
}

#[test]
fn socket_options_defaults_ranges_and_inheritance() {
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket l v4",
                "keepalive l",
                "keepalive l on",
                "keepidle l 0",
                "keepidle l 1500000000",
                "keepintvl l 0",
                "keepintvl l 30000000000",
                "keepcnt l 0",
                "keepcnt l 5",
                "keepcnt l 1000",
                "hop l 0",
                "hop l 42",
                "rcvbuf l 0",
                "rcvbuf l 65536",
                "sndbuf l 0",
                "sndbuf l 65536",
                "backlog l 0",
                "backlog l 5",
                "bind l 127.0.0.1:0",
                "listen l",
                "backlog l 20",
                "socket c v4",
                "connect c $l",
                "accept l s",
                // The accepted socket inherits the listener's options.
                "keepalive s",
                "keepidle s",
                "keepintvl s",
                "keepcnt s",
                "hop s",
                "rcvbuf s",
                "sndbuf s",
                "backlog s 5",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "get ok(false)",
                "set ok(()) get ok(true)",
                "set err(invalid-argument) get ok(*",
                // Rounded up to whole seconds.
                "set ok(()) get ok(2000000000)",
                "set err(invalid-argument) get ok(*",
                "set ok(()) get ok(30000000000)",
                "set err(invalid-argument) get ok(*",
                "set ok(()) get ok(5)",
                // Clamped to Linux's maximum.
                "set ok(()) get ok(127)",
                "set err(invalid-argument) get ok(*",
                "set ok(()) get ok(42)",
                "set err(invalid-argument) get ok(*",
                // What was set reads back (Linux stores twice the size internally).
                "set ok(()) get ok(65536)",
                "set err(invalid-argument) get ok(*",
                "set ok(()) get ok(65536)",
                "err(invalid-argument)",
                "ok(())",
                "ok(())",
                "ok(())",
                "ok(())",
                "ok",
                "ok",
                "ok(peer 127.0.0.1:*",
                "get ok(true)",
                "get ok(2000000000)",
                "get ok(30000000000)",
                "get ok(127)",
                "get ok(42)",
                "get ok(65536)",
                "get ok(65536)",
                "err(invalid-state)",
            ],
        );
    }
}

#[test]
fn eof_shutdown_and_write_after_shutdown() {
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket l v4",
                "bind l 127.0.0.1:0",
                "listen l",
                "socket c v4",
                "connect c $l",
                "accept l s",
                "write c ping",
                "shutdown c send",
                "shutdown c send",
                // The peer sees the data, then end of stream.
                "read-all s",
                // Once `closed` was reported, every input operation reports it.
                "probe-input s",
                "write c more",
                "probe-output c",
                // The other direction still works.
                "write s pong",
                "read c",
                "shutdown c receive",
                "read c",
                "shutdown s both",
                "write s x",
                "read s 0",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "ok(())",
                "ok(())",
                "ok",
                "ok",
                "ok(peer 127.0.0.1:*",
                "ok(4)",
                "ok(())",
                "ok(())",
                "4 bytes, then closed",
                "read(0)=err(closed) skip(0)=err(closed) blocking-read(0)=err(closed) \
                 blocking-skip(0)=err(closed) read(10)=err(closed) skip(10)=err(closed) \
                 blocking-read(10)=err(closed) blocking-skip(10)=err(closed) ready=true",
                "err(closed)",
                // A write without a permit on a closed stream: `closed`, not a trap.
                "check-write=err(closed) write(0)=err(closed) write-zeroes(0)=err(closed) \
                 blocking-write-and-flush(0)=err(closed) \
                 blocking-write-zeroes-and-flush(0)=err(closed) write(1)=err(closed) \
                 write-zeroes(1)=err(closed) blocking-write-and-flush(1)=err(closed) \
                 blocking-write-zeroes-and-flush(1)=err(closed) flush=err(closed) \
                 blocking-flush=err(closed) ready=true",
                "ok(4)",
                "ok(\"pong\")",
                "ok(())",
                "err(closed)",
                "ok(())",
                "err(closed)",
                "err(closed)",
            ],
        );
    }
}

#[test]
fn reset_by_peer_is_a_failure_then_closed() {
    for mode in MODES {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // Once the guest is connected (it writes a byte), reset: with linger 0, close
            // sends a reset instead of a FIN.
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).unwrap();
            socket2::SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(stream);
        });
        let lines = script(
            mode,
            &[
                "socket c v4",
                &format!("connect c 127.0.0.1:{port}"),
                "write c x",
                "sleep 200",
                "read c",
                "read c",
            ],
        );
        peer.join().unwrap();
        assert_lines(
            &lines,
            &["ok", "ok", "ok(1)", "ok", "err(failed: *", "err(closed)"],
        );
        assert!(
            lines[4].to_lowercase().contains("reset"),
            "{mode:?}: {}",
            lines[4]
        );
    }
}

#[test]
fn shutdown_while_bytes_are_unsent_loses_nothing() {
    const LEN: usize = 8 << 20;
    for mode in MODES {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Reads nothing for a while, so that the guest's last writes stay unsent.
        let peer = common::late_reader(listener, Duration::from_millis(300));
        // `blast` spends each permit in several writes and does not wait for the last ones
        // to leave; the shutdown and the drops come right after.
        let (wasi, stats, out) = guest_with_stats(&[
            "socket c v4".to_string(),
            format!("connect c 127.0.0.1:{port}"),
            format!("blast c {LEN}"),
            "shutdown c send".to_string(),
            "drop-streams c".to_string(),
            "drop c".to_string(),
        ]);
        let component = common::rust_guest("tcp_script").unwrap();
        let outcome = common::run(mode, &component, wasi).unwrap();
        assert_eq!(outcome, weir::command::Outcome::Success);
        let transcript = String::from_utf8(out.contents().to_vec()).unwrap();
        assert!(
            transcript.contains(&format!("=> ok({LEN})")),
            "{transcript}"
        );
        let received = peer.join().unwrap().unwrap();
        assert_eq!(received.len(), LEN, "{mode:?}");
        assert!(received == pattern(LEN), "{mode:?}: bytes differ");
        // The background writer really had bytes to deliver after the guest moved on.
        assert!(
            stats.tcp_bytes_deferred.load(Ordering::Relaxed) > 0,
            "{mode:?}: every write went straight to the kernel; the test proved nothing"
        );
    }
}

/// CPU time the whole test process has used so far.
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[test]
fn waiting_on_sockets_does_not_burn_cpu() {
    // The same script twice: with 1.5 s waits on an idle listener and an idle connection,
    // and with no waits. The difference in CPU time is what the waiting cost.
    let commands = |wait: u32| {
        vec![
            "socket l v4".to_string(),
            "bind l 127.0.0.1:0".to_string(),
            "listen l".to_string(),
            "socket c v4".to_string(),
            "connect c $l".to_string(),
            "accept l s".to_string(),
            format!("accept l x {wait}"),
            format!("read c {wait}"),
        ]
    };
    for mode in MODES {
        let mut cpu = Vec::new();
        for wait in [0, 1500] {
            let before = process_cpu();
            let lines = spawn_script(mode, commands(wait)).join().unwrap();
            cpu.push(process_cpu() - before);
            assert_eq!(lines[6], "err(would-block)", "{mode:?}");
            assert_eq!(lines[7], "ok(\"\")", "{mode:?}");
        }
        let waiting = cpu[1].saturating_sub(cpu[0]);
        assert!(
            waiting < Duration::from_millis(500),
            "{mode:?}: 3 s of waiting used {waiting:?} of CPU"
        );
    }
}

#[test]
fn a_guest_writing_faster_than_the_peer_reads_is_held_back() {
    const LEN: usize = 64 << 20;
    for mode in MODES {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (wasi, stats, out) = guest_with_stats(&[
            "socket c v4".to_string(),
            format!("connect c 127.0.0.1:{port}"),
            format!("write-bytes c {LEN}"),
        ]);
        let component = common::rust_guest("tcp_script").unwrap();
        let guest = std::thread::spawn(move || common::run(mode, &component, wasi));
        let (mut stream, _) = listener.accept().unwrap();
        // The peer reads nothing until the guest's progress stops growing.
        let mut accepted = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = stats.tcp_bytes_sent.load(Ordering::Relaxed);
            if (now == accepted && now > 0) || Instant::now() > deadline {
                break;
            }
            accepted = now;
        }
        // What the host took from the guest is what the kernel buffers hold plus at most one
        // write permit: far less than the 64 MiB the guest wants to write.
        assert!(
            accepted > 0 && accepted < 24 << 20,
            "{mode:?}: the host accepted {accepted} bytes from the guest"
        );
        let mut received = Vec::with_capacity(LEN);
        stream.read_to_end(&mut received).unwrap();
        let outcome = guest.join().unwrap().unwrap();
        assert_eq!(outcome, weir::command::Outcome::Success);
        assert_eq!(received.len(), LEN, "{mode:?}");
        assert!(received == pattern(LEN), "{mode:?}: bytes differ");
        let transcript = String::from_utf8(out.contents().to_vec()).unwrap();
        assert!(
            transcript.contains(&format!("=> ok({LEN})")),
            "{transcript}"
        );
    }
}

#[test]
fn guest_echo_server_and_guest_client() {
    for mode in MODES {
        let port = free_port();
        let server = spawn_script(
            mode,
            vec![
                "socket l v4".into(),
                format!("bind l 127.0.0.1:{port}"),
                "listen l".into(),
                "serve l 2".into(),
            ],
        );
        // The first connection only proves the server listens.
        drop(connect_when_listening(port));
        let client = script(
            mode,
            &[
                "socket c v4",
                &format!("connect c 127.0.0.1:{port}"),
                "write c hello over loopback",
                "shutdown c send",
                "read-all c",
            ],
        );
        assert_lines(
            &client,
            &["ok", "ok", "ok(19)", "ok(())", "19 bytes, then closed"],
        );
        let server = server.join().unwrap();
        assert_lines(
            &server,
            &["ok", "ok(())", "ok(())", "served 2 connections, 19 bytes"],
        );
    }
}

#[test]
fn a_guest_server_handles_100_concurrent_connections() {
    const CLIENTS: usize = 100;
    const LEN: usize = 10_000;
    for mode in MODES {
        let port = free_port();
        let server = spawn_script(
            mode,
            vec![
                "socket l v4".into(),
                format!("bind l 127.0.0.1:{port}"),
                "backlog l 256".into(),
                "listen l".into(),
                format!("serve l {}", CLIENTS + 1),
            ],
        );
        drop(connect_when_listening(port));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    let data: Vec<u8> = (0..LEN).map(|j| ((i + j) % 256) as u8).collect();
                    stream.write_all(&data).unwrap();
                    stream.shutdown(std::net::Shutdown::Write).unwrap();
                    let mut echoed = Vec::new();
                    stream.read_to_end(&mut echoed).unwrap();
                    assert!(echoed == data, "client {i}: echo differs");
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        let server = server.join().unwrap();
        assert_eq!(
            server.last().unwrap(),
            &format!(
                "served {} connections, {} bytes",
                CLIENTS + 1,
                CLIENTS * LEN
            ),
            "{mode:?}"
        );
    }
}

#[test]
fn name_lookup() {
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "resolve localhost",
                "resolve 127.0.0.1",
                "resolve [::1]",
                "resolve ::ffff:10.0.0.1",
                "resolve bad..name",
                "resolve -leading.hyphen",
                "resolve-now 10.1.2.3",
            ],
        );
        assert!(lines[0].contains("127.0.0.1"), "{mode:?}: {}", lines[0]);
        assert_lines(
            &lines[1..],
            &[
                "ok([127.0.0.1])",
                "ok([::1])",
                "ok([10.0.0.1])",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "ok([10.1.2.3])",
            ],
        );
    }
}

#[test]
fn name_lookup_follows_the_policy() {
    let only_localhost = NetworkPolicy::deny_all()
        .allow("ip-name-lookup=localhost")
        .unwrap();
    for mode in MODES {
        let lines = script_with(
            mode,
            NetworkPolicy::allow_all_sockets(),
            |_| {},
            &[
                "resolve localhost",
                "resolve 127.0.0.1",
                "resolve bad..name",
                "resolve-now localhost",
            ],
        );
        // Sockets allowed, lookups not enabled at all: as in wasmtime, the interface is
        // off, and every lookup (IP literals and malformed names too) reports
        // permanent-resolver-failure from `resolve-next-address`.
        assert_lines(
            &lines,
            &[
                "next err(permanent-resolver-failure)",
                "next err(permanent-resolver-failure)",
                "next err(permanent-resolver-failure)",
                "next err(permanent-resolver-failure)",
            ],
        );
        let lines = script_with(
            mode,
            only_localhost.clone(),
            |_| {},
            &[
                "resolve localhost",
                "resolve example.com",
                // A valid Unicode name: converted (IDNA), then judged by the policy.
                "resolve bücher.example",
            ],
        );
        assert!(lines[0].starts_with("ok(["), "{mode:?}: {}", lines[0]);
        assert_eq!(lines[1..], ["err(access-denied)", "err(access-denied)"]);
    }
}

#[test]
fn a_name_lookup_grants_no_connect_to_the_addresses_it_returns() {
    let native = TcpListener::bind("127.0.0.1:0").unwrap();
    native.set_nonblocking(true).unwrap();
    let target = format!("127.0.0.1:{}", native.local_addr().unwrap().port());
    let lookup_only = NetworkPolicy::deny_all()
        .allow("ip-name-lookup=localhost")
        .unwrap()
        .allow("tcp-connect=127.0.0.2")
        .unwrap();
    for mode in MODES {
        let lines = script_with(
            mode,
            lookup_only.clone(),
            |_| {},
            &[
                "resolve localhost",
                "socket c v4",
                &format!("connect c {target}"),
            ],
        );
        // The lookup is allowed and returns 127.0.0.1, yet each connect is judged on its
        // own address: resolving a name is no licence to reach what it names.
        assert!(lines[0].contains("127.0.0.1"), "{mode:?}: {}", lines[0]);
        assert_lines(&lines[1..], &["ok", "err(access-denied)"]);
        assert!(
            native.accept().is_err(),
            "{mode:?}: a denied connect reached the peer"
        );

        // The same script with the address allowed too connects: the denial above was the
        // policy's, not the script's.
        let lines = script_with(
            mode,
            lookup_only.clone().allow("tcp-connect=127.0.0.1").unwrap(),
            |_| {},
            &["socket c v4", &format!("connect c {target}")],
        );
        assert_lines(&lines, &["ok", "ok"]);
        assert!(native.accept().is_ok(), "{mode:?}: the allowed connect");
    }
}

/// Allows everything except `denied`.
fn all_but(denied: &str) -> NetworkPolicy {
    NetworkPolicy::allow_all().deny(denied).unwrap()
}

#[test]
fn each_tcp_use_is_subject_to_the_policy() {
    let native = TcpListener::bind("127.0.0.1:0").unwrap();
    let native_port = native.local_addr().unwrap().port();
    for mode in MODES {
        let lines = script_with(
            mode,
            all_but("tcp-bind=*"),
            |_| {},
            &["socket a v4", "bind a 127.0.0.1:0"],
        );
        assert_lines(&lines, &["ok", "err(access-denied)"]);

        let lines = script_with(
            mode,
            all_but("tcp-listen=127.0.0.1"),
            |_| {},
            &["socket a v4", "bind a 127.0.0.1:0", "listen a"],
        );
        assert_lines(&lines, &["ok", "ok(())", "err(access-denied)"]);

        let lines = script_with(
            mode,
            all_but(&format!("tcp-connect=127.0.0.1:{native_port}")),
            |_| {},
            &["socket a v4", &format!("connect a 127.0.0.1:{native_port}")],
        );
        assert_lines(&lines, &["ok", "err(access-denied)"]);

        // A refused peer is disconnected and never reaches the guest.
        let lines = script_with(
            mode,
            all_but("tcp-accept=127.0.0.1"),
            |_| {},
            &[
                "socket l v4",
                "bind l 127.0.0.1:0",
                "listen l",
                "socket c v4",
                "connect c $l",
                "accept l s 300",
                "read-all c",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "ok(())",
                "ok(())",
                "ok",
                "ok",
                "err(would-block)",
                "0 bytes, then closed",
            ],
        );

        let lines = script_with(
            mode,
            NetworkPolicy::allow_all(),
            |b| {
                b.allow_tcp(false);
            },
            &["socket a v4"],
        );
        assert_lines(&lines, &["err(access-denied)"]);

        let lines = script_with(
            mode,
            NetworkPolicy::allow_all(),
            |b| {
                b.max_tcp_sockets(1);
            },
            &["socket a v4", "socket b v4", "drop a", "socket c v4"],
        );
        assert_lines(&lines, &["ok", "err(new-socket-limit)", "ok", "ok"]);
    }
    drop(native);
}

#[test]
fn accept_at_the_socket_limit_leaves_the_connection_queued() {
    for mode in MODES {
        let lines = script_with(
            mode,
            NetworkPolicy::allow_all(),
            |b| {
                b.max_tcp_sockets(3);
            },
            &[
                "socket l v4",
                "bind l 127.0.0.1:0",
                "listen l",
                "socket c v4",
                "connect c $l",
                "socket x v4",
                "accept l s",
                "drop x",
                "accept l s",
                "write c still there",
                "read s",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "ok(())",
                "ok(())",
                "ok",
                "ok",
                "ok",
                "err(new-socket-limit)",
                "ok",
                "ok(peer 127.0.0.1:*",
                "ok(11)",
                "ok(\"still there\")",
            ],
        );
    }
}

#[test]
fn connection_counters() {
    let commands = [
        "socket l v4",
        "bind l 127.0.0.1:0",
        "listen l",
        "socket c v4",
        "connect c $l",
        "accept l s",
        "write c 12345",
        "read s",
    ];
    let (wasi, stats, _) = guest_with_stats(&commands.map(String::from));
    let component = common::rust_guest("tcp_script").unwrap();
    common::run(Mode::Async, &component, wasi).unwrap();
    assert_eq!(stats.tcp_connections.load(Ordering::Relaxed), 2);
    assert_eq!(stats.tcp_bytes_sent.load(Ordering::Relaxed), 5);
    assert_eq!(stats.tcp_bytes_received.load(Ordering::Relaxed), 5);
}
