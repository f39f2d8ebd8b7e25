//! WASI 0.3 commands under `weir run`: the `p3_probe` guest (`guests/p3/probe`, built with
//! the `wasip3` crate) exercising wasi:cli, wasi:clocks and wasi:random 0.3.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn probe_file(dir: &Path) -> PathBuf {
    let path = dir.join("p3-probe.wasm");
    std::fs::write(&path, &*weir_test_guests::p3_guest("probe").unwrap()).unwrap();
    path
}

/// `weir run FLAGS COMPONENT ARGS` with stdin closed.
fn run_probe(probe: &Path, flags: &[&str], args: &[&str]) -> Output {
    weir()
        .arg("run")
        .args(flags)
        .arg(probe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_wasi_0_3_command_gets_args_env_cwd_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());

    let out = run_probe(
        &probe,
        &["--env", "GREETING=hi", "--argv0", "probe"],
        &["env", "x"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "args: probe env x\nenv: GREETING=hi\ncwd: None\n"
    );

    for (args, code) in [
        (&["exit", "7"][..], 7),
        (&["exit", "0"], 0),
        (&["exit-ok"], 0),
        (&["fail"], 1),
    ] {
        let out = run_probe(&probe, &[], args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    // `-S p3=n` turns WASI 0.3 off: the component is refused, naming its 0.3 imports.
    let out = run_probe(&probe, &["-S", "p3=n"], &["env"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("wasi:cli/environment@0.3.0") && stderr.contains("-S p3=n"),
        "{stderr}"
    );
}

#[test]
fn stdin_streams_to_stdout_intact_through_0_3_streams() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());
    let input: Vec<u8> = (0..64usize << 20).map(|i| (i % 251) as u8).collect();
    let out = weir_test_guests::output_with_stdin(
        weir().arg("run").arg(&probe).arg("cat"),
        input.clone(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), input.len());
    assert_eq!(weir_test_guests::flood_pattern_mismatch(&out.stdout), None);
    // Both futures resolve to success: stdin ended, every byte reached stdout.
    assert_eq!(
        text(&out.stderr),
        format!("copied {}; stdin Ok(()); stdout Ok(())\n", input.len())
    );
}

#[test]
fn dropping_the_stdin_stream_early_resolves_its_future_to_success() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());
    let input = vec![7u8; 1 << 20];
    let out =
        weir_test_guests::output_with_stdin(weir().arg("run").arg(&probe).arg("stdin-drop"), input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let read: usize = stdout
        .strip_prefix("read ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {stdout}"));
    assert!((1..=16).contains(&read), "{stdout}");
    assert!(stdout.ends_with(" then dropped: Ok(())\n"), "{stdout}");
}

#[test]
fn a_stdout_reader_that_goes_away_is_the_pipe_error() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());
    let (first, out) = weir_test_guests::output_after_reading(
        weir()
            .arg("run")
            .arg(&probe)
            .args(["flood", &(64u64 << 20).to_string()]),
        1 << 16,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(weir_test_guests::flood_pattern_mismatch(&first), None);
    // The stream stops taking bytes, and the future reports `pipe`.
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("flood: ")
            && stderr.ends_with(" bytes not taken, Err(ErrorCode::Pipe)\n"),
        "{stderr}"
    );
    assert!(!stderr.starts_with("flood: 0 bytes"), "{stderr}");
}

