//! `wasi:sockets/udp` through the real library: a Rust guest (`udp_script`) runs a script of
//! socket operations and prints what each call returned; the tests assert the transcript
//! line by line. Every test runs async and sync.

mod common;

use common::{MODES, Mode, assert_lines, assert_trap, run_rust};
use weir::WasiCtxBuilder;
use weir::sockets::NetworkPolicy;

/// Runs the `udp_script` guest under `policy` (plus `configure`); returns what each command
/// printed.
fn script_with(
    mode: Mode,
    policy: NetworkPolicy,
    configure: impl FnOnce(&mut WasiCtxBuilder),
    commands: &[&str],
) -> Vec<String> {
    common::run_script(mode, "udp_script", policy, configure, commands)
}

fn script(mode: Mode, commands: &[&str]) -> Vec<String> {
    script_with(mode, NetworkPolicy::allow_all(), |_| {}, commands)
}

#[test]
fn bind_states_and_errors() {
    // A port that is certainly taken, for address-in-use.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = format!("bind b 127.0.0.1:{}", taken.local_addr().unwrap().port());
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket a v4",
                "local a",
                "finish-bind a",
                "start-bind a 127.0.0.1:0",
                "start-bind a 127.0.0.1:0",
                "local a",
                "finish-bind a",
                "finish-bind a",
                "start-bind a 127.0.0.1:0",
                "local a",
                "remote a",
                "family a",
                "socket b v4",
                "stream b",
                "bind b [::1]:0",
                &taken,
                "bind b 192.0.2.1:0",
                "socket c v6",
                "family c",
                "bind c 127.0.0.1:0",
                "bind c [::ffff:127.0.0.1]:0",
                "bind c [::1]:0",
                "local c",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "err(invalid-state)",
                "err(not-in-progress)",
                "ok(())",
                "err(concurrency-conflict)",
                "err(invalid-state)",
                "ok(())",
                "err(not-in-progress)",
                "err(invalid-state)",
                "ok(127.0.0.1:*",
                "err(invalid-state)",
                "IpAddressFamily::Ipv4",
                "ok",
                "err(invalid-state)",
                "err(invalid-argument)",
                "err(address-in-use)",
                "err(address-not-bindable)",
                "ok",
                "IpAddressFamily::Ipv6",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "ok(())",
                "ok([::1]:*",
            ],
        );
        assert!(
            !lines[9].ends_with(":0)"),
            "bound to a real port: {}",
            lines[9]
        );
    }
}

#[test]
fn socket_options_defaults_ranges_and_readback() {
    for mode in MODES {
        for family in ["v4", "v6"] {
            let socket = format!("socket a {family}");
            let lines = script(
                mode,
                &[
                    &socket,
                    "hop a",
                    "hop a 0",
                    "hop a 42",
                    "rcvbuf a 0",
                    "rcvbuf a 65536",
                    "sndbuf a 0",
                    "sndbuf a 100000",
                ],
            );
            assert_eq!(lines[1], "get ok(64)", "{family}: default hop limit");
            assert_eq!(lines[2], "set err(invalid-argument) get ok(64)", "{family}");
            assert_eq!(lines[3], "set ok(()) get ok(42)", "{family}");
            assert!(
                lines[4].starts_with("set err(invalid-argument) get ok("),
                "{family}: {}",
                lines[4]
            );
            // What was set reads back, although Linux stores twice the size internally.
            assert_eq!(lines[5], "set ok(()) get ok(65536)", "{family}");
            assert!(
                lines[6].starts_with("set err(invalid-argument)"),
                "{}",
                lines[6]
            );
            assert_eq!(lines[7], "set ok(()) get ok(100000)", "{family}");
        }
    }
}

#[test]
fn send_typical_errors_are_returned() {
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket a v4",
                "bind a 127.0.0.1:0",
                "socket b v4",
                "bind b 127.0.0.1:0",
                "stream b",
                "send b - 10",
                "send b [::1]:5 10",
                "send b 0.0.0.0:5 10",
                "send b 127.0.0.1:0 10",
                "send b $a 65508",
                "send b $a 65507",
                "send b $a 0 0",
                "send-mixed b $a 0.0.0.0:1 10",
                "stream a $b",
                "send a 127.0.0.1:9 10",
                "send a $b 10",
                "send a - 10",
                "stream a 0.0.0.0:5",
                "stream a 127.0.0.1:0",
                "stream a [::1]:5",
                "socket c v6",
                "bind c [::1]:0",
                "stream c",
                "send c [::ffff:127.0.0.1]:5 10",
                "send c 127.0.0.1:5 10",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "ok(())",
                "ok",
                "ok(())",
                "ok",
                "err(invalid-argument)",   // unconnected, no address
                "err(invalid-argument)",   // wrong family
                "err(invalid-argument)",   // unspecified address
                "err(invalid-argument)",   // port 0
                "err(datagram-too-large)", // > 65507 on IPv4
                "ok(1)",                   // exactly 65507
                "ok(0)",                   // empty list
                "ok(1)",                   // one sent, then an error: no error
                "ok",
                "err(invalid-argument)", // connected, other address
                "ok(1)",                 // connected, same address
                "ok(1)",                 // connected, no address
                "err(invalid-argument)",
                "err(invalid-argument)",
                "err(invalid-argument)",
                "ok",
                "ok(())",
                "ok",
                "err(invalid-argument)", // IPv4-mapped on an IPv6 socket
                "err(invalid-argument)", // IPv4 on an IPv6 socket
            ],
        );
    }
}

