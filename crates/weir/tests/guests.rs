//! Rust guests (built with the preview1 adapter or calling `wasi:*` through `wasip2`) run
//! through the real Weir library, async and sync.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{MODES, Mode, run_rust};
use weir::command::Outcome;
use weir::io::{AsyncWriteStream, MemoryInputPipe, MemoryOutputPipe};
use weir::{DirPerms, FilePerms};

/// Drains `pipe` on a thread while the guest runs, like an embedder would.
struct Drainer {
    done: Arc<AtomicBool>,
    collected: Arc<Mutex<Vec<u8>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Drainer {
    fn start(pipe: MemoryOutputPipe) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let collected = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (done, collected) = (done.clone(), collected.clone());
            std::thread::spawn(move || {
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let chunk = pipe.take_contents();
                    if chunk.is_empty() {
                        if finished {
                            return;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    } else {
                        collected.lock().unwrap().extend_from_slice(&chunk);
                    }
                }
            })
        };
        Drainer {
            done,
            collected,
            thread,
        }
    }

    fn finish(self) -> Vec<u8> {
        self.done.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        Arc::try_unwrap(self.collected)
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

#[test]
fn stdout_check_write_loop_of_64_mib_arrives_intact_in_an_embedder_pipe() {
    const TOTAL: usize = 64 << 20;
    for mode in MODES {
        // A pipe much smaller than the output: the guest must wait for the embedder.
        let pipe = MemoryOutputPipe::new(256 << 10);
        let drainer = Drainer::start(pipe.clone());
        let outcome = run_rust(mode, "stdout_flood", &[&TOTAL.to_string(), "65536"], |b| {
            b.stdout(pipe.clone());
        });
        let output = drainer.finish();
        assert_eq!(outcome.unwrap(), Outcome::Success, "{mode:?}");
        assert_eq!(output.len(), TOTAL, "{mode:?}");
        assert_eq!(
            weir_test_guests::flood_pattern_mismatch(&output),
            None,
            "{mode:?}: corrupted output"
        );
    }
}

fn probe(
    mode: Mode,
    name: &str,
    configure: impl FnOnce(&mut weir::WasiCtxBuilder),
) -> (Outcome, String) {
    probe_with_stderr(mode, name, MemoryOutputPipe::new(1 << 16), configure)
}

fn probe_with_stderr(
    mode: Mode,
    name: &str,
    stderr: MemoryOutputPipe,
    configure: impl FnOnce(&mut weir::WasiCtxBuilder),
) -> (Outcome, String) {
    let outcome = run_rust(mode, "streams_probe", &[name], |b| {
        b.stderr(stderr.clone());
        configure(b);
    })
    .unwrap_or_else(|e| panic!("{mode:?} {name}: {}", common::chain(&e)));
    (
        outcome,
        String::from_utf8_lossy(&stderr.contents()).into_owned(),
    )
}

#[test]
fn a_closed_pipe_reports_closed() {
    for mode in MODES {
        let pipe = MemoryOutputPipe::new(1024);
        pipe.close();
        let (outcome, stderr) = probe(mode, "closed-stdout", |b| {
            b.stdout(pipe.clone());
        });
        assert_eq!(outcome, Outcome::Success, "{mode:?}: {stderr}");
    }
}

#[test]
fn a_broken_pipe_reports_closed_not_an_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for mode in MODES {
        let _guard = runtime.enter();
        let (writer, reader) = tokio::io::duplex(64);
        drop(reader);
        let stream = AsyncWriteStream::new(1 << 16, writer);
        let stream = Arc::new(Mutex::new(Some(stream)));
        let (outcome, stderr) = probe(mode, "epipe", |b| {
            b.stdout(OneShot(stream.clone()));
        });
        assert_eq!(outcome, Outcome::Success, "{mode:?}: {stderr}");
    }
}

/// An [`weir::OutputSource`] handing out one pre-built stream (then a closed one).
struct OneShot(Arc<Mutex<Option<AsyncWriteStream>>>);

impl weir::OutputSource for OneShot {
    fn stream(&self) -> Box<dyn weir::io::OutputStream> {
        match self.0.lock().unwrap().take() {
            Some(stream) => Box::new(stream),
            None => Box::new(weir::io::ClosedOutputStream),
        }
    }
}

