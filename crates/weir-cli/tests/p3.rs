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