#[test]
fn connection_refused_from_a_closed_loopback_port() {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let connect = format!("stream a 127.0.0.1:{port}");
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket a v4",
                "bind a 127.0.0.1:0",
                &connect,
                "send a - 10",
                "sleep 50",
                "send a - 10",
                "send a - 10",
                "sleep 50",
                "recv a 1 0",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "ok(())",
                "ok",
                "ok(1)",
                "ok",
                "err(connection-refused)",
                "ok(1)",
                "ok",
                "err(connection-refused)",
            ],
        );
    }
}

#[test]
fn connect_disconnect_reconnect_and_receive_filtering() {
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket a v4",
                "bind a 127.0.0.1:0",
                "socket b v4",
                "bind b 127.0.0.1:0",
                "stream b",
                "socket c v4",
                "bind c 127.0.0.1:0",
                "stream c",
                // c's datagram is queued at a before a connects to b: the host must filter it.
                "send c $a 11",
                "sleep 20",
                "stream a $b",
                "remote a",
                "send c $a 12",
                "send b $a 13",
                "recv a 10 500",
                "stream a",
                "remote a",
                "send c $a 14",
                "recv a 10 500",
                "stream a $c",
                "send c $a 15",
                "recv a 10 500",
            ],
        );
        assert_eq!(lines[10], "ok");
        assert!(lines[11].starts_with("ok(127.0.0.1:"), "{}", lines[11]);
        assert_eq!(lines[12], "ok(1)");
        assert_eq!(lines[13], "ok(1)");
        assert!(
            lines[14].starts_with("ok(1) ") && lines[14].ends_with("#13"),
            "{mode:?} only b's datagram: {lines:#?}"
        );
        assert_eq!(lines[15], "ok");
        assert_eq!(lines[16], "err(invalid-state)", "disconnected");
        assert!(
            lines[18].starts_with("ok(1) ") && lines[18].ends_with("#14"),
            "{}",
            lines[18]
        );
        assert_eq!(lines[19], "ok", "reconnect");
        assert!(
            lines[21].starts_with("ok(1) ") && lines[21].ends_with("#15"),
            "{}",
            lines[21]
        );
    }
}

#[test]
fn zero_length_datagrams_are_sent_and_received_in_order() {
    let native = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    native
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let native_addr = native.local_addr().unwrap().to_string();
    for mode in MODES {
        let to_native = format!("send a {native_addr} 0 1");
        let lines = script(
            mode,
            &[
                "socket a v4",
                "bind a 127.0.0.1:0",
                "stream a",
                "socket b v4",
                "bind b 127.0.0.1:0",
                "stream b",
                // Two empty datagrams between two non-empty ones, in one send.
                "send b $a 3",
                "send b $a 0 2",
                "send b $a 5",
                "recv a 10 1000",
                "sleep 50",
                "recv a 10 0",
                &to_native,
            ],
        );
        assert_eq!(lines[6..9], ["ok(1)", "ok(2)", "ok(1)"], "{mode:?}");
        // All four arrive, in order; if the first batch was cut short, the rest follows.
        let lengths: Vec<String> = lines[9]
            .split(' ')
            .chain(lines[11].split(' '))
            .filter_map(|d| d.split_once('#').map(|(_, len)| len.to_string()))
            .collect();
        assert_eq!(lengths, ["3", "0", "0", "5"], "{mode:?}: {lines:#?}");
        assert_eq!(lines[12], "ok(1)");
        let mut buffer = [0u8; 16];
        let (len, _) = native.recv_from(&mut buffer).unwrap();
        assert_eq!(
            len, 0,
            "{mode:?}: the guest's empty datagram reached the peer"
        );
    }
}