#[test]
fn random_reads_are_short_above_the_limit_and_clock_waits_can_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());

    let out = run_probe(&probe, &[], &["random", "100"]);
    assert_eq!(
        text(&out.stdout),
        "random 100 insecure 100\n",
        "{}",
        text(&out.stderr)
    );
    let out = run_probe(&probe, &[], &["random", "0"]);
    assert_eq!(text(&out.stdout), "random 0 insecure 0\n");
    // 0.3 allows short reads: over `max-random-size` the guest gets the limit, no trap.
    let out = run_probe(&probe, &["-S", "max-random-size=10"], &["random", "100"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "random 10 insecure 10\n");

    let out = run_probe(&probe, &[], &["sleep", "50"]);
    let slept: u64 = text(&out.stdout)
        .trim()
        .strip_prefix("slept ")
        .and_then(|rest| rest.strip_suffix(" ms"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("{}", text(&out.stdout)));
    assert!((50..2_000).contains(&slept), "slept {slept} ms");

    // Dropping the pending 10 s wait cancels it: the command ends at once.
    let started = Instant::now();
    let out = run_probe(&probe, &[], &["cancel-sleep"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("short won: true after "),
        "{}",
        text(&out.stdout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_readme_wasi_0_3_example_prints_its_greeting() {
    let example = weir_test_guests::workspace_root().join("examples/p3-hello.wasm");
    let out = run_probe(&example, &[], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello from a WASI 0.3 component\n");
}

#[test]
fn a_guest_built_against_wasi_0_3_2_runs_on_the_0_3_0_interfaces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p3-hello-0-3-2.wasm");
    let bytes = weir_test_guests::p3_guest("hello_0_3_2").unwrap();
    // It really is a 0.3.2 guest: its imports and its export carry that version.
    let names = String::from_utf8_lossy(&bytes);
    assert!(names.contains("wasi:cli/run@0.3.2"));
    assert!(names.contains("wasi:cli/stdout@0.3.2"));
    std::fs::write(&path, &*bytes).unwrap();
    let out = run_probe(&path, &[], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello from a WASI 0.3 component\n");
}

#[test]
fn bytes_taken_before_the_guest_drops_its_stream_and_future_are_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());
    let out = run_probe(&probe, &[], &["drop-halfway"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "written before the drop\n");
}

#[test]
fn udp_over_wasi_0_3_follows_the_wit_and_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());

    let out = run_probe(&probe, &["-S", "inherit-network"], &["udp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = "\
local before bind: Err(ErrorCode::InvalidState)
receive before bind: Err(ErrorCode::InvalidState)
bind a: Ok(())
bind a again: Err(ErrorCode::InvalidState)
bind b to ipv6: Err(ErrorCode::InvalidArgument)
bind b: Ok(())
a port is set: true
send a->b: Ok(())
b received: \"hello\" from a: true
remote before connect: Err(ErrorCode::InvalidState)
disconnect before connect: Err(ErrorCode::InvalidState)
send without address: Err(ErrorCode::InvalidArgument)
send to port 0: Err(ErrorCode::InvalidArgument)
send to 0.0.0.0: Err(ErrorCode::InvalidArgument)
send 70000 bytes: Err(ErrorCode::DatagramTooLarge)
connect b to a: Ok(())
remote is a: true
send connected: Ok(())
send connected elsewhere: Err(ErrorCode::InvalidArgument)
a received: \"reply\" from b: true
disconnect: Ok(())
send unbound: Ok(())
c bound by send: true
a received: \"implicit\"
64 concurrent sends ok: true
64 received: true
";
    assert_eq!(text(&out.stdout), expected);

    // Deny by default: binds, implicit ones included, are access-denied.
    let out = run_probe(&probe, &[], &["udp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "bind a: Err(ErrorCode::AccessDenied)",
        "bind b: Err(ErrorCode::AccessDenied)",
        "send unbound: Err(ErrorCode::AccessDenied)",
        "connect unbound: Err(ErrorCode::AccessDenied)",
    ] {
        assert!(stdout.contains(line), "{line} in:\n{stdout}");
    }
}

#[test]
fn name_lookup_over_wasi_0_3_follows_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());
    let lookup =
        |flags: &[&str], name: &str| text(&run_probe(&probe, flags, &["lookup", name]).stdout);
    assert_eq!(
        lookup(&["-S", "allow-ip-name-lookup"], "localhost"),
        "Ok([IpAddress::Ipv4((127, 0, 0, 1))])\n"
    );
    assert_eq!(
        lookup(&["-S", "allow-ip-name-lookup"], "[::1]"),
        "Ok([IpAddress::Ipv6((0, 0, 0, 0, 0, 0, 0, 1))])\n"
    );
    assert_eq!(
        lookup(&["-S", "allow-ip-name-lookup"], "bad name"),
        "Err(ErrorCode::InvalidArgument)\n"
    );
    // Name lookup off (no rule): as in 0.2, permanent-resolver-failure.
    assert_eq!(
        lookup(&[], "localhost"),
        "Err(ErrorCode::PermanentResolverFailure)\n"
    );
    // A rule for other names: access-denied.
    assert_eq!(
        lookup(&["--allow", "ip-name-lookup=*.example.com"], "localhost"),
        "Err(ErrorCode::AccessDenied)\n"
    );
}

#[test]
fn tcp_over_wasi_0_3_follows_the_wit_and_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());

    let out = run_probe(&probe, &["-S", "inherit-network"], &["tcp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = "\
local before bind: Err(ErrorCode::InvalidState)
remote before connect: Err(ErrorCode::InvalidState)
listening before listen: false
send before connect: Err(ErrorCode::InvalidState)
receive before connect: Err(ErrorCode::InvalidState)
bind to ipv6: Err(ErrorCode::InvalidArgument)
bind to multicast: Err(ErrorCode::InvalidArgument)
backlog 0: Err(ErrorCode::InvalidArgument)
keep-alive count 0: Err(ErrorCode::InvalidArgument)
keep-alive idle 0: Err(ErrorCode::InvalidArgument)
hop limit 0: Err(ErrorCode::InvalidArgument)
keep-alive on: Ok(())
keep-alive is on: Ok(true)
bind: Ok(())
bind again: Err(ErrorCode::InvalidState)
backlog 16: Ok(())
listening: true
listen again: Err(ErrorCode::InvalidState)
connect a listener: Err(ErrorCode::InvalidState)
backlog while listening: Ok(())
connect to port 0: Err(ErrorCode::InvalidArgument)
connect to 0.0.0.0: Err(ErrorCode::InvalidArgument)
connect to ipv6: Err(ErrorCode::InvalidArgument)
connect: Ok(())
connect again: Err(ErrorCode::InvalidState)
bind connected: Err(ErrorCode::InvalidState)
listen connected: Err(ErrorCode::InvalidState)
backlog connected: Err(ErrorCode::InvalidState)
accepted the client: true
client remote is server: true
accepted keep-alive inherited: Ok(true)
client send: Ok(()), 0 unsent
client send again: Err(ErrorCode::InvalidState)
server received: \"ping\", Ok(())
server receive again: Err(ErrorCode::InvalidState)
server send: Ok(()), 0 unsent
client received: \"pong\", Ok(())
connect refused: Err(ErrorCode::ConnectionRefused)
connect after failure: Err(ErrorCode::InvalidState)
local after failure: Err(ErrorCode::InvalidState)
listen unbound: Ok(())
bound by listen: true
";
    assert_eq!(text(&out.stdout), expected);

    // Deny by default: sockets can be made and configured, but binds (the implicit bind
    // of `listen` too) are access-denied.
    let out = run_probe(&probe, &[], &["tcp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "keep-alive on: Ok(())",
        "bind: Err(ErrorCode::AccessDenied)",
        "listen: ErrorCode::AccessDenied",
    ] {
        assert!(stdout.contains(line), "{line} in:\n{stdout}");
    }
    // `tcp=n` turns TCP off while UDP stays on.
    let out = run_probe(&probe, &["-S", "inherit-network,tcp=n"], &["tcp"]);
    assert_eq!(text(&out.stdout), "create: ErrorCode::AccessDenied\n");
}

/// A one-connection-at-a-time echo server on loopback: what it reads, it writes back; the
/// peer's FIN ends the echo with a FIN. Returns its port.
fn echo_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            let Ok(mut connection) = connection else {
                return;
            };
            let mut reader = connection.try_clone().unwrap();
            std::io::copy(&mut reader, &mut connection).unwrap();
            connection.shutdown(std::net::Shutdown::Write).unwrap();
        }
    });
    port
}

#[test]
fn tcp_over_wasi_0_3_moves_64_mib_each_way_intact() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());
    let port = echo_server().to_string();
    let size = (64 << 20).to_string();

    // Against a host server: the guest's send and receive streams at once.
    let out = run_probe(
        &probe,
        &["-S", "inherit-network"],
        &["tcp-echo-client", &port, &size],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("send Ok(()), 0 unsent; received {size} intact true; receive Ok(())\n")
    );

    // Both ends in the guest: its listen stream, an accepted socket's streams and a client's.
    let out = run_probe(&probe, &["-S", "inherit-network"], &["tcp-loop", &size]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "send Ok(()), 0 unsent; echoed {size}: Ok(()) Ok(()); received {size} intact true; receive Ok(())\n"
        )
    );
}