#[test]
fn check_write_is_zero_until_a_flush_completes() {
    // The stream's destination accepts 16 bytes until someone reads: the flush of 100 bytes
    // stays pending until the reader starts, which it does only once the guest said (on
    // stderr) that it checked check-write and the pollable.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for mode in MODES {
        let _guard = runtime.enter();
        let (writer, mut reader) = tokio::io::duplex(16);
        let stream = Arc::new(Mutex::new(Some(AsyncWriteStream::new(1 << 16, writer))));
        let stderr = MemoryOutputPipe::new(1 << 16);
        let guest_waiting = stderr.clone();
        let read_task = runtime.spawn(async move {
            while !String::from_utf8_lossy(&guest_waiting.contents()).contains("waiting") {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut all = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut all)
                .await
                .unwrap();
            all
        });
        let (outcome, stderr) = probe_with_stderr(mode, "flush-pending", stderr, |b| {
            b.stdout(OneShot(stream.clone()));
        });
        assert_eq!(outcome, Outcome::Success, "{mode:?}: {stderr}");
        drop(stream);
        let received = runtime.block_on(read_task).unwrap();
        assert_eq!(received, vec![b'f'; 100], "{mode:?}");
    }
}

fn copy_probe(name: &str) {
    let input: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    for mode in MODES {
        let out = MemoryOutputPipe::new(1 << 20);
        let (outcome, stderr) = probe(mode, name, |b| {
            b.stdin(MemoryInputPipe::new(input.clone()))
                .stdout(out.clone());
        });
        assert_eq!(outcome, Outcome::Success, "{mode:?} {name}: {stderr}");
        assert!(
            out.contents() == input,
            "{mode:?} {name}: output differs from input"
        );
    }
}

#[test]
fn splice_copies_stdin_to_stdout() {
    copy_probe("splice");
}

#[test]
fn blocking_splice_copies_stdin_to_stdout() {
    copy_probe("blocking-splice");
}

#[test]
fn blocking_read_and_write_copy_stdin_to_stdout() {
    copy_probe("cat");
}

#[test]
fn timers_and_poll_follow_the_wit() {
    for mode in MODES {
        let (outcome, stderr) = probe(mode, "poll", |_| {});
        assert_eq!(outcome, Outcome::Success, "{mode:?}: {stderr}");
    }
}

fn args_env(mode: Mode, exit: &str) -> (Outcome, String) {
    let out = MemoryOutputPipe::new(1 << 16);
    let outcome = run_rust(mode, "args_env", &["one", "two words"], |b| {
        b.env("EXIT", exit)
            .env("GREETING", "hi=there")
            .stdout(out.clone());
    })
    .unwrap();
    (outcome, String::from_utf8(out.contents().to_vec()).unwrap())
}

#[test]
fn arguments_environment_and_argv0_reach_the_guest() {
    for mode in MODES {
        let (outcome, out) = args_env(mode, "");
        assert_eq!(outcome, Outcome::Success);
        assert!(
            out.contains("args=args_env|one|two words\n"),
            "{mode:?}: {out}"
        );
        assert!(out.contains("env GREETING=hi=there\n"), "{mode:?}: {out}");
    }
}

#[test]
fn exit_codes_reach_the_embedder() {
    for mode in MODES {
        assert_eq!(
            args_env(mode, "code:42").0,
            Outcome::Exit(42),
            "{mode:?} exit-with-code"
        );
        assert_eq!(
            args_env(mode, "code:0").0,
            Outcome::Exit(0),
            "{mode:?} exit-with-code 0"
        );
        assert_eq!(
            args_env(mode, "err").0,
            Outcome::Exit(1),
            "{mode:?} exit(err)"
        );
        // The preview1 adapter (48.x) turns `proc_exit(3)` into `exit(err)`: status 1.
        assert_eq!(
            args_env(mode, "std:3").0,
            Outcome::Exit(1),
            "{mode:?} std exit"
        );
    }
}

fn fs_run(mode: Mode, scenario: &str, dir: &std::path::Path, read_only: bool) -> (Outcome, String) {
    let stderr = MemoryOutputPipe::new(1 << 16);
    let (dir_perms, file_perms) = if read_only {
        (DirPerms::READ, FilePerms::READ)
    } else {
        (DirPerms::all(), FilePerms::all())
    };
    let outcome = run_rust(mode, "fs_ops", &[scenario], |b| {
        b.stderr(stderr.clone())
            .preopened_dir(dir, "/data", dir_perms, file_perms)
            .unwrap();
    })
    .unwrap();
    (
        outcome,
        String::from_utf8_lossy(&stderr.contents()).into_owned(),
    )
}