#[test]
fn batches_up_to_the_permit_arrive_intact() {
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket a v4",
                "bind a 127.0.0.1:0",
                "socket b v4",
                "bind b 127.0.0.1:0",
                "stream b",
                "stream a $b",
                "check-send a",
                "send a - 1400 64",
                "recv-all b 64 2000",
                "send a - 64 40",
                "recv-all b 40 2000",
                "send-ready a 1000",
            ],
        );
        assert_eq!(lines[6], "ok(64)", "a fresh socket permits a full batch");
        assert_eq!(lines[7], "ok(64)");
        assert_eq!(lines[8], "received 64 intact=true");
        assert_eq!(lines[9], "ok(40)");
        assert_eq!(lines[10], "received 40 intact=true");
        assert_eq!(lines[11], "ready");
    }
}

#[test]
fn send_without_check_send_traps() {
    for mode in MODES {
        let result = run_rust(
            mode,
            "udp_script",
            &[
                "socket a v4",
                "bind a 127.0.0.1:0",
                "stream a",
                "send-unchecked a 127.0.0.1:9 10",
            ],
            |b| {
                b.network_policy(NetworkPolicy::allow_all());
            },
        );
        assert_trap(
            result,
            "send: not preceded by check-send (unpermitted: argument exceeds permitted size)",
        );
    }
}

#[test]
fn send_of_more_than_permitted_traps_and_each_send_consumes_the_permit() {
    for mode in MODES {
        let result = run_rust(
            mode,
            "udp_script",
            &[
                "socket a v4",
                "bind a 127.0.0.1:0",
                "stream a",
                "send a 127.0.0.1:9 10 65",
            ],
            |b| {
                b.network_policy(NetworkPolicy::allow_all());
            },
        );
        assert_trap(
            result,
            "65 datagrams exceed the 64 permitted by check-send (unpermitted: argument exceeds \
             permitted size)",
        );
        // `send` then a second `send` without a new check-send: the permit was used up.
        let result = run_rust(
            mode,
            "udp_script",
            &[
                "socket a v4",
                "bind a 127.0.0.1:0",
                "stream a",
                "send a 127.0.0.1:9 10",
                "send-unchecked a 127.0.0.1:9 10",
            ],
            |b| {
                b.network_policy(NetworkPolicy::allow_all());
            },
        );
        assert_trap(result, "not preceded by check-send");
    }
}

#[test]
fn policy_denies_by_default() {
    for mode in MODES {
        let lines = script_with(
            mode,
            NetworkPolicy::deny_all(),
            |_| {},
            &["socket a v4", "bind a 127.0.0.1:0"],
        );
        assert_lines(&lines, &["ok", "err(access-denied)"]);
    }
}

#[test]
fn policy_allow_and_deny_for_each_udp_use() {
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let policy = || {
        NetworkPolicy::deny_all()
            .allow("udp-bind=127.0.0.1")
            .unwrap()
            .allow(&format!("udp-send=127.0.0.0/8:{port}"))
            .unwrap()
            .deny("udp-send=127.0.0.2")
            .unwrap()
    };
    let allowed = format!("send a 127.0.0.1:{port} 10");
    let denied_by_rule = format!("send a 127.0.0.2:{port} 10");
    let other_port = format!("send a 127.0.0.1:{} 10", port.wrapping_add(1));
    let connect_denied = format!("stream b 127.0.0.1:{}", port.wrapping_add(1));
    for mode in MODES {
        let lines = script_with(
            mode,
            policy(),
            |_| {},
            &[
                "socket a v4",
                "bind a 0.0.0.0:0",
                "bind a 127.0.0.1:0",
                "stream a",
                &allowed,
                &denied_by_rule,
                &other_port,
                "socket b v4",
                "bind b 127.0.0.1:0",
                &connect_denied,
                "recv a 1 300",
            ],
        );
        assert_lines(
            &lines,
            &[
                "ok",
                "err(access-denied)", // udp-bind: 0.0.0.0 not allowed
                "ok(())",
                "ok",
                "ok(1)",
                "err(access-denied)", // deny wins
                "err(access-denied)", // port outside the range
                "ok",
                "ok(())",
                "err(access-denied)", // connecting is a udp-send use
                "ok(0) ",
            ],
        );
        let mut buffer = [0u8; 64];
        assert_eq!(
            receiver.recv(&mut buffer).unwrap(),
            10,
            "the allowed datagram arrived"
        );
    }
}

#[test]
fn policy_udp_receive_drops_datagrams_from_unallowed_sources() {
    for mode in MODES {
        let commands = [
            "socket a v4",
            "bind a 127.0.0.1:0",
            "stream a",
            "socket b v4",
            "bind b 127.0.0.1:0",
            "stream b",
            "send b $a 10",
            "recv a 5 300",
        ];
        let without_receive = NetworkPolicy::deny_all()
            .allow("udp-bind,udp-send=127.0.0.1")
            .unwrap();
        let lines = script_with(mode, without_receive, |_| {}, &commands);
        assert_eq!(lines[6], "ok(1)");
        assert_eq!(
            lines[7], "ok(0) ",
            "the datagram from a non-allowed source is dropped"
        );
        let with_receive = NetworkPolicy::deny_all()
            .allow("udp-bind,udp-send,udp-receive=127.0.0.1")
            .unwrap();
        let lines = script_with(mode, with_receive, |_| {}, &commands);
        assert!(lines[7].starts_with("ok(1) "), "{}", lines[7]);
    }
}

