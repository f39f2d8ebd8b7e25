//! No leaks: after a guest exits, traps, or is dropped in the middle of a call while it holds
//! open files, TCP listeners and connections (connected, connecting, with a background writer
//! holding unsent bytes), UDP sockets with datagrams queued, pending name lookups or pending
//! stdout writes, the process's open descriptors (`/proc/self/fd`), tokio tasks and threads
//! return to where they were before the guest ran.
//!
//! Each scenario runs once to warm up (lazy statics, runtime worker threads, the resolver),
//! then the baseline is taken, then it runs three more times and the usage must settle back
//! to the baseline. Exit and trap run async and sync; "dropped mid-call" is async only (a
//! sync call cannot be dropped while it runs; it ends by returning, exiting or trapping).
//! Sync calls run on a plain thread that entered the test's tokio runtime, so that their
//! background tasks are counted in that runtime's metrics too.
//!
//! Descriptor and thread counts are process-wide, so the scenarios of this file take a lock
//! (nextest also runs each test in its own process).

mod common;

use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Host, Mode};
use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceTable};
use weir::command::Outcome;
use weir::sockets::NetworkPolicy;
use weir::{WasiCtx, WasiCtxBuilder};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How a guest run ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    /// `exit(3)` with its resources still open (status 1 through the preview1 adapter).
    Exit,
    /// A wasm trap with its resources still open.
    Trap,
    /// Blocked in the host; the embedder drops the call (async only), then the store.
    Dropped,
}

const ENDS: [(Mode, End); 5] = [
    (Mode::Async, End::Exit),
    (Mode::Async, End::Trap),
    (Mode::Async, End::Dropped),
    (Mode::Sync, End::Exit),
    (Mode::Sync, End::Trap),
];

impl End {
    fn command(self) -> &'static str {
        match self {
            End::Exit => "exit 3",
            End::Trap => "trap",
            End::Dropped => "hang",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Usage {
    fds: usize,
    threads: usize,
    tasks: usize,
}

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

fn usage(runtime: &tokio::runtime::Runtime) -> Usage {
    Usage {
        fds: common::open_fds(),
        threads: threads(),
        tasks: runtime.metrics().num_alive_tasks(),
    }
}

/// Waits (up to 20 s: a stalled destination is given up after 5 s) for the usage to be back
/// at `baseline` (descriptors and threads at most the baseline: the warm-up's resolver
/// threads and their sockets may still have been there when it was taken), and returns the
/// last measurement. Three leaking runs would leave it above.
fn settled(runtime: &tokio::runtime::Runtime, baseline: Usage) -> Usage {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = usage(runtime);
        let back = now.fds <= baseline.fds
            && now.threads <= baseline.threads
            && now.tasks == baseline.tasks;
        if back || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Idle blocking threads (name lookups) retire quickly, so the count can settle.
        .thread_keep_alive(Duration::from_millis(100))
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `component` with `wasi` in `mode` and checks that it ended as `end` says.
fn run(
    runtime: &tokio::runtime::Runtime,
    mode: Mode,
    end: End,
    component: &Component,
    wasi: WasiCtx,
) {
    let engine = common::engine();
    let mut store = Store::new(engine, Host::new(wasi, ResourceTable::new()));
    let result = match mode {
        Mode::Async => {
            let mut linker = Linker::new(engine);
            weir::add_to_linker_async(&mut linker).expect("linker");
            runtime.block_on(async {
                let run = weir::command::run_async(&mut store, &linker, component);
                if end == End::Dropped {
                    let dropped = tokio::time::timeout(Duration::from_millis(500), run).await;
                    assert!(
                        dropped.is_err(),
                        "the guest was to hang, it ended: {dropped:?}"
                    );
                    None
                } else {
                    Some(run.await)
                }
            })
        }
        Mode::Sync => {
            let mut linker = Linker::new(engine);
            weir::add_to_linker_sync(&mut linker).expect("linker");
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        let _entered = runtime.enter();
                        Some(weir::command::run_sync(&mut store, &linker, component))
                    })
                    .join()
                    .expect("guest thread panicked")
            })
        }
    };
    match (end, result) {
        // The preview1 adapter turns `exit(3)` into `wasi:cli/exit.exit(err)`: status 1.
        (End::Exit, Some(Ok(outcome))) => assert_eq!(outcome, Outcome::Exit(1)),
        (End::Trap, Some(Err(error))) => {
            let text = common::chain(&error);
            assert!(text.contains("unreachable"), "{text}");
        }
        (End::Dropped, None) => {}
        (end, other) => panic!("{mode:?} {end:?}: unexpected result {other:?}"),
    }
    drop(store);
}