#[test]
fn filesystem_read_write_append_readdir_rename_stat_symlink() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let (outcome, stderr) = fs_run(mode, "read-write", dir.path(), false);
        assert_eq!(outcome, Outcome::Success, "{mode:?}: {stderr}");
        assert_eq!(
            std::fs::read_link(dir.path().join("link"))
                .unwrap()
                .to_str(),
            Some("target.txt")
        );
    }
}

#[test]
fn filesystem_cannot_escape_the_preopen() {
    for mode in MODES {
        let root = tempfile::tempdir().unwrap();
        let pre = root.path().join("pre");
        let outside = root.path().join("out");
        std::fs::create_dir_all(&pre).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "secret").unwrap();
        std::fs::write(root.path().join("secret.txt"), "secret").unwrap();
        std::fs::write(pre.join("inside.txt"), "inside").unwrap();
        std::os::unix::fs::symlink(&outside, pre.join("outside")).unwrap();
        let (outcome, stderr) = fs_run(mode, "escape", &pre, false);
        assert_eq!(outcome, Outcome::Success, "{mode:?}: {stderr}");
        assert!(!pre.join("abs-link").exists());
    }
}

#[test]
fn filesystem_read_only_preopen_refuses_changes() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inside.txt"), "inside").unwrap();
        let (outcome, stderr) = fs_run(mode, "read-only", dir.path(), true);
        assert_eq!(outcome, Outcome::Success, "{mode:?}: {stderr}");
        assert!(!dir.path().join("new.txt").exists());
        assert_eq!(
            std::fs::read(dir.path().join("inside.txt")).unwrap(),
            b"inside"
        );
    }
}

/// Runs the `fs_script` guest over a preopen of `dir`; returns each command's result.
fn fs_script(mode: Mode, dir: &std::path::Path, read_only: bool, commands: &[&str]) -> Vec<String> {
    fs_script_over(mode, &[("/data", dir, read_only)], commands)
}

/// Runs the `fs_script` guest over several preopens: (guest path, host dir, read-only).
fn fs_script_over(
    mode: Mode,
    preopens: &[(&str, &std::path::Path, bool)],
    commands: &[&str],
) -> Vec<String> {
    common::run_script(
        mode,
        "fs_script",
        weir::sockets::NetworkPolicy::deny_all(),
        |b| {
            for (guest, dir, read_only) in preopens {
                let (dir_perms, file_perms) = if *read_only {
                    (DirPerms::READ, FilePerms::READ)
                } else {
                    (DirPerms::all(), FilePerms::all())
                };
                b.preopened_dir(dir, *guest, dir_perms, file_perms).unwrap();
            }
        },
        commands,
    )
}

/// Every entry below `dir` (recursively) with its content (files), link target (symlinks)
/// and modification time: what a guest must not have changed.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut entries = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let content = if meta.is_symlink() {
            std::fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if meta.is_dir() {
            let mut children: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            children.sort();
            pending.extend(children);
            Vec::new()
        } else {
            std::fs::read(&path).unwrap()
        };
        entries.push((path, content, meta.modified().unwrap()));
    }
    entries.sort();
    entries
}

