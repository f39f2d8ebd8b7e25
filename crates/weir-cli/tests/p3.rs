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
    let out = weir()
        .arg("run")
        .arg(example)
        .stdin(Stdio::null())
        .output()
        .unwrap();
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
fn name_lookup_and_tcp_over_wasi_0_3() {
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

    // WASI 0.3 TCP is not provided yet: `create` says so.
    let out = run_probe(&probe, &["-S", "inherit-network"], &["tcp"]);
    assert_eq!(text(&out.stdout), "Err(ErrorCode::NotSupported)\n");
}