/// Runs `scenario` (which runs one guest and cleans up its own host-side peers) once to warm
/// up, then three times, in every mode and ending, and asserts that the usage is back at the
/// baseline after each round.
fn assert_no_leaks(ends: &[(Mode, End)], scenario: impl Fn(&tokio::runtime::Runtime, Mode, End)) {
    let _lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = runtime();
    for &(mode, end) in ends {
        scenario(&runtime, mode, end);
        // The warm-up's own tasks (a name lookup still on a blocking thread) end first.
        let deadline = Instant::now() + Duration::from_secs(20);
        while runtime.metrics().num_alive_tasks() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let baseline = usage(&runtime);
        for _ in 0..3 {
            scenario(&runtime, mode, end);
        }
        let after = settled(&runtime, baseline);
        assert!(
            after.fds <= baseline.fds
                && after.threads <= baseline.threads
                && after.tasks == baseline.tasks,
            "{mode:?} {end:?}: usage {after:?}, baseline {baseline:?}"
        );
    }
}

fn script_ctx(
    guest: &str,
    commands: &[String],
    configure: impl FnOnce(&mut WasiCtxBuilder),
) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder.arg(guest).args(commands.iter().map(String::as_str));
    configure(&mut builder);
    builder.build()
}

fn component(guest: &str) -> Component {
    let bytes = common::rust_guest(guest).expect("guest");
    Component::new(common::engine(), &**bytes).expect("component")
}

#[test]
fn open_files_and_directory_streams() {
    let guest = component("fs_script");
    assert_no_leaks(&ENDS, |runtime, mode, end| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("existing"), b"contents").unwrap();
        let commands: Vec<String> = [
            "open a new create read,write",
            "open b existing - read",
            "open c existing - read",
            "read-stream b",
            "open d . directory read",
            "write a hello",
            end.command(),
        ]
        .map(String::from)
        .to_vec();
        let wasi = script_ctx("fs_script", &commands, |b| {
            b.preopened_dir(
                dir.path(),
                "/",
                weir::DirPerms::READ | weir::DirPerms::MUTATE,
                weir::FilePerms::READ | weir::FilePerms::WRITE,
            )
            .unwrap();
        });
        run(runtime, mode, end, &guest, wasi);
    });
}

#[test]
fn tcp_listeners_connections_and_background_writers() {
    let guest = component("tcp_script");
    assert_no_leaks(&ENDS, |runtime, mode, end| {
        // A peer that reads nothing for a while, so that the guest's writer holds bytes,
        // then reads until the connection ends.
        let sink = TcpListener::bind("127.0.0.1:0").unwrap();
        let sink_port = sink.local_addr().unwrap().port();
        let peer = common::late_reader(sink, Duration::from_millis(300));
        let commands: Vec<String> = vec![
            "socket l v4".into(),
            "bind l 127.0.0.1:0".into(),
            "listen l".into(),
            "socket c v4".into(),
            "connect c $l".into(),
            "accept l a".into(),
            "write c hello".into(),
            "socket p v4".into(),
            "start-connect p $l".into(),
            "socket u v4".into(),
            "socket w v4".into(),
            format!("connect w 127.0.0.1:{sink_port}"),
            "blast w 8388608".into(),
            end.command().into(),
        ];
        let wasi = script_ctx("tcp_script", &commands, |b| {
            b.network_policy(NetworkPolicy::allow_all());
        });
        let writers = wasi.tcp_background_writers();
        let stats = wasi.network_stats();
        run(runtime, mode, end, &guest, wasi);
        assert!(
            stats
                .tcp_bytes_deferred
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0,
            "no background writer ran; the scenario proved nothing"
        );
        assert_eq!(
            writers.running(),
            0,
            "a dropped instance's writer still runs"
        );
        // What it read does not matter here (a cancelled writer resets the connection).
        let _ = peer.join().unwrap();
    });
}