#[test]
fn socket_limit_is_new_socket_limit() {
    for mode in MODES {
        let lines = script_with(
            mode,
            NetworkPolicy::allow_all(),
            |b| {
                b.max_udp_sockets(2);
            },
            &[
                "socket a v4",
                "socket b v6",
                "socket c v4",
                "drop a",
                "socket d v4",
            ],
        );
        assert_lines(&lines, &["ok", "ok", "err(new-socket-limit)", "ok", "ok"]);
    }
}

#[test]
fn udp_disabled_is_access_denied() {
    for mode in MODES {
        let lines = script_with(
            mode,
            NetworkPolicy::allow_all(),
            |b| {
                b.allow_udp(false);
            },
            &["socket a v4"],
        );
        assert_lines(&lines, &["err(access-denied)"]);
    }
}

#[test]
fn echo_between_two_guests() {
    for mode in MODES {
        let port = {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let bind = format!("bind s 127.0.0.1:{port}");
        let server = std::thread::spawn(move || {
            script(mode, &["socket s v4", &bind, "stream s", "echo s 20 5000"])
        });
        // Wait until the server guest holds the port.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(std::time::Instant::now() < deadline, "server never bound");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let connect = format!("stream c 127.0.0.1:{port}");
        let client = script(
            mode,
            &[
                "socket c v4",
                "bind c 127.0.0.1:0",
                &connect,
                "send c - 300 20",
                "recv-all c 20 5000",
            ],
        );
        assert_eq!(client[3], "ok(20)");
        assert_eq!(client[4], "received 20 intact=true");
        let server = server.join().unwrap();
        assert_eq!(server[3], "echoed 20");
    }
}

#[test]
fn receive_limits_ipv6_exchange_and_superseded_streams() {
    for mode in MODES {
        let lines = script(
            mode,
            &[
                "socket a v6",
                "bind a [::1]:0",
                "stream a",
                "socket b v6",
                "bind b [::1]:0",
                "stream b",
                "send b $a 7 5",
                "recv a 0 500",
                "recv a 2 500",
                "recv a 10 500",
                "recv a 10 0",
                "stream a $b",
                "old-check-send a",
                "old-recv a",
                "check-send a",
            ],
        );
        assert_eq!(lines[6], "ok(5)");
        assert_eq!(lines[7], "ok(0) ", "max-results 0 returns an empty list");
        assert!(
            lines[8].starts_with("ok(2) [::1]:"),
            "never more than asked: {}",
            lines[8]
        );
        assert!(lines[9].starts_with("ok(3) "), "the rest: {}", lines[9]);
        assert_eq!(
            lines[10], "ok(0) ",
            "nothing queued: ok([]), not would-block"
        );
        assert_eq!(
            lines[12], "err(invalid-state)",
            "the previous pair no longer works"
        );
        assert_eq!(lines[13], "err(invalid-state)");
        assert_eq!(lines[14], "ok(64)", "the newest pair works");
    }
}

#[test]
fn broadcast_and_multicast_sends_need_a_rule_that_covers_them() {
    let commands = [
        "socket b v4",
        "bind b 127.0.0.1:0",
        "stream b",
        "send b 255.255.255.255:5 10",
        "send b 224.0.0.1:5 10",
        "send b 239.255.255.250:1900 10",
        "stream b 255.255.255.255:5",
        "stream b 224.0.0.1:5",
    ];
    for mode in MODES {
        // Everything on loopback allowed: no rule covers broadcast or multicast addresses.
        let loopback_only = NetworkPolicy::deny_all().allow("*=127.0.0.0/8").unwrap();
        // The socket, its bind and its streams, before the sends.
        let setup = ["ok", "ok(())", "ok"];
        let lines = script_with(mode, loopback_only, |_| {}, &commands);
        assert_lines(&lines, &[&setup[..], &["err(access-denied)"; 5]].concat());
        // Everything allowed: multicast is a grant like any other address (whether the
        // kernel can route it depends on the machine: `ok(1)` here); broadcast still needs
        // `SO_BROADCAST`, which Weir never sets, so the kernel refuses it (EACCES).
        let lines = script(mode, &commands);
        let sends = ["err(access-denied)", "*", "*", "err(access-denied)", "ok"];
        assert_lines(&lines, &[&setup[..], &sends].concat());
    }
}
