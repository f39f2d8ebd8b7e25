//! `weir run` end to end: the real binary, real stdio, real exit statuses.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn root() -> PathBuf {
    weir_test_guests::workspace_root()
}

/// Writes the Rust guest `name` as a component file in `dir`.
fn guest_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, &*weir_test_guests::rust_guest(name).unwrap()).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn the_readme_example_prints_its_greeting() {
    let out = run(weir()
        .arg("run")
        .arg(root().join("examples/hello.wasm"))
        .arg("Ada"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Hello, Ada! This is a WASI 0.2 component running under Weir.\n"
    );
}

#[test]
fn exit_status_argv0_env_and_args_are_passed_like_wasmtime_run() {
    let dir = tempfile::tempdir().unwrap();
    let guest = guest_file(dir.path(), "args_env");
    let out = run(weir()
        .env("FROM_HOST", "yes")
        .args([
            "run",
            "--argv0",
            "prog",
            "--env",
            "EXIT=code:42",
            "--env",
            "FROM_HOST",
        ])
        .arg(&guest)
        .args(["a", "--flag"]));
    assert_eq!(out.status.code(), Some(42), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("args=prog|a|--flag\n"), "{stdout}");
    assert!(stdout.contains("env FROM_HOST=yes\n"), "{stdout}");
    assert!(
        !stdout.contains("env PATH="),
        "environment is not inherited by default"
    );

    let out = run(weir()
        .env("FROM_HOST", "yes")
        .args(["run", "-S", "inherit-env"])
        .arg(&guest));
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("env FROM_HOST=yes\n"));
}

#[test]
fn a_wasm_trap_exits_134_with_message_and_backtrace() {
    let world = "package weir:cli-test;\nworld guest { export wasi:cli/run@0.2.12; }";
    let wat = r#"(module
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0))
  (func $boom unreachable)
  (func (export "wasi:cli/run@0.2.12#run") (result i32) (call $boom) (i32.const 0)))"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trap.wasm");
    std::fs::write(&path, weir_test_guests::wat_guest(world, wat).unwrap()).unwrap();
    let out = run(weir().arg("run").arg(&path));
    assert_eq!(out.status.code(), Some(134));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(stderr.contains("wasm backtrace"), "{stderr}");
    assert!(
        stderr.contains("trap.wasm"),
        "the error names the component: {stderr}"
    );
}

#[test]
fn bad_flags_and_files_are_named_in_the_error() {
    let hello = root().join("examples/hello.wasm");
    // Usage errors, worded and numbered (exit 2) as wasmtime's option parser does it.
    let out = run(weir().args(["run", "-S", "frobnicate"]).arg(&hello));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown -S / --wasi option: frobnicate"),
        "{}",
        text(&out.stderr)
    );

    let out = run(weir()
        .args(["run", "-W", "max-memory-size=big"])
        .arg(&hello));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("max-memory-size=big"),
        "{}",
        text(&out.stderr)
    );

    let out = run(weir().args(["run", "no/such/file.wasm"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no/such/file.wasm"),
        "{}",
        text(&out.stderr)
    );

    let out = run(weir()
        .args(["run", "--dir", "/no/such/dir::/data"])
        .arg(&hello));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--dir /no/such/dir"), "{stderr}");

    let out = run(weir().args(["run", "--invoke", "foo()"]).arg(&hello));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the component exports no function named `foo`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn what_is_not_webassembly_gets_a_one_line_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"").unwrap();
    let prose = dir.path().join("notes.txt");
    std::fs::write(&prose, "hello, this is not wat\n").unwrap();
    let elf = dir.path().join("program");
    std::fs::write(&elf, b"\x7fELF\x02\x01\x01\0\0\0\0\0\xff\xfe").unwrap();
    let expected = "expected a WebAssembly component or module";
    for (path, what) in [
        (&empty, "is empty"),
        (&prose, "is text but not WAT"),
        (&elf, "is not WebAssembly (no `\\0asm` header)"),
        (&dir.path().to_path_buf(), "is a directory"),
    ] {
        // (A backtrace is printed only when asked for with RUST_BACKTRACE.)
        let out = run(weir()
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .arg("run")
            .arg(path));
        assert_eq!(out.status.code(), Some(1), "{path:?}");
        let stderr = text(&out.stderr);
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{path:?}: one line: {stderr}"
        );
        assert!(
            stderr.contains(&format!("`{}` {what}", path.display())) && stderr.contains(expected),
            "{path:?}: {stderr}"
        );
    }
}

/// A component exporting functions with number, string, list and record parameters, and an
/// interface, written in WAT over its WIT.
fn invokable_component(dir: &Path) -> PathBuf {
    let world = r#"package weir:invoke-test;
world guest {
  record point { x: s32, y: s32 }
  export add: func(a: u32, b: u32) -> u32;
  export echo: func(text: string) -> string;
  export sum: func(values: list<u32>) -> u64;
  export manhattan: func(p: point) -> s32;
  export tools: interface {
    double: func(x: u32) -> u32;
  }
}"#;
    let wat = r#"(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 0x1000))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get 3)))
    (local.get $at))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1)))
  (func (export "echo") (param i32 i32) (result i32)
    (i32.store (i32.const 8) (local.get 0))
    (i32.store (i32.const 12) (local.get 1))
    (i32.const 8))
  (func (export "sum") (param $ptr i32) (param $len i32) (result i64)
    (local $total i64)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $len)))
        (local.set $total
          (i64.add (local.get $total) (i64.extend_i32_u (i32.load (local.get $ptr)))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 4)))
        (local.set $len (i32.sub (local.get $len) (i32.const 1)))
        (br $next)))
    (local.get $total))
  (func $abs (param i32) (result i32)
    (select (i32.sub (i32.const 0) (local.get 0)) (local.get 0)
      (i32.lt_s (local.get 0) (i32.const 0))))
  (func (export "manhattan") (param i32 i32) (result i32)
    (i32.add (call $abs (local.get 0)) (call $abs (local.get 1))))
  (func (export "tools#double") (param i32) (result i32)
    (i32.mul (local.get 0) (i32.const 2))))"#;
    let path = dir.join("invokable.wasm");
    std::fs::write(&path, weir_test_guests::wat_guest(world, wat).unwrap()).unwrap();
    path
}