#[test]
fn udp_sockets_with_queued_datagrams() {
    let guest = component("udp_script");
    assert_no_leaks(&ENDS, |runtime, mode, end| {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let flood = std::thread::spawn(move || {
            // The guest binds a moment after it starts; send for long enough to queue some.
            let until = Instant::now() + Duration::from_millis(400);
            while Instant::now() < until {
                let _ = sender.send_to(&[7u8; 512], ("127.0.0.1", port));
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let commands: Vec<String> = vec![
            "socket u v4".into(),
            format!("bind u 127.0.0.1:{port}"),
            "stream u".into(),
            "socket v v6".into(),
            "sleep 300".into(),
            end.command().into(),
        ];
        let wasi = script_ctx("udp_script", &commands, |b| {
            b.network_policy(NetworkPolicy::allow_all());
        });
        let stats = wasi.network_stats();
        run(runtime, mode, end, &guest, wasi);
        flood.join().unwrap();
        // The datagrams were queued for the guest, which never read them.
        assert_eq!(
            stats
                .udp_datagrams_received
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    });
}

#[test]
fn pending_name_lookups() {
    let guest = component("tcp_script");
    assert_no_leaks(&ENDS, |runtime, mode, end| {
        let mut commands: Vec<String> = (0..8)
            .map(|i| format!("start-resolve weir-leak-test-{i}.invalid"))
            .collect();
        commands.push("start-resolve localhost".into());
        commands.push(end.command().into());
        let wasi = script_ctx("tcp_script", &commands, |b| {
            b.network_policy(
                NetworkPolicy::allow_all()
                    .allow("ip-name-lookup=*")
                    .unwrap(),
            );
        });
        run(runtime, mode, end, &guest, wasi);
    });
}

#[test]
fn pending_stdout_writes_into_a_pipe_nobody_reads() {
    let guest = component("stdout_flood");
    // The guest blocks once the pipe and the queue are full: only dropping it ends it.
    assert_no_leaks(&[(Mode::Async, End::Dropped)], |runtime, mode, end| {
        let (reader, writer) = std::io::pipe().unwrap();
        let stdout = {
            let _entered = runtime.enter();
            let writer = tokio::net::unix::pipe::Sender::from_owned_fd(writer.into())
                .expect("non-blocking pipe");
            weir::io::AsyncWriteStream::new(1 << 16, writer)
        };
        let mut builder = WasiCtxBuilder::new();
        builder
            .args(["stdout_flood", "1048576", "4096"])
            .stdout(stdout);
        run(runtime, mode, end, &guest, builder.build());
        // The reader stays open (unread) until the writer was given up.
        let deadline = Instant::now() + Duration::from_secs(20);
        while pipe_has_writer(&reader) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !pipe_has_writer(&reader),
            "the dropped guest's pipe writer is still open"
        );
        drop(reader);
    });
}

/// Whether the pipe's write end is still open somewhere (`poll` reports no hang-up).
fn pipe_has_writer(reader: &std::io::PipeReader) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [PollFd::new(reader, PollFlags::IN)];
    let _ = poll(
        &mut fds,
        Some(&rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
    );
    !fds[0].revents().contains(PollFlags::HUP)
}
