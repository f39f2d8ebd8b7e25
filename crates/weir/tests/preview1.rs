//! Preview1 core modules (Rust `wasm32-wasip1` and C via wasi-libc, no adapter) run through
//! the embedding API (`weir::p1` + `weir::command::run_module_*`), async and sync.

mod common;

use common::{MODES, run_core_guest};
use weir::command::Outcome;
use weir::io::{MemoryInputPipe, MemoryOutputPipe};
use weir::{DirPerms, FilePerms};

fn text(pipe: &MemoryOutputPipe) -> String {
    String::from_utf8_lossy(&pipe.contents()).into_owned()
}

#[test]
fn c_stdio_arguments_environment_and_return_status() {
    for mode in MODES {
        let (stdout, stderr) = (
            MemoryOutputPipe::new(1 << 16),
            MemoryOutputPipe::new(1 << 16),
        );
        let outcome = run_core_guest(mode, "c_hello", &["a", "b c"], |b| {
            b.env("GREETING", "hi")
                .stdout(stdout.clone())
                .stderr(stderr.clone());
        })
        .unwrap();
        // `return 7` from main is proc_exit(7), kept as the status.
        assert_eq!(outcome, Outcome::Exit(7), "{mode:?}");
        assert_eq!(
            text(&stdout),
            "hello from C\nargc=3\nargv[0]=c_hello\nargv[1]=a\nargv[2]=b c\nGREETING=hi\n",
            "{mode:?}"
        );
        assert_eq!(text(&stderr), "to stderr\n", "{mode:?}");
    }
}

#[test]
fn exit_statuses_are_kept_unchanged() {
    for mode in MODES {
        for code in [0, 3, 255] {
            let outcome = run_core_guest(mode, "c_exit", &[&code.to_string()], |_| {}).unwrap();
            // proc_exit(0) is success, as returning from `_start` is.
            let expected = if code == 0 {
                Outcome::Success
            } else {
                Outcome::Exit(code)
            };
            assert_eq!(outcome, expected, "{mode:?} exit({code})");
            assert_eq!(outcome.exit_code(), code, "{mode:?} exit({code})");
        }
        // Returning from `_start` without proc_exit is success.
        let outcome = run_core_guest(mode, "hello_p1", &[], |b| {
            b.stdout(MemoryOutputPipe::new(1 << 10));
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Success, "{mode:?}");
    }
}

#[test]
fn c_files_under_a_preopen_with_escapes_refused() {
    for mode in MODES {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(&outside, data.join("outside")).unwrap();
        let stdout = MemoryOutputPipe::new(1 << 16);
        let outcome = run_core_guest(
            mode,
            "c_files",
            &[
                "/data",
                "/data/outside/secret.txt",
                "/data/../outside/secret.txt",
            ],
            |b| {
                b.stdout(stdout.clone())
                    .preopened_dir(&data, "/data", DirPerms::all(), FilePerms::all())
                    .unwrap();
            },
        )
        .unwrap();
        let out = text(&stdout);
        // The C program returns 0 (not proc_exit) only when every step went as expected.
        assert!(
            matches!(outcome, Outcome::Success | Outcome::Exit(0)),
            "{mode:?}: {out}"
        );
        assert!(out.ends_with("done\n"), "{mode:?}: {out}");
        let refused = "refused: errno 63 (Operation not permitted)";
        for path in [
            "../outside",
            "/data/../outside",
            "/data/outside/secret.txt",
            "/data/../outside/secret.txt",
        ] {
            assert!(
                out.contains(&format!("open {path}: {refused}\n")),
                "{mode:?} {path}: {out}"
            );
        }
        // What the program left on the host, and what it did not touch.
        let mut names: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["kept.txt", "outside"], "{mode:?}");
        assert_eq!(
            std::fs::read_to_string(data.join("kept.txt")).unwrap(),
            "kept\nmore\n"
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("secret.txt")).unwrap(),
            "secret"
        );
    }
}

#[test]
fn read_only_preopens_refuse_writes() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inside.txt"), "inside").unwrap();
        let stdout = MemoryOutputPipe::new(1 << 16);
        let outcome = run_core_guest(mode, "fs_ops", &["read-only"], |b| {
            b.stdout(stdout.clone())
                .preopened_dir(dir.path(), "/data", DirPerms::READ, FilePerms::READ)
                .unwrap();
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Success, "{mode:?}: {}", text(&stdout));
        assert_eq!(text(&stdout), "read-only ok\n", "{mode:?}");
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 1, "{mode:?}: the read-only preopen was changed");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("inside.txt")).unwrap(),
            "inside"
        );
    }
}