#[test]
fn invoke_calls_a_component_export_with_wave_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let component = invokable_component(dir.path());
    for (call, printed) in [
        ("add(2, 40)", "42"),
        ("echo(\"héllo, \\\"world\\\"\")", "\"héllo, \\\"world\\\"\""),
        ("sum([1, 2, 4294967295])", "4294967298"),
        ("manhattan({x: -3, y: 4})", "7"),
        ("double(21)", "42"),
        ("tools.double(5)", "10"),
    ] {
        let out = run(weir().args(["run", "--invoke", call]).arg(&component));
        assert!(out.status.success(), "{call}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{printed}\n"), "{call}");
    }
    for (call, error) in [
        (
            "add(1)",
            "the arguments of --invoke `add(1)` do not fit `add`",
        ),
        ("add(1, \"x\")", "do not fit `add`"),
        (
            "missing()",
            "the component exports no function named `missing`",
        ),
        ("tools.missing()", "no function named `tools.missing`"),
        ("add(", "cannot parse --invoke `add(`"),
    ] {
        let out = run(weir().args(["run", "--invoke", call]).arg(&component));
        assert_eq!(out.status.code(), Some(1), "{call}");
        assert!(
            text(&out.stderr).contains(error),
            "{call}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{call}");
    }
}

/// A core module exporting functions to invoke, and `_initialize`.
fn invokable_module(dir: &Path) -> PathBuf {
    let path = dir.join("lib.wat");
    std::fs::write(
        &path,
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (global $base (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $base (i32.const 100)))
  (func (export "plus_base") (param i32) (result i32)
    (i32.add (global.get $base) (local.get 0)))
  (func (export "mix") (param i64 f32 f64) (result i64 f32 f64)
    (local.get 0) (local.get 1) (local.get 2))
  (func (export "quit") (param i32) (call $exit (local.get 0)))
  (func (export "spin") (loop $forever (br $forever))))"#,
    )
    .unwrap();
    path
}