#[test]
fn hardlinks_and_renames_never_cross_out_of_a_preopen_or_into_a_read_only_one() {
    for mode in MODES {
        let root = tempfile::tempdir().unwrap();
        let (rw, ro) = (root.path().join("rw"), root.path().join("ro"));
        std::fs::create_dir(&rw).unwrap();
        std::fs::create_dir(&ro).unwrap();
        std::fs::write(rw.join("mine.txt"), "mine").unwrap();
        std::fs::write(ro.join("theirs.txt"), "theirs").unwrap();
        std::fs::write(root.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink("../secret.txt", rw.join("up")).unwrap();
        let (ro_before, outside_before) = (
            snapshot(&ro),
            std::fs::read(root.path().join("secret.txt")).unwrap(),
        );
        let lines = fs_script_over(
            mode,
            &[("/rw", &rw, false), ("/ro", &ro, true)],
            &[
                // Out of a read-only preopen into a writable one: a hard link would make
                // its file writable, a rename would take it away.
                "link /ro theirs.txt /rw stolen.txt",
                "rename /ro theirs.txt /rw taken.txt",
                // Into a read-only preopen.
                "link /rw mine.txt /ro planted.txt",
                "rename /rw mine.txt /ro planted.txt",
                // Out of the writable preopen by `..` or an absolute path, either end.
                "link /rw ../ro/theirs.txt /rw stolen.txt",
                "link /rw ../secret.txt /rw stolen.txt",
                "link /rw /etc/hostname /rw stolen.txt",
                "link /rw mine.txt /rw ../planted.txt",
                "rename /rw ../secret.txt /rw taken.txt",
                "rename /rw mine.txt /rw ../moved.txt",
                "rename /rw mine.txt /rw /tmp/moved.txt",
                // A hard link to a symlink pointing out is a symlink pointing out: opening
                // it with `symlink-follow` stays refused. Linking *through* it (following
                // the symlink, which would link the outside file) is refused outright.
                "link /rw up /rw up2",
                "open o up2 - read follow",
                "link /rw up /rw through follow",
                // Within one writable preopen both work, so the refusals above are real.
                "link /rw mine.txt /rw copy.txt",
                "rename /rw copy.txt /rw moved.txt",
                "open m moved.txt - read",
                "read m 10",
            ],
        );
        common::assert_lines(
            &lines,
            &[
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "ok(())",
                "err(not-permitted)",
                "err(invalid)",
                "ok(())",
                "ok(())",
                "ok(Ok(DescriptorType::RegularFile))",
                "ok((\"mine\", true))",
            ],
        );
        assert_eq!(
            snapshot(&ro),
            ro_before,
            "{mode:?}: the read-only preopen changed"
        );
        assert_eq!(
            std::fs::read(root.path().join("secret.txt")).unwrap(),
            outside_before
        );
        let mut outside: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        outside.sort();
        assert_eq!(
            outside,
            ["ro", "rw", "secret.txt"],
            "{mode:?}: created outside"
        );
        assert!(!std::path::Path::new("/tmp/moved.txt").exists());
    }
}

#[test]
fn a_read_only_preopen_is_unchanged_through_every_writing_entry_point() {
    for mode in MODES {
        let ro = tempfile::tempdir().unwrap();
        std::fs::write(ro.path().join("f.txt"), "kept").unwrap();
        std::fs::create_dir(ro.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("f.txt", ro.path().join("link")).unwrap();
        let before = snapshot(ro.path());
        let writes = [
            // Opening for writing, creating, truncating.
            "open w f.txt - write",
            "open w f.txt - read,mutate",
            "open w new.txt create read",
            "open w f.txt truncate read",
            "open w newdir create,directory read",
            // Through a descriptor opened for reading.
            "write r x",
            "set-size r 0",
            "write-stream r x",
            "append-stream r x",
            "set-times r",
            "set-times d",
            // Directory changes.
            "mkdir /ro made",
            "rmdir /ro sub",
            "unlink /ro f.txt",
            "unlink /ro link",
            "symlink /ro f.txt made-link",
            "set-times-at /ro f.txt",
            "rename /ro f.txt /ro g.txt",
            "link /ro f.txt /ro g.txt",
        ];
        let mut commands = vec!["open r f.txt - read", "open d sub directory read"];
        commands.extend(writes);
        let lines = fs_script_over(mode, &[("/ro", ro.path(), true)], &commands);
        let mut expected = vec![
            "ok(Ok(DescriptorType::RegularFile))",
            "ok(Ok(DescriptorType::Directory))",
        ];
        expected.extend(writes.map(|_| "err(not-permitted)"));
        common::assert_lines(&lines, &expected);
        assert_eq!(
            snapshot(ro.path()),
            before,
            "{mode:?}: the read-only preopen changed"
        );
    }
}

#[test]
fn filesystem_error_codes_follow_posix_and_wasmtime() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.txt"), "hello").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let lines = fs_script(
            mode,
            dir.path(),
            false,
            &[
                // A directory cannot be opened for writing: EISDIR.
                "open d sub directory read,write",
                "open d sub - read,write",
                // O_DIRECTORY with O_CREAT: EINVAL.
                "open d sub directory,create read",
                "open d sub directory read",
                // Opened read-only: writes are EBADF, ftruncate is EINVAL.
                "open r f.txt - read",
                "set-size r 2",
                "write r x",
                "write-stream r x",
                "append-stream r x",
                // Neither read nor write: reads like O_RDONLY (which is 0 in POSIX).
                "open n f.txt - -",
                "read n 10",
                "read-stream n",
                "write n x",
                // Opened for writing only: no reads.
                "open w f.txt - write",
                "read w 10",
                "set-size w 4",
                // Created with neither flag: still O_RDONLY-like, so it reads (it is empty).
                "open c new.txt create -",
                "read c 10",
            ],
        );
        common::assert_lines(
            &lines,
            &[
                "err(is-directory)",
                "err(is-directory)",
                "err(invalid)",
                "ok(Ok(DescriptorType::Directory))",
                "ok(Ok(DescriptorType::RegularFile))",
                "err(invalid)",
                "err(bad-descriptor)",
                "err(bad-descriptor)",
                "err(bad-descriptor)",
                "ok(Ok(DescriptorType::RegularFile))",
                "ok((\"hello\", true))",
                "ok(5 bytes)",
                "err(bad-descriptor)",
                "ok(Ok(DescriptorType::RegularFile))",
                "err(bad-descriptor)",
                "ok(())",
                "ok(Ok(DescriptorType::RegularFile))",
                "ok((\"\", true))",
            ],
        );
        assert_eq!(std::fs::read(dir.path().join("f.txt")).unwrap(), b"hell");

        // Under a read-only preopen, writing is not permitted at all.
        let lines = fs_script(
            mode,
            dir.path(),
            true,
            &[
                "open r f.txt - read",
                "write-stream r x",
                "append-stream r x",
                "set-size r 1",
                "write r x",
                "open w f.txt - write",
                "open n f.txt - -",
                "read-stream n",
            ],
        );
        common::assert_lines(
            &lines,
            &[
                "ok(Ok(DescriptorType::RegularFile))",
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
                "ok(Ok(DescriptorType::RegularFile))",
                "ok(4 bytes)",
            ],
        );
        assert_eq!(std::fs::read(dir.path().join("f.txt")).unwrap(), b"hell");
    }
}