#[test]
fn tcp_over_wasi_0_3_obeys_the_connect_rules() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());
    let port = echo_server().to_string();
    let client = |flags: &[&str]| {
        let out = run_probe(&probe, flags, &["tcp-echo-client", &port, "1000"]);
        text(&out.stdout)
    };
    let allowed = format!("tcp-connect=127.0.0.1:{port}");
    assert_eq!(
        client(&["--allow", &allowed]),
        "send Ok(()), 0 unsent; received 1000 intact true; receive Ok(())\n"
    );
    // A rule for another port: connect is access-denied.
    assert_eq!(
        client(&["--allow", "tcp-connect=127.0.0.1:1"]),
        "connect: ErrorCode::AccessDenied\n"
    );
    // A deny rule wins.
    assert_eq!(
        client(&["-S", "inherit-network", "--deny", &allowed]),
        "connect: ErrorCode::AccessDenied\n"
    );
    // A dead server: refused.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port().to_string()
    };
    let out = run_probe(
        &probe,
        &["-S", "inherit-network"],
        &["tcp-echo-client", &dead, "1"],
    );
    assert_eq!(text(&out.stdout), "connect: ErrorCode::ConnectionRefused\n");
}

#[test]
fn a_reset_connection_ends_the_0_3_receive_stream_with_connection_reset() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());
    // Accepts, lets the guest's bytes arrive, and closes without reading them: a reset.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (connection, _) = listener.accept().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(connection);
    });
    let out = run_probe(&probe, &["-S", "inherit-network"], &["tcp-reset", &port]);
    server.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The receive stream reports the reset; writes after it meet a connection that is no
    // longer writable (EPIPE), which the WIT calls `connection-broken`.
    assert_eq!(
        text(&out.stdout),
        "received 0; receive Err(ErrorCode::ConnectionReset); later writes fail true; \
         send Err(ErrorCode::ConnectionBroken)\n"
    );
}