#[test]
fn invoke_calls_a_core_export_after_initialize() {
    let dir = tempfile::tempdir().unwrap();
    let module = invokable_module(dir.path());
    let out = run(weir()
        .args(["run", "--invoke", "plus_base"])
        .arg(&module)
        .arg("0x10"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "116\n", "_initialize ran first");
    let out = run(weir().args(["run", "--invoke", "mix"]).arg(&module).args([
        "-9000000000",
        "1.5",
        "-0.25",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "-9000000000\n1.5\n-0.25\n");
    let out = run(weir()
        .args(["run", "--invoke", "quit"])
        .arg(&module)
        .arg("9"));
    assert_eq!(
        out.status.code(),
        Some(9),
        "proc_exit from an invoked export"
    );
    for (args, error) in [
        (
            &["plus_base"][..],
            "`plus_base` takes 1 argument(s) (i32), 0 given",
        ),
        (&["plus_base", "ten"], "argument `ten` is not a valid i32"),
        (&["nope"], "the module exports no function named `nope`"),
    ] {
        let out = run(weir()
            .args(["run", "--invoke", args[0]])
            .arg(&module)
            .args(&args[1..]));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains(error),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // A module with neither `_start` nor --invoke only initializes, as in wasmtime.
    let out = run(weir().arg("run").arg(&module));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    // -W timeout=100ms stops an infinite loop in a core module.
    let started = std::time::Instant::now();
    let out = run(weir()
        .args(["run", "-W", "timeout=100ms", "--invoke", "spin"])
        .arg(&module));
    assert_eq!(out.status.code(), Some(134), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("timed out after 100ms"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn compile_then_run_precompiled_components_and_modules() {
    let dir = tempfile::tempdir().unwrap();
    for (source, args, expected) in [
        (
            root().join("examples/hello.wasm"),
            &["Ada"][..],
            "Hello, Ada!",
        ),
        (
            root().join("examples/hello-p1.wasm"),
            &["Bo"][..],
            "Hello, Bo!",
        ),
    ] {
        let copy = dir.path().join(source.file_name().unwrap());
        std::fs::copy(&source, &copy).unwrap();
        let out = run(weir().arg("compile").arg(&copy));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let compiled = copy.with_extension("cwasm");
        assert!(compiled.exists(), "default output is FILE.cwasm");

        let out = run(weir().arg("run").arg(&compiled).args(args));
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("requires the `--allow-precompiled` flag"),
            "{}",
            text(&out.stderr)
        );
        let out = run(weir()
            .args(["run", "--allow-precompiled"])
            .arg(&compiled)
            .args(args));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with(expected),
            "{}",
            text(&out.stdout)
        );

        // Code compiled with other engine options is refused with a clear error.
        let other = dir.path().join("other.cwasm");
        let out = run(weir()
            .args(["compile", "-W", "timeout=1s", "-o"])
            .arg(&other)
            .arg(&copy));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = run(weir().args(["run", "--allow-precompiled"]).arg(&other));
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("cannot load precompiled"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = run(weir().arg("compile").arg(dir.path().join("missing.wasm")));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing.wasm"));
}

#[test]
fn dir_and_read_only_dir_preopens() {
    let tmp = tempfile::tempdir().unwrap();
    let guest = guest_file(tmp.path(), "fs_ops");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = run(weir()
        .arg("run")
        .arg(format!("--dir={}::/data", data.display()))
        .arg(&guest)
        .arg("read-write"));
    assert!(out.status.success(), "{}", text(&out.stderr));

    std::fs::write(data.join("inside.txt"), "inside").unwrap();
    let out = run(weir()
        .arg("run")
        .arg("--dir-ro")
        .arg(format!("{}::/data", data.display()))
        .arg(&guest)
        .arg("read-only"));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn stdin_is_spliced_to_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let guest = guest_file(tmp.path(), "streams_probe");
    let input: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    for probe in ["splice", "blocking-splice", "cat"] {
        let out = weir_test_guests::output_with_stdin(
            weir().arg("run").arg(&guest).arg(probe),
            input.clone(),
        );
        assert!(out.status.success(), "{probe}: {}", text(&out.stderr));
        assert!(out.stdout == input, "{probe}: output differs");
    }
}

#[test]
fn a_reader_that_goes_away_is_closed_for_the_guest() {
    let tmp = tempfile::tempdir().unwrap();
    let guest = guest_file(tmp.path(), "stdout_flood");
    let (first, out) = weir_test_guests::output_after_reading(
        weir().arg("run").arg(&guest).arg((1u64 << 34).to_string()),
        1 << 16,
    );
    // The flood guest reports the `closed` it saw and exits 1.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Closed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(weir_test_guests::flood_pattern_mismatch(&first), None);
}

#[test]
fn the_udp_example_runs_with_network_access_and_is_denied_without() {
    let example = root().join("examples/udp-hello.wasm");
    let out = run(weir()
        .args(["run", "-S", "inherit-network,udp", "--stats"])
        .arg(&example));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "received \"hello over UDP\"\n");
    assert!(
        text(&out.stderr)
            .contains("udp: 1 datagrams / 14 bytes sent, 1 datagrams / 14 bytes received;")
            && text(&out.stderr).contains("; 0 denied"),
        "{}",
        text(&out.stderr)
    );

    // Deny by default.
    let out = run(weir().arg("run").arg(&example));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("access-denied"),
        "{}",
        text(&out.stderr)
    );

    // `-S udp=n` turns UDP off even with network access.
    let out = run(weir()
        .args(["run", "-S", "inherit-network,udp=n"])
        .arg(&example));
    assert_ne!(out.status.code(), Some(0));
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `message` to the echo server on `port` (retrying until it listens) and returns the
/// reply.
fn echo_through(port: u16, message: &[u8]) -> Vec<u8> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(e) if std::time::Instant::now() > deadline => panic!("never listened: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    };
    stream.write_all(message).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    reply
}

#[test]
fn the_tcp_example_serves_on_a_loopback_port() {
    let example = root().join("examples/tcp-echo.wasm");
    for network in [
        vec!["-S", "inherit-network"],
        vec!["--allow", "tcp-bind,tcp-listen,tcp-accept=127.0.0.1"],
    ] {
        let port = free_port();
        let server = weir()
            .arg("run")
            .args(&network)
            .arg("--stats")
            .arg(&example)
            .arg(format!("127.0.0.1:{port}"))
            .arg("2")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert_eq!(echo_through(port, b"hello tcp"), b"hello tcp");
        assert_eq!(echo_through(port, b"again"), b"again");
        let out = server.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("echoing on 127.0.0.1:{port}\nserved 2 connections, echoed 14 bytes\n")
        );
        assert!(
            text(&out.stderr).contains("tcp: 2 connections, 14 bytes sent, 14 bytes received"),
            "{}",
            text(&out.stderr)
        );
    }

    // Deny by default, and `-S tcp=n` turns TCP off even with network access.
    for flags in [vec![], vec!["-S", "inherit-network,tcp=n"]] {
        let out = run(weir().arg("run").args(&flags).arg(&example));
        assert_ne!(out.status.code(), Some(0));
        assert!(
            text(&out.stderr).contains("access-denied"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn name_lookup_needs_its_own_permission() {
    let dir = tempfile::tempdir().unwrap();
    let guest = guest_file(dir.path(), "tcp_script");
    let lookup = |flags: &[&str]| {
        let out = run(weir()
            .arg("run")
            .args(flags)
            .arg(&guest)
            .arg("resolve localhost"));
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    // Off by default, and `-S inherit-network` is about sockets only (as in wasmtime, which
    // answers permanent-resolver-failure while lookups are off).
    for flags in [&[][..], &["-S", "inherit-network"]] {
        assert_eq!(
            lookup(flags),
            "resolve localhost => next err(permanent-resolver-failure)\n"
        );
    }
    for flags in [
        &["-S", "allow-ip-name-lookup"][..],
        &["--allow", "ip-name-lookup=localhost"],
    ] {
        let out = lookup(flags);
        assert!(out.contains("127.0.0.1"), "{flags:?}: {out}");
    }
    let out = lookup(&[
        "-S",
        "allow-ip-name-lookup",
        "--deny",
        "ip-name-lookup=localhost",
    ]);
    assert_eq!(out, "resolve localhost => err(access-denied)\n");
}

#[test]
fn allow_deny_and_policy_file_rules() {
    let example = root().join("examples/udp-hello.wasm");
    // Receiving is not allowed: the datagram is dropped, counted and logged.
    let out = run(weir()
        .env("WEIR_LOG", "weir::policy=warn")
        .args(["run", "--allow", "udp-bind,udp-send=127.0.0.1", "--stats"])
        .arg(&example));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("network access denied") && stderr.contains("udp-receive"),
        "{stderr}"
    );
    assert!(stderr.contains("1 denied"), "{stderr}");

    // A deny rule wins over the allow rule.
    let out = run(weir()
        .args([
            "run",
            "--allow",
            "*=127.0.0.1",
            "--deny",
            "udp-send=127.0.0.0/8",
        ])
        .arg(&example));
    assert_ne!(out.status.code(), Some(0));

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[allow]]\nuses = [\"udp-bind\", \"udp-send\", \"udp-receive\"]\ncidr = \"127.0.0.0/8\"\n",
    )
    .unwrap();
    let out = run(weir().arg("run").arg("--policy").arg(&policy).arg(&example));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "received \"hello over UDP\"\n");

    let out = run(weir()
        .args(["run", "--allow", "udp-send=localhost"])
        .arg(&example));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--allow udp-send=localhost"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&policy, "[[allow]]\nusees = []\n").unwrap();
    let out = run(weir().arg("run").arg("--policy").arg(&policy).arg(&example));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--policy"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn wasm_and_wasi_limits_are_enforced() {
    let hello = root().join("examples/hello.wasm");
    let out = run(weir().args(["run", "-W", "fuel=1000"]).arg(&hello));
    assert_eq!(out.status.code(), Some(134), "out of fuel is a wasm trap");
    assert!(
        text(&out.stderr).contains("all fuel consumed"),
        "{}",
        text(&out.stderr)
    );

    let out = run(weir().args(["run", "-W", "fuel=100000000"]).arg(&hello));
    assert!(out.status.success(), "enough fuel: {}", text(&out.stderr));

    let out = run(weir().args(["run", "-S", "max-resources=1"]).arg(&hello));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("resource table has no free keys"),
        "{}",
        text(&out.stderr)
    );

    let out = run(weir()
        .args(["run", "-W", "max-memory-size=65536"])
        .arg(&hello));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("exceeds memory limits"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn output_written_without_a_flush_is_delivered_at_exit() {
    // check-write, write "unflushed\n", return: no flush at all. The bytes must still reach
    // stdout, and `weir run` must not wait forever for a flush nobody asked for.
    let world = "package weir:cli-test;\nworld guest {\n  import wasi:io/streams@0.2.12;\n  import wasi:cli/stdout@0.2.12;\n  export wasi:cli/run@0.2.12;\n}";
    let wat = r#"(module
  (import "wasi:cli/stdout@0.2.12" "get-stdout" (func $get_stdout (result i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.check-write" (func $check_write (param i32 i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.write" (func $write (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0x100) "unflushed\n")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0x800))
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (local $out i32)
    (local.set $out (call $get_stdout))
    (call $check_write (local.get $out) (i32.const 0x10))
    (call $write (local.get $out) (i32.const 0x100) (i32.const 10) (i32.const 0x20))
    (i32.load8_u (i32.const 0x20))))"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unflushed.wasm");
    std::fs::write(&path, weir_test_guests::wat_guest(world, wat).unwrap()).unwrap();
    let mut child = weir()
        .arg("run")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("weir run hung at exit waiting for an unrequested flush");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "unflushed\n");
}

/// A command component from WAT over the vendored WASI 0.2.12 WIT, written to `dir`.
fn wat_file(dir: &Path, name: &str, imports: &[&str], wat: &str) -> PathBuf {
    let imports: String = imports.iter().map(|i| format!("  import {i};\n")).collect();
    let world = format!(
        "package weir:cli-test;\nworld guest {{\n{imports}  export wasi:cli/run@0.2.12;\n}}"
    );
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, weir_test_guests::wat_guest(&world, wat).unwrap()).unwrap();
    path
}

#[test]
fn wasmtime_run_flags_that_weir_honours_or_accepts() {
    let hello = root().join("examples/hello.wasm");
    for flags in [
        &["-W", "component-model"][..],
        &["-Wcomponent-model=y"],
        &["-W", "component-model-async,component-model-async=y"],
        &["-S", "p3"],
        &[
            "-S",
            "p3=n,preview2,cli,cli-exit-with-code,network-error-code",
        ],
        &[
            "-S",
            "max-http-fields-size=4096,http-outgoing-body-chunk-size=1024",
        ],
        &["-S", "preview0,max-component-handles=1000"],
        &[
            "-O",
            "opt-level=0",
            "-C",
            "cache=n",
            "-D",
            "debug-info=n,address-map=n",
        ],
        &["-O", "pooling-allocator"],
        &["-W", "gc,reference-types"],
        &["-W", "epoch-interruption"],
        &["-W", "timeout=60s,trap-on-grow-failure=n"],
        &["-W", "max-tables=10,max-memories=10"],
    ] {
        let out = run(weir().arg("run").args(flags).arg(&hello).arg("Ada"));
        assert!(out.status.success(), "{flags:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("Hello, Ada!"), "{flags:?}");
    }
}

#[test]
fn wasmtime_run_flags_that_weir_refuses_say_why() {
    let hello = root().join("examples/hello.wasm");
    for (flags, needle) in [
        (&["-S", "nn"][..], "-S nn: not supported by weir"),
        (&["-S", "cli=n"], "-S cli=n: not supported by weir"),
        (
            &["-D", "debugger=x.wasm"],
            "-D debugger: not supported by weir",
        ),
        (
            &["-W", "unknown-imports-default"],
            "-W unknown-imports-default",
        ),
        (
            &["-W", "unknown-exports-allow"],
            "-W unknown-exports-allow: not supported with components",
        ),
    ] {
        let out = run(weir().arg("run").args(flags).arg(&hello));
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{flags:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).is_empty(),
            "{flags:?}: the guest did not run"
        );
    }
}

#[test]
fn max_random_size_traps_above_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let guest = wat_file(
        dir.path(),
        "random",
        &["wasi:random/random@0.2.12"],
        r#"(module
  (import "wasi:random/random@0.2.12" "get-random-bytes" (func $random (param i64 i32)))
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0x1000))
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (call $random (i64.const 1000) (i32.const 0x10))
    (i32.const 0)))"#,
    );
    let out = run(weir()
        .args(["run", "-S", "max-random-size=999"])
        .arg(&guest));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("requested len 1000 exceeds limit 999"),
        "{}",
        text(&out.stderr)
    );
    let out = run(weir()
        .args(["run", "-S", "max-random-size=1000"])
        .arg(&guest));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The default limit is 64 MiB, as in wasmtime.
    let out = run(weir().arg("run").arg(&guest));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn timeout_stops_a_spinning_guest_and_a_guest_waiting_in_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let spin = wat_file(
        dir.path(),
        "spin",
        &[],
        r#"(module
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0x1000))
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))"#,
    );
    let sleep = wat_file(
        dir.path(),
        "sleep",
        &["wasi:clocks/monotonic-clock@0.2.12", "wasi:io/poll@0.2.12"],
        r#"(module
  (import "wasi:clocks/monotonic-clock@0.2.12" "subscribe-duration" (func $after (param i64) (result i32)))
  (import "wasi:io/poll@0.2.12" "[method]pollable.block" (func $block (param i32)))
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0x1000))
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (call $block (call $after (i64.const 600_000_000_000)))
    (i32.const 0)))"#,
    );
    for guest in [&spin, &sleep] {
        let started = std::time::Instant::now();
        let out = run(weir().args(["run", "-W", "timeout=300ms"]).arg(guest));
        let elapsed = started.elapsed();
        assert_eq!(
            out.status.code(),
            Some(134),
            "{guest:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains("interrupt")
                && text(&out.stderr).contains("timed out after"),
            "{guest:?}: {}",
            text(&out.stderr)
        );
        assert!(
            elapsed < std::time::Duration::from_secs(20),
            "{guest:?} stopped after {elapsed:?}"
        );
    }
}