#[test]
fn symlink_loops_and_symlinks_out_of_the_preopen_are_refused() {
    for mode in MODES {
        let root = tempfile::tempdir().unwrap();
        let pre = root.path().join("pre");
        std::fs::create_dir(&pre).unwrap();
        std::fs::write(root.path().join("secret.txt"), "secret").unwrap();
        // Host-made links the guest may follow: a loop, a relative way out, an absolute one.
        std::os::unix::fs::symlink("loop-b", pre.join("loop-a")).unwrap();
        std::os::unix::fs::symlink("loop-a", pre.join("loop-b")).unwrap();
        std::os::unix::fs::symlink("../secret.txt", pre.join("up")).unwrap();
        let absolute = root.path().join("secret.txt");
        std::os::unix::fs::symlink(&absolute, pre.join("abs")).unwrap();
        std::os::unix::fs::symlink("..", pre.join("parent")).unwrap();
        std::os::unix::fs::symlink(root.path(), pre.join("root")).unwrap();
        let lines = fs_script(
            mode,
            &pre,
            false,
            &[
                "open a loop-a - read",
                "open b up - read",
                "open c abs - read",
                "open d up - read,write",
                "open e loop-a/x create read,write",
                "open f parent/secret.txt - read",
                "open g root/secret.txt - read,write",
                "open h parent/new.txt create read,write",
            ],
        );
        assert_eq!(
            std::fs::read(&absolute).unwrap(),
            b"secret",
            "{mode:?}: the file outside was changed"
        );
        common::assert_lines(
            &lines,
            &[
                // `open-at` without `symlink-follow` does not follow a final symlink
                // (`O_NOFOLLOW`): ELOOP, whatever the link points at.
                "err(loop)",
                "err(loop)",
                "err(loop)",
                "err(loop)",
                // A loop in the middle of a path.
                "err(loop)",
                // Symlinks in the middle of a path are followed, but never out.
                "err(not-permitted)",
                "err(not-permitted)",
                "err(not-permitted)",
            ],
        );
        assert!(
            !root.path().join("new.txt").exists(),
            "{mode:?}: created outside"
        );
    }
}