#[test]
fn bytes_taken_before_a_guest_drops_its_0_3_send_stream_still_reach_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let collector = std::thread::spawn(move || {
        let (mut connection, _) = listener.accept().unwrap();
        // Read slowly at first, so the guest's bytes cannot all fit in the kernel.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut received = Vec::new();
        std::io::Read::read_to_end(&mut connection, &mut received).unwrap();
        received
    });
    let size = 8 << 20;
    let out = run_probe(
        &probe,
        &["-S", "inherit-network"],
        &["tcp-drop-halfway", &port, &size.to_string()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "0 bytes not taken\n");
    let received = collector.join().unwrap();
    let expected: Vec<u8> = (0..size).map(|i| (i % 251) as u8 ^ 3).collect();
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "the bytes arrived changed");
}

/// A sandbox for the filesystem probe: `data/` (hello.txt, sub/, escape -> ../outside),
/// `outside/secret`, and `ro/hello.txt`.
fn filesystem_sandbox(root: &Path) -> (PathBuf, PathBuf) {
    let data = root.join("data");
    let ro = root.join("ro");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/inner.txt"), "inner").unwrap();
    std::fs::write(data.join("hello.txt"), "hello").unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    std::fs::write(root.join("outside/secret"), "secret").unwrap();
    std::os::unix::fs::symlink("../outside", data.join("escape")).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("hello.txt"), "read-only").unwrap();
    (data, ro)
}