#[test]
fn unknown_imports_trap_and_wasi_0_3_components() {
    let dir = tempfile::tempdir().unwrap();
    let run_wit = "package wasi:cli@0.2.12;\ninterface run {\n  run: func() -> result;\n}";
    let gadget = "package weir:missing;\ninterface gadget {\n  frob: func();\n}";
    let world = "package weir:cli-test;\nworld guest {\n  import weir:missing/gadget;\n  export wasi:cli/run@0.2.12;\n}";
    let wat = r#"(module
  (import "weir:missing/gadget" "frob" (func $frob))
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0x1000))
  (func (export "wasi:cli/run@0.2.12#run") (result i32) (i32.const 0)))"#;
    let path = dir.path().join("unknown.wasm");
    std::fs::write(
        &path,
        weir_test_guests::wat_guest_with(&[run_wit, gadget], world, wat).unwrap(),
    )
    .unwrap();
    let out = run(weir().arg("run").arg(&path));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("weir:missing/gadget"),
        "{}",
        text(&out.stderr)
    );
    // With -W unknown-imports-trap the import is a trap stub: never called, so the run works.
    let out = run(weir()
        .args(["run", "-W", "unknown-imports-trap"])
        .arg(&path));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Called, the stub fails the call.
    let calls = wat.replace(
        "(result i32) (i32.const 0)",
        "(result i32) (call $frob) (i32.const 0)",
    );
    let path = dir.path().join("unknown-called.wasm");
    std::fs::write(
        &path,
        weir_test_guests::wat_guest_with(&[run_wit, gadget], world, &calls).unwrap(),
    )
    .unwrap();
    let out = run(weir()
        .args(["run", "-W", "unknown-imports-trap"])
        .arg(&path));
    // Wasmtime's stub fails the call with a host error (not a wasm trap): exit 1, as in
    // wasmtime run.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("unknown import: `weir:missing/gadget#frob` has not been defined"),
        "{}",
        text(&out.stderr)
    );

    // A component importing a WASI 0.3 interface weir does not provide yet gets a clear
    // error naming it (the rest of its 0.3 imports are provided).
    let packages = [
        "package wasi:random@0.3.0;\ninterface random {\n  get-random-u64: func() -> u64;\n}",
        "package wasi:http@0.3.0;\ninterface client {\n  count: func() -> u64;\n}",
    ];
    let world = "package weir:cli-test;\nworld guest {\n  import wasi:random/random@0.3.0;\n  \
                 import wasi:http/client@0.3.0;\n}";
    let wat = r#"(module
  (import "wasi:random/random@0.3.0" "get-random-u64" (func (result i64)))
  (import "wasi:http/client@0.3.0" "count" (func (result i64)))
  (memory (export "memory") 1))"#;
    let path = dir.path().join("p3.wasm");
    std::fs::write(
        &path,
        weir_test_guests::wat_guest_with(&packages, world, wat).unwrap(),
    )
    .unwrap();
    let out = run(weir().args(["run", "-S", "p3"]).arg(&path));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "imports WASI 0.3 interfaces weir does not provide yet \
             (wasi:http/client@0.3.0)"
        ),
        "{}",
        text(&out.stderr)
    );
    // With 0.3 off, every 0.3 import is named.
    let out = run(weir().args(["run", "-S", "p3=n"]).arg(&path));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "(wasi:random/random@0.3.0, wasi:http/client@0.3.0): `-S p3=n` turned \
             WASI 0.3 off"
        ),
        "{}",
        text(&out.stderr)
    );
}