#[test]
fn rust_std_fs_read_write_and_escape_scenarios() {
    for mode in MODES {
        for scenario in ["read-write", "escape"] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("inside.txt"), "inside").unwrap();
            let outside = tempfile::tempdir().unwrap();
            std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
            std::os::unix::fs::symlink(outside.path(), dir.path().join("outside")).unwrap();
            let (stdout, stderr) = (
                MemoryOutputPipe::new(1 << 16),
                MemoryOutputPipe::new(1 << 16),
            );
            let outcome = run_core_guest(mode, "fs_ops", &[scenario], |b| {
                b.stdout(stdout.clone())
                    .stderr(stderr.clone())
                    .preopened_dir(dir.path(), "/data", DirPerms::all(), FilePerms::all())
                    .unwrap();
            })
            .unwrap();
            assert_eq!(
                outcome,
                Outcome::Success,
                "{mode:?} {scenario}: {}",
                text(&stderr)
            );
            assert_eq!(text(&stdout), format!("{scenario} ok\n"), "{mode:?}");
            assert_eq!(
                std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(),
                "secret"
            );
        }
    }
}

#[test]
fn stdout_of_16_byte_fd_writes_reaches_an_embedder_pipe_intact() {
    const TOTAL: usize = 1 << 20;
    for mode in MODES {
        let stdout = MemoryOutputPipe::new(2 * TOTAL);
        let outcome = run_core_guest(mode, "p1_io", &["write", &TOTAL.to_string(), "16"], |b| {
            b.stdout(stdout.clone());
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Success, "{mode:?}");
        let out = stdout.contents();
        assert_eq!(out.len(), TOTAL, "{mode:?}");
        assert_eq!(
            weir_test_guests::flood_pattern_mismatch(&out),
            None,
            "{mode:?}"
        );
    }
}

#[test]
fn a_file_is_read_in_64_kib_fd_reads() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..(3 << 20) + 123).map(|i| (i % 253) as u8).collect();
        std::fs::write(dir.path().join("input.bin"), &bytes).unwrap();
        let expected_sum: u64 = bytes.iter().step_by(4096).map(|&b| b as u64).sum();
        let stdout = MemoryOutputPipe::new(1 << 10);
        let outcome = run_core_guest(mode, "p1_io", &["read", "/data/input.bin", "65536"], |b| {
            b.stdout(stdout.clone())
                .stdin(MemoryInputPipe::new(Vec::new()))
                .preopened_dir(dir.path(), "/data", DirPerms::READ, FilePerms::READ)
                .unwrap();
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Success, "{mode:?}");
        // The checksum steps by 4096 within each 64 KiB read, which starts at multiples of
        // 64 KiB: the same bytes as stepping through the whole file.
        assert_eq!(
            text(&stdout),
            format!("{} {expected_sum}\n", bytes.len()),
            "{mode:?}"
        );
    }
}

#[test]
fn poll_oneoff_clocks_and_fd_readdir_cookies() {
    for mode in MODES {
        let stdout = MemoryOutputPipe::new(1 << 16);
        let outcome = run_core_guest(mode, "c_readdir_poll", &["poll"], |b| {
            b.stdout(stdout.clone());
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Success, "{mode:?}");
        let out = text(&stdout);
        assert_eq!(
            out.matches("waited as expected").count(),
            5,
            "{mode:?}: {out}"
        );
        assert!(
            out.contains("10 ms and 5 s: errno 0, 1 events [userdata 1 type 0"),
            "{mode:?}: {out}"
        );
        assert!(
            out.contains("no subscriptions: errno 28, 0 events"),
            "{mode:?}: {out}"
        );

        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "bb", "ccc-long-file-name-here"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let stdout = MemoryOutputPipe::new(1 << 16);
        let outcome = run_core_guest(mode, "c_readdir_poll", &["readdir", "/d", "47"], |b| {
            b.stdout(stdout.clone())
                .preopened_dir(dir.path(), "/d", DirPerms::READ, FilePerms::READ)
                .unwrap();
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Success, "{mode:?}");
        assert_eq!(
            text(&stdout),
            "entries: . .. a bb ccc-long-file-name-here\nseveral calls: yes\npast the end: errno 0, 0 bytes\n",
            "{mode:?}"
        );
    }
}