#[test]
fn the_filesystem_over_wasi_0_3_streams_stays_in_its_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());
    let (data, ro) = filesystem_sandbox(dir.path());
    let data_flag = format!("--dir={}::/data", data.display());
    let ro_flag = format!("--dir-ro={}::/ro", ro.display());
    let out = run_probe(&probe, &[&data_flag, &ro_flag], &["fs"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = "\
preopens: [\"/data\", \"/ro\"]
flags: Ok(DescriptorFlags(READ | WRITE))
type: Ok(DescriptorType::RegularFile)
write at 0: Ok(()), 0 unwritten
write at 20: Ok(()), 0 unwritten
append: Ok(()), 0 unwritten
size: Ok(24)
read from 0: \"0123456789\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0xABC\", Ok(())
read from 22: \"BC\", Ok(())
read past the end: 0 bytes, Ok(())
set-size 3: Ok(()), size Ok(3)
same object: true false
hash stable: true
read-directory: [\"escape DescriptorType::SymbolicLink\", \"hello.txt DescriptorType::RegularFile\", \"new.txt DescriptorType::RegularFile\", \"sub DescriptorType::Directory\"], Ok(())
stat-at hello.txt: Ok((DescriptorType::RegularFile, 5))
rename: Ok(())
old name: Err(ErrorCode::NoEntry)
new name: Ok(3)
link: Ok(())
link count: Ok(2)
unlink: Ok(()) Ok(())
unlink again: Err(ErrorCode::NoEntry)
mkdir: Ok(())
mkdir again: Err(ErrorCode::Exist)
rmdir: Ok(())
rmdir non-empty: Err(ErrorCode::NotEmpty)
symlink: Ok(())
readlink: Ok(\"hello.txt\")
through the symlink: Ok(5)
open ..: Err(ErrorCode::NotPermitted)
open absolute: Err(ErrorCode::NotPermitted)
open through escape: Err(ErrorCode::NotPermitted)
stat-at through escape: Err(ErrorCode::NotPermitted)
readlink escape: Ok(\"../outside\")
symlink out: Err(ErrorCode::NotPermitted)
write read-only file: Err(ErrorCode::BadDescriptor), 2 unwritten
read a directory: 0 bytes, Err(ErrorCode::IsDirectory)
read-directory of a file: 0 entries, Err(ErrorCode::NotDirectory)
ro create: Err(ErrorCode::NotPermitted)
ro mkdir: Err(ErrorCode::NotPermitted)
ro append: Err(ErrorCode::NotPermitted), 2 unwritten
ro read: \"read-only\", Ok(())
";
    assert_eq!(text(&out.stdout), expected);
    // Nothing changed outside the sandbox, nor in the read-only preopen.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("outside/secret")).unwrap(),
        "secret"
    );
    assert_eq!(
        std::fs::read_to_string(ro.join("hello.txt")).unwrap(),
        "read-only"
    );
    assert!(!ro.join("new.txt").exists());
}

#[test]
fn a_64_mib_file_copies_intact_through_0_3_file_streams() {
    let dir = tempfile::tempdir().unwrap();
    let probe = probe_file(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let bytes: Vec<u8> = (0..64 << 20).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(data.join("big"), &bytes).unwrap();
    let data_flag = format!("--dir={}::/data", data.display());
    let out = run_probe(&probe, &[&data_flag], &["fs-copy", "big", "copy"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("copied {}; read Ok(()); write Ok(())\n", bytes.len())
    );
    assert!(
        std::fs::read(data.join("copy")).unwrap() == bytes,
        "the copy differs"
    );
}