/// A Rust guest as the compiler left it: a `wasm32-wasip1` core module, no adapter.
fn core_module(name: &str) -> PathBuf {
    weir_test_guests::rust_guest_dir().join(format!("{name}.wasm"))
}

#[test]
fn preview1_modules_run_natively() {
    let out = run(weir()
        .arg("run")
        .arg(root().join("examples/hello-p1.wasm"))
        .arg("Ada"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Hello, Ada! This is a WASI preview1 module running under Weir.\n"
    );
    // The module built from the source in this checkout behaves the same.
    let out = run(weir().arg("run").arg(core_module("hello_p1")).arg("Ada"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("WASI preview1 module"));
}

#[test]
fn preview1_exit_status_args_and_env_are_kept() {
    // args_env also imports wasi:cli/exit (for its other modes): unknown imports become traps.
    let out = run(weir()
        .args([
            "run",
            "-W",
            "unknown-imports-trap",
            "--env",
            "EXIT=std:42",
            "--env",
            "A=b",
        ])
        .arg(core_module("args_env"))
        .args(["x", "--y"]));
    // proc_exit(42) is exit status 42, as in wasmtime run (the component adapter makes it 1).
    assert_eq!(out.status.code(), Some(42), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("|x|--y\n"), "{stdout}");
    assert!(stdout.contains("env A=b\n"), "{stdout}");

    for status in [0, 3, 255] {
        let out = run(weir()
            .args(["run", "-W", "unknown-imports-trap", "--env"])
            .arg(format!("EXIT=std:{status}"))
            .arg(core_module("args_env")));
        assert_eq!(out.status.code(), Some(status), "{}", text(&out.stderr));
    }

    let out = run(weir().arg("run").arg(core_module("args_env")));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the module imports `wasi:cli/exit@")
            && stderr.contains("unknown-imports-trap"),
        "{stderr}"
    );
}

#[test]
fn preview1_filesystem_under_preopens() {
    for scenario in ["read-write", "escape"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inside.txt"), "inside").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("outside")).unwrap();
        let out = run(weir()
            .arg("run")
            .arg("--dir")
            .arg(format!("{}::/data", dir.path().display()))
            .arg(core_module("fs_ops"))
            .arg(scenario));
        assert!(out.status.success(), "{scenario}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{scenario} ok\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inside.txt"), "inside").unwrap();
    let out = run(weir()
        .arg("run")
        .arg("--dir-ro")
        .arg(format!("{}::/data", dir.path().display()))
        .arg(core_module("fs_ops"))
        .arg("read-only"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("inside.txt")).unwrap(),
        "inside"
    );
}

#[test]
fn preview1_holds_10000_files_open_at_once() {
    // The preview1 component adapter stops near 124 open files; weir's own preview1 has no
    // table of its own, only the process's limit (20,000 on this project's machines).
    let dir = tempfile::tempdir().unwrap();
    let out = run(weir()
        .arg("run")
        .arg("--dir")
        .arg(format!("{}::/data", dir.path().display()))
        .arg(core_module("fs_ops"))
        .args(["many-open", "10000"]));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "opened 10000\n");
    // Past the process's limit: `mfile` (errno 33), not an I/O error.
    let out = run(weir()
        .arg("run")
        .arg("--dir")
        .arg(format!("{}::/data", dir.path().display()))
        .arg(core_module("fs_ops"))
        .args(["many-open", "2000000"]));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with(": errno Some(33)\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn preview1_stdin_clocks_and_poll() {
    let mut child = weir()
        .arg("run")
        .arg(core_module("fs_ops"))
        .arg("stdin-to-stdout")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || stdin.write_all(&input).unwrap())
    };
    let mut output = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut output)
        .unwrap();
    writer.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(output == input, "1 MiB through stdin and stdout intact");

    let out = run(weir().arg("run").arg(core_module("fs_ops")).arg("sleep"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "sleep ok\n");
}

#[test]
fn preview1_modules_importing_preview0_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p0.wasm");
    let module = wat::parse_str(
        r#"(module
  (import "wasi_unstable" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")))"#,
    )
    .unwrap();
    std::fs::write(&path, module).unwrap();
    let out = run(weir().arg("run").arg(&path));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("imports `wasi_unstable.fd_write`: WASI preview0 is not supported"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn weir_file_is_weir_run_file_and_version_prints() {
    // Flags before the file go to `run` too, as with `wasmtime FILE`.
    let out = run(weir()
        .args(["-S", "inherit-env"])
        .arg(root().join("examples/hello.wasm"))
        .arg("Ada"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Hello, Ada!"));
    let out = run(weir().arg(root().join("examples/hello-p1.wasm")).arg("Bo"));
    assert!(
        text(&out.stdout).starts_with("Hello, Bo!"),
        "{}",
        text(&out.stderr)
    );
    let out = run(weir().arg("--version"));
    assert!(out.status.success());
    assert!(
        text(&out.stdout).starts_with("weir "),
        "{}",
        text(&out.stdout)
    );
}

/// A C guest (clang-16 + wasi-libc): a preview1 core module, as `scripts/build-guests.sh`
/// leaves it.
fn c_guest(name: &str) -> PathBuf {
    let path = root().join(format!("guests/c/target/{name}.wasm"));
    assert!(
        path.exists(),
        "C guest `{name}` is not built ({}): run scripts/build-guests.sh",
        path.display()
    );
    path
}

#[test]
fn c_guest_stdio_args_env_and_return_status() {
    let out = run(weir()
        .args(["run", "--env", "GREETING=hi", "--argv0", "c_hello"])
        .arg(c_guest("c_hello"))
        .args(["a", "b c"]));
    // `return 7` from main is proc_exit(7).
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "hello from C\nargc=3\nargv[0]=c_hello\nargv[1]=a\nargv[2]=b c\nGREETING=hi\n"
    );
    assert_eq!(text(&out.stderr), "to stderr\n");

    // The host's environment is not inherited unless asked for; argv[0] is the path as given.
    let guest = c_guest("c_hello");
    let out = run(weir().env("GREETING", "host").arg("run").arg(&guest));
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "hello from C\nargc=1\nargv[0]={}\nGREETING=(unset)\n",
            guest.display()
        )
    );
    let out = run(weir()
        .env("GREETING", "host")
        .args(["run", "--env", "GREETING", "--argv0", "c_hello"])
        .arg(&guest));
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "hello from C\nargc=1\nargv[0]=c_hello\nGREETING=host\n"
    );
}

#[test]
fn c_guest_exit_status_is_the_process_exit_status() {
    for status in [0, 3, 255] {
        let out = run(weir()
            .arg("run")
            .arg(c_guest("c_exit"))
            .arg(status.to_string()));
        assert_eq!(out.status.code(), Some(status), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "");
        assert_eq!(text(&out.stderr), "");
    }
}

#[test]
fn c_guest_files_under_a_preopen_and_escapes_refused() {
    // tmp/data is the preopen; tmp/outside is next to it, reachable on the host both as
    // `data/../outside` and through the symlink data/outside.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&data).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(&outside, data.join("outside")).unwrap();
    let out = run(weir()
        .arg("run")
        .arg("--dir")
        .arg(format!("{}::/data", data.display()))
        .arg(c_guest("c_files"))
        .args([
            "/data",
            "../outside/secret.txt",
            "/data/../outside/secret.txt",
            "/data/outside/secret.txt",
            "/data/outside",
        ]));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Leaving the preopen is `perm` (63) from the host for `..` and symlinks, as in wasmtime;
    // /etc/passwd is refused by wasi-libc itself with `notcapable` (no preopen holds it).
    let refused = "refused: errno 63 (Operation not permitted)";
    assert_eq!(
        text(&out.stdout),
        format!(
            "read a.txt: 11 bytes: hello file\\n\n\
             fopen missing.txt: No such file or directory\n\
             mkdir sub again: File exists\n\
             stat sub/b.txt: size 11, regular file\n\
             read kept.txt: 10 bytes: kept\\nmore\\n\n\
             list .: . .. kept.txt outside sub\n\
             list sub: . .. b.txt\n\
             rmdir sub (not empty): Directory not empty\n\
             list .: . .. kept.txt outside\n\
             open ../outside: {refused}\n\
             open /data/../outside: {refused}\n\
             open /etc/passwd: refused: errno 76 (Capabilities insufficient)\n\
             open ../outside/secret.txt: {refused}\n\
             open /data/../outside/secret.txt: {refused}\n\
             open /data/outside/secret.txt: {refused}\n\
             open /data/outside: {refused}\n\
             done\n"
        )
    );
    assert_eq!(text(&out.stderr), "");

    // On the host: a.txt was renamed into sub, then both removed; kept.txt was written then
    // appended to; the symlink and everything outside are untouched.
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(data.as_path()), ["kept.txt", "outside"]);
    assert_eq!(
        std::fs::read_to_string(data.join("kept.txt")).unwrap(),
        "kept\nmore\n"
    );
    assert!(
        std::fs::symlink_metadata(data.join("outside"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(names(outside.as_path()), ["secret.txt"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
        "secret"
    );
    assert_eq!(names(tmp.path()), ["data", "outside"]);

    // Under --dir-ro the first fopen for writing fails and nothing is created.
    let data = tempfile::tempdir().unwrap();
    let out = run(weir()
        .arg("run")
        .arg("--dir-ro")
        .arg(format!("{}::/data", data.path().display()))
        .arg(c_guest("c_files"))
        .arg("/data"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "FAILED fopen for writing: Operation not permitted\n"
    );
    assert!(names(data.path()).is_empty());
}

#[test]
fn c_guest_holds_10000_files_open_then_gets_emfile() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    let many_open = |n: &str| {
        let mut cmd = weir();
        cmd.arg("run")
            .arg("--dir")
            .arg(format!("{}::/data", dir.path().display()))
            .arg(c_guest("c_many_open"))
            .args(["/data", n]);
        cmd
    };
    // "opened N\nthen failed after MORE more: errno 33 (...)\n": MORE, checked to leave
    // between 4 (stdio and the preopen) and 64 descriptors of the limit to weir itself.
    let more_until = |out: &Output, opened: u64, limit: u64| {
        let stdout = text(&out.stdout);
        let more: u64 = stdout
            .strip_prefix(&format!("opened {opened}\nthen failed after "))
            .and_then(|rest| rest.strip_suffix(" more: errno 33 (No file descriptors available)\n"))
            .and_then(|more| more.parse().ok())
            .unwrap_or_else(|| panic!("{stdout}{}", text(&out.stderr)));
        let held = opened + more;
        assert!(
            held + 4 <= limit && held + 64 >= limit,
            "{held} files held under a limit of {limit}"
        );
    };

    // weir runs with its soft RLIMIT_NOFILE raised to the hard limit (20,000 on this
    // project's machines), as in preview1_holds_10000_files_open_at_once.
    let out = run(&mut many_open("10000"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hard = getrlimit(Resource::Nofile)
        .maximum
        .expect("a finite RLIMIT_NOFILE");
    more_until(&out, 10000, hard);

    // Under a low limit: soft 64, hard 256. weir raises the soft limit, so 100 files open;
    // past 256 every open is `mfile` (EMFILE, which wasi-libc's strerror words this way).
    let low = Rlimit {
        current: Some(64),
        maximum: Some(256),
    };
    let with_low_limit = |mut cmd: Command| {
        // SAFETY: the closure runs in the forked child before exec and only makes the
        // setrlimit system call, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || setrlimit(Resource::Nofile, low).map_err(Into::into));
        }
        cmd
    };
    let out = run(&mut with_low_limit(many_open("100")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    more_until(&out, 100, 256);

    let out = run(&mut with_low_limit(many_open("300")));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let stopped: u64 = stdout
        .strip_prefix("stopped after ")
        .and_then(|rest| rest.strip_suffix(": errno 33 (No file descriptors available)\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}{}", text(&out.stderr)));
    assert!((192..=252).contains(&stopped), "{stdout}");
}

/// Checks that `bytes` is the flood guests' pattern (byte `i` is `i % 251`) of `len` bytes.
fn assert_flood_pattern(bytes: &[u8], len: usize, what: &str) {
    assert_eq!(bytes.len(), len, "{what}: length");
    assert_eq!(
        weir_test_guests::flood_pattern_mismatch(bytes),
        None,
        "{what}: bytes lost or reordered"
    );
}

#[test]
fn stdout_arrives_intact_and_in_order_through_a_slow_pipe_and_into_a_file() {
    // Stdout is written from the guest's thread while the descriptor takes bytes and by the
    // writer thread once it does not: a reader that stalls makes both paths take turns.
    let tmp = tempfile::tempdir().unwrap();
    let component = guest_file(tmp.path(), "stdout_flood");
    let module = core_module("p1_io");
    const TOTAL: usize = 24 << 20;
    let cases: [(&str, Vec<String>); 3] = [
        (
            "component, 64 KiB writes",
            vec![
                component.display().to_string(),
                TOTAL.to_string(),
                "65536".into(),
            ],
        ),
        (
            "component, 1000-byte writes",
            vec![
                component.display().to_string(),
                TOTAL.to_string(),
                "1000".into(),
            ],
        ),
        (
            "preview1, 16-byte fd_writes",
            vec![
                module.display().to_string(),
                "write".into(),
                (1usize << 20).to_string(),
                "16".into(),
            ],
        ),
    ];
    for (what, args) in &cases {
        let len: usize = if what.starts_with("preview1") {
            1 << 20
        } else {
            TOTAL
        };
        let mut child = weir()
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut received = Vec::with_capacity(len);
        let mut buffer = vec![0u8; 8192];
        let mut reads = 0u32;
        loop {
            // Stall now and then so that the pipe fills up and the guest has to queue.
            if reads.is_multiple_of(512) {
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
            reads += 1;
            match stdout.read(&mut buffer).unwrap() {
                0 => break,
                n => received.extend_from_slice(&buffer[..n]),
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        assert_flood_pattern(&received, len, what);

        // The same program with stdout redirected to a regular file.
        let file_path = tmp.path().join("stdout.bin");
        let file = std::fs::File::create(&file_path).unwrap();
        let out = weir()
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        assert_flood_pattern(&std::fs::read(&file_path).unwrap(), len, what);
    }
}

#[test]
fn preview1_fd_readdir_resumes_from_cookies_and_poll_oneoff_honours_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "bb", "ccc-long-file-name-here", "dddd"] {
        std::fs::write(dir.path().join(name), name).unwrap();
    }
    // 47 bytes: exactly the longest entry (24-byte header + 23-byte name), so every call
    // ends in a cut entry that the next call, from the last whole entry's cookie, repeats.
    for (buffer, several) in [("47", "yes"), ("100", "yes"), ("4096", "no")] {
        let out = run(weir()
            .arg("run")
            .arg("--dir")
            .arg(format!("{}::/d", dir.path().display()))
            .arg(c_guest("c_readdir_poll"))
            .args(["readdir", "/d", buffer]));
        assert!(out.status.success(), "{buffer}: {}", text(&out.stdout));
        assert_eq!(
            text(&out.stdout),
            format!(
                "entries: . .. a bb ccc-long-file-name-here dddd\nseveral calls: {several}\n\
                 past the end: errno 0, 0 bytes\n"
            ),
            "buffer of {buffer} bytes"
        );
    }
    // One byte short of the longest entry: no call can make progress, and the guest says so
    // instead of looping.
    let out = run(weir()
        .arg("run")
        .arg("--dir")
        .arg(format!("{}::/d", dir.path().display()))
        .arg(c_guest("c_readdir_poll"))
        .args(["readdir", "/d", "46"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "buffer of 46 bytes holds no whole entry\n"
    );

    let out = run(weir().arg("run").arg(c_guest("c_readdir_poll")).arg("poll"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "relative 50 ms: errno 0, 1 events [userdata 7 type 0 error 0], waited as expected\n\
         10 ms and 5 s: errno 0, 1 events [userdata 1 type 0 error 0], waited as expected\n\
         absolute, in the past: errno 0, 1 events [userdata 3 type 0 error 0], waited as expected\n\
         stdout writable and 5 s: errno 0, 1 events [userdata 4 type 2 error 0], waited as expected\n\
         no subscriptions: errno 28, 0 events, waited as expected\n"
    );
}

#[test]
fn unknown_imports_of_a_module_are_named_or_defined_by_flag() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("unknown.wat");
    // proc_exit(mystery(5) + 3): 3 when `mystery` is the default function returning 0.
    std::fs::write(
        &module,
        r#"(module
  (import "env" "mystery" (func $mystery (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (func (export "_start")
    (call $exit (i32.add (call $mystery (i32.const 5)) (i32.const 3)))))"#,
    )
    .unwrap();
    let out = run(weir().arg("run").arg(&module).env_remove("RUST_BACKTRACE"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .starts_with("Error: the module imports `env.mystery`, which weir does not provide"),
        "{}",
        text(&out.stderr)
    );
    let out = run(weir()
        .args(["run", "-W", "unknown-imports-default"])
        .arg(&module));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = run(weir()
        .args(["run", "-W", "unknown-imports-trap"])
        .arg(&module));
    // An error raised by the host, not a wasm trap code: status 1, as in wasmtime.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("unknown import: `env::mystery` has not been defined"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn host_stdout_written_from_guest_memory_keeps_the_permit_contract() {
    // Host stdout is a file here, so writes of 4 KiB or more take the path that hands guest
    // memory straight to the OS. The permit still binds it: check-write, write the whole
    // permit (arrives), then one byte more than the next permit: a trap, nothing written.
    let dir = tempfile::tempdir().unwrap();
    let wat = r#"(module
  (import "wasi:cli/stdout@0.2.12" "get-stdout" (func $get_stdout (result i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.check-write" (func $check_write (param i32 i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.write" (func $write (param i32 i32 i32 i32)))
  (memory (export "memory") 64)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0x800))
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (local $out i32) (local $permit i32)
    (local.set $out (call $get_stdout))
    (memory.fill (i32.const 0x10000) (i32.const 0x41) (i32.const 0x100000))
    (call $check_write (local.get $out) (i32.const 0x10))
    ;; ok(permit): the permit (a u64) is at 0x18
    (local.set $permit (i32.wrap_i64 (i64.load (i32.const 0x18))))
    (if (i32.lt_u (local.get $permit) (i32.const 4096)) (then unreachable))
    (call $write (local.get $out) (i32.const 0x10000) (i32.const 4096) (i32.const 0x20))
    (if (i32.load8_u (i32.const 0x20)) (then unreachable))
    (call $check_write (local.get $out) (i32.const 0x10))
    (local.set $permit (i32.wrap_i64 (i64.load (i32.const 0x18))))
    (call $write (local.get $out) (i32.const 0x10000)
      (i32.add (local.get $permit) (i32.const 1)) (i32.const 0x20))
    (i32.const 0)))"#;
    let guest = wat_file(
        dir.path(),
        "over_budget",
        &["wasi:io/streams@0.2.12", "wasi:cli/stdout@0.2.12"],
        wat,
    );
    let out_path = dir.path().join("stdout.txt");
    let out = weir()
        .arg("run")
        .arg(&guest)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("write exceeded budget"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&out_path).unwrap(), vec![b'A'; 4096]);
}
