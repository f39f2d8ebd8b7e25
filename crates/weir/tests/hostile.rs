//! Bounded host memory under hostile guests, with default limits.
//!
//! Each test runs one hostile instance and measures the process's peak resident memory
//! (`VmHWM`, reset through `/proc/self/clear_refs` once the component is compiled and a
//! warm-up run is done) above the resident memory just before the run. The bound is the
//! guest's own linear memory (the most a `ResourceLimiter` saw it ask for) plus a constant
//! per scenario; each constant, and what it allows for, is listed in `docs/security.md`
//! ("Bounded memory under hostile guests") together with the figures measured here.
//!
//! A host that buffered what the guest or its peer pushes (datagrams, unsent TCP bytes,
//! stdout, the bytes of a `u64::MAX` read) would exceed these bounds many times over: each
//! scenario pushes at least ten times its bound.
//!
//! Run alone (each test in its own process, as `cargo nextest` does) or serialised by the
//! lock below, so that one test's allocations do not count in another's peak.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Store};
use weir::command::Outcome;
use weir::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

const MIB: u64 = 1 << 20;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A store's data: the WASI context plus a record of the guest's linear memory.
struct Measured {
    wasi: WasiCtx,
    table: ResourceTable,
    guest_memory: GuestMemory,
}

impl WasiView for Measured {
    fn wasi(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Grants every growth and remembers the largest linear memory (bytes) asked for.
#[derive(Default)]
struct GuestMemory {
    peak: usize,
}

impl ResourceLimiter for GuestMemory {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Several memories (the adapter has its own) add up.
        self.peak += desired - current;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// A `/proc/self/status` field in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("malformed `{line}`"));
    kib * 1024
}

/// The peak resident memory of a stretch of work, above where it started.
struct PeakRss {
    baseline: u64,
}

impl PeakRss {
    fn start() -> PeakRss {
        // "5" resets the peak (VmHWM) to the current resident size.
        std::fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM");
        PeakRss {
            baseline: status_bytes("VmRSS"),
        }
    }

    fn growth(&self) -> u64 {
        status_bytes("VmHWM").saturating_sub(self.baseline)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// How a measured run ended: the guest's result, or `None` if it was dropped at `cut_off`.
struct Run {
    result: Option<wasmtime::Result<Outcome>>,
    guest_memory: u64,
    host_growth: u64,
}

impl Run {
    /// Host memory: the peak growth minus the guest's linear memory.
    fn host_bytes(&self) -> u64 {
        self.host_growth.saturating_sub(self.guest_memory)
    }

    fn assert_within(&self, what: &str, host_bound: u64) {
        println!(
            "{what}: peak RSS growth {:.1} MiB, guest memory {:.1} MiB, host {:.1} MiB (bound {:.0} MiB)",
            self.host_growth as f64 / MIB as f64,
            self.guest_memory as f64 / MIB as f64,
            self.host_bytes() as f64 / MIB as f64,
            host_bound as f64 / MIB as f64,
        );
        assert!(
            self.host_growth <= self.guest_memory + host_bound,
            "{what}: peak RSS grew {} bytes, above guest memory {} + {host_bound}",
            self.host_growth,
            self.guest_memory
        );
    }
}

/// Runs `component` once (async, on `runtime`) under measurement. `cut_off` drops a guest
/// still running after it (for guests that block forever by design).
fn measured_run(
    runtime: &tokio::runtime::Runtime,
    component: &Component,
    wasi: WasiCtx,
    cut_off: Option<Duration>,
) -> Run {
    measured_run_with(runtime, component, wasi, cut_off, |_| {})
}

/// [`measured_run`] with the store configured by `configure` first.
fn measured_run_with(
    runtime: &tokio::runtime::Runtime,
    component: &Component,
    wasi: WasiCtx,
    cut_off: Option<Duration>,
    configure: impl FnOnce(&mut Store<Measured>),
) -> Run {
    let engine = common::engine();
    let mut linker = Linker::new(engine);
    weir::add_to_linker_async(&mut linker).expect("linker");
    let mut store = Store::new(
        engine,
        Measured {
            wasi,
            table: ResourceTable::new(),
            guest_memory: GuestMemory::default(),
        },
    );
    store.limiter(|data| &mut data.guest_memory);
    configure(&mut store);
    let peak = PeakRss::start();
    let result = runtime.block_on(async {
        let run = weir::command::run_async(&mut store, &linker, component);
        match cut_off {
            Some(limit) => tokio::time::timeout(limit, run).await.ok(),
            None => Some(run.await),
        }
    });
    let host_growth = peak.growth();
    let guest_memory = store.data().guest_memory.peak as u64;
    drop(store);
    Run {
        result,
        guest_memory,
        host_growth,
    }
}

fn rust_component(guest: &str) -> Component {
    let bytes = common::rust_guest(guest).expect("guest");
    Component::new(common::engine(), &**bytes).expect("component")
}

fn script_wasi(
    guest: &str,
    commands: &[String],
    configure: impl FnOnce(&mut WasiCtxBuilder),
) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .arg(guest)
        .args(commands.iter().map(String::as_str))
        .stdout(weir::io::MemoryOutputPipe::new(1 << 20))
        .inherit_stderr();
    configure(&mut builder);
    builder.build()
}

/// The transcript's result column (see `common::run_script`).
fn results(pipe: &weir::io::MemoryOutputPipe) -> Vec<String> {
    String::from_utf8_lossy(&pipe.contents())
        .lines()
        .map(|l| {
            l.split_once(" => ")
                .map(|(_, r)| r.to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// Runs a script guest: a warm-up with `warm_up` commands, then the measured run.
fn measured_script(
    guest: &str,
    warm_up: &[String],
    commands: &[String],
    configure: impl Fn(&mut WasiCtxBuilder),
) -> (Run, Vec<String>) {
    let runtime = runtime();
    let component = rust_component(guest);
    let warm = measured_run(
        &runtime,
        &component,
        script_wasi(guest, warm_up, &configure),
        None,
    );
    assert!(matches!(warm.result, Some(Ok(Outcome::Success))), "warm-up");
    let transcript = weir::io::MemoryOutputPipe::new(1 << 20);
    let wasi = script_wasi(guest, commands, |b| {
        configure(b);
        b.stdout(transcript.clone());
    });
    let run = measured_run(&runtime, &component, wasi, None);
    match &run.result {
        Some(Ok(Outcome::Success)) => {}
        other => panic!("{guest}: {other:?}: {:?}", results(&transcript)),
    }
    (run, results(&transcript))
}

fn strings(commands: &[&str]) -> Vec<String> {
    commands.iter().map(|c| c.to_string()).collect()
}

#[test]
fn a_flooded_udp_socket_nobody_reads_holds_only_the_kernel_buffer() {
    let _lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let datagram = vec![0xab; 60_000];
            let mut sent: u64 = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Refused until the guest has bound, then dropped by the kernel once its
                // receive buffer is full.
                if socket.send_to(&datagram, ("127.0.0.1", port)).is_ok() {
                    sent += datagram.len() as u64;
                }
            }
            sent
        })
    };
    let bind = format!("bind s 127.0.0.1:{port}");
    let (run, lines) = measured_script(
        "udp_script",
        &strings(&["socket s v4", "bind s 127.0.0.1:0", "stream s"]),
        &strings(&["socket s v4", &bind, "stream s", "sleep 2000", "recv s 1 0"]),
        |b| {
            b.network_policy(weir::sockets::NetworkPolicy::allow_all());
        },
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flooder.join().unwrap();
    // The socket was flooded while the guest slept, and what waited is still readable.
    assert!(lines[4].starts_with("ok(1) 127.0.0.1:"), "{lines:?}");
    println!("flood: {} MiB sent at the socket", sent / MIB);
    const BOUND: u64 = 16 * MIB;
    assert!(
        sent > 10 * BOUND,
        "the flood was too small to prove anything: {sent} bytes"
    );
    run.assert_within("UDP flood, never read", BOUND);
}

#[test]
fn a_tcp_peer_that_never_reads_stops_the_write_permit() {
    let _lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    // Accepts and holds each connection without reading, until the test ends.
    let peer = std::thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(listener.accept().unwrap().0);
        }
        held
    });
    let connect = format!("connect c {target}");
    let (run, lines) = measured_script(
        "tcp_script",
        &strings(&["socket c v4", &connect, "write c warm"]),
        &strings(&["socket c v4", &connect, "write-for c 2000"]),
        |b| {
            b.network_policy(weir::sockets::NetworkPolicy::allow_all())
                // The bytes left unsent are given up quickly: the peer never reads.
                .tcp_delivery_limit(Duration::from_millis(100));
        },
    );
    let accepted: u64 = lines[2]
        .strip_prefix("accepted ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{lines:?}"));
    drop(peer.join().unwrap());
    println!(
        "TCP: {} KiB accepted from the guest in 2 s",
        accepted / 1024
    );
    // What the guest could push: the kernel's send and receive buffers plus Weir's own
    // bounded queue (`MAX_WRITE_PERMIT`). A host that kept granting would take gigabytes.
    assert!(
        accepted <= 64 * MIB,
        "the guest pushed {accepted} bytes into a connection nobody reads"
    );
    run.assert_within("TCP peer never reads", 16 * MIB);
}

#[test]
fn stdout_into_a_pipe_nobody_reads_stays_at_the_queue() {
    let _lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = runtime();
    let component = rust_component("stdout_flood");
    let pipe_stdout = |reader_keep: &mut Vec<std::io::PipeReader>| {
        let (reader, writer) = std::io::pipe().unwrap();
        reader_keep.push(reader);
        let _entered = runtime.enter();
        let writer = tokio::net::unix::pipe::Sender::from_owned_fd(writer.into())
            .expect("non-blocking pipe");
        weir::io::AsyncWriteStream::new(1 << 16, writer)
    };
    let mut readers = Vec::new();
    let flood = |total: &str, stdout| {
        let mut builder = WasiCtxBuilder::new();
        builder
            .args(["stdout_flood", total, "65536"])
            .stdout(stdout);
        builder.build()
    };
    // Warm-up: a flood small enough for the pipe's buffer.
    let warm_stdout = pipe_stdout(&mut readers);
    let warm = measured_run(&runtime, &component, flood("4096", warm_stdout), None);
    assert!(matches!(warm.result, Some(Ok(Outcome::Success))));
    // 1 GiB offered; nobody reads; the guest blocks and is dropped after 2 s.
    let stdout = pipe_stdout(&mut readers);
    let run = measured_run(
        &runtime,
        &component,
        flood("1073741824", stdout),
        Some(Duration::from_secs(2)),
    );
    assert!(
        run.result.is_none(),
        "the guest was to block: {:?}",
        run.result
    );
    run.assert_within("stdout into a pipe nobody reads", 16 * MIB);
}

#[test]
fn ten_thousand_concurrent_name_lookups() {
    let _lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (run, lines) = measured_script(
        "tcp_script",
        &strings(&["resolve-many localhost 10"]),
        &strings(&["resolve-many localhost 10000"]),
        |b| {
            b.network_policy(
                weir::sockets::NetworkPolicy::deny_all()
                    .allow("ip-name-lookup=localhost")
                    .unwrap(),
            );
        },
    );
    assert_eq!(lines, ["resolved 10000, errors {}"]);
    // 10^4 pending lookups (a task, a stream and a pollable each), at most
    // `MAX_CONCURRENT_LOOKUPS` running: about 1 KiB each.
    run.assert_within("10^4 concurrent name lookups", 16 * MIB);
}

const POLL_WORLD: &str = r#"
package weir:hostile-test;
world guest {
  import wasi:io/poll@0.2.12;
  import wasi:clocks/monotonic-clock@0.2.12;
  export wasi:cli/run@0.2.12;
}
"#;

/// A WAT guest over `POLL_WORLD` whose `run` executes `body`; memory: 40 pages, handles
/// stored from 0x1000, return area at 0x10, heap (for `cabi_realloc`) from 0x100000.
fn poll_guest(body: &str) -> Component {
    let wat = format!(
        r#"(module
  (import "wasi:clocks/monotonic-clock@0.2.12" "subscribe-duration" (func $after (param i64) (result i32)))
  (import "wasi:io/poll@0.2.12" "poll" (func $poll (param i32 i32 i32)))
  (memory (export "memory") 40)
  {realloc}
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (local $i i32)
    {body}
    (i32.const 0))
)"#,
        realloc = common::BUMP_REALLOC
    );
    let bytes = common::wat_guest(POLL_WORLD, &wat).expect("building the WAT guest");
    Component::new(common::engine(), &bytes).expect("component")
}

#[test]
fn poll_over_a_hundred_thousand_pollables() {
    let _lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // `distinct` timers that are all due, each listed `copies` times in a row, then one
    // poll over the whole list; the result must list every entry (the guest traps
    // otherwise).
    let guest = |distinct: u32, copies: u32| {
        let entries = distinct * copies;
        poll_guest(&format!(
            r#"(local $timer i32) (local $k i32) (local $at i32)
    (local.set $at (i32.const 0x1000))
    (loop $make
      (local.set $timer (call $after (i64.const 0)))
      (local.set $k (i32.const 0))
      (loop $copy
        (i32.store (local.get $at) (local.get $timer))
        (local.set $at (i32.add (local.get $at) (i32.const 4)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $copy (i32.lt_u (local.get $k) (i32.const {copies}))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $make (i32.lt_u (local.get $i) (i32.const {distinct}))))
    (call $poll (i32.const 0x1000) (i32.const {entries}) (i32.const 0x10))
    (if (i32.ne (i32.load (i32.const 0x14)) (i32.const {entries})) (then unreachable))"#
        ))
    };
    let runtime = runtime();
    let warm = measured_run(&runtime, &guest(10, 2), WasiCtxBuilder::new().build(), None);
    assert!(matches!(warm.result, Some(Ok(Outcome::Success))));
    // Default limits: each list entry is lent to the host for the call and counts against
    // wasmtime's store-wide handle limit (100,000), so a list of 10^5 entries (1,000
    // timers, 100 times each) traps before the host sees it.
    let run = measured_run(
        &runtime,
        &guest(1_000, 100),
        WasiCtxBuilder::new().build(),
        None,
    );
    match &run.result {
        Some(Err(error)) => {
            let text = common::chain(error);
            assert!(text.contains("store handle limit exceeded"), "{text}");
        }
        other => panic!("expected the handle-limit trap, got {other:?}"),
    }
    run.assert_within("poll of 10^5 entries (default handle limit)", 16 * MIB);
    // With the limit raised, 10^5 distinct timers in one poll: all reported ready.
    let run = measured_run_with(
        &runtime,
        &guest(100_000, 1),
        WasiCtxBuilder::new().build(),
        None,
        |store| store.set_max_component_handles(1_000_000),
    );
    assert!(
        matches!(run.result, Some(Ok(Outcome::Success))),
        "{:?}",
        run.result
    );
    // 10^5 table entries (timer and pollable), and for the call a boxed ready-future per
    // source plus the grouping of indices: about 450 bytes per pollable measured, at most
    // 640 allowed.
    run.assert_within("poll over 10^5 pollables", 64 * MIB);
}

#[test]
fn endless_resources_end_in_a_trap_not_an_out_of_memory() {
    let _lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Timers are made and never dropped, until a limit refuses one.
    let endless = poll_guest(
        r#"(loop $make
      (drop (call $after (i64.const 1000000000)))
      (br $make))"#,
    );
    let runtime = runtime();
    let warm = poll_guest(r#"(drop (call $after (i64.const 0)))"#);
    assert!(matches!(
        measured_run(&runtime, &warm, WasiCtxBuilder::new().build(), None).result,
        Some(Ok(Outcome::Success))
    ));
    let expect_trap = |run: &Run, message: &str| match &run.result {
        Some(Err(error)) => {
            let text = common::chain(error);
            assert!(text.contains(message), "unexpected trap: {text}");
        }
        other => panic!("expected the trap `{message}`, got {other:?}"),
    };
    // Default limits: wasmtime's store-wide handle limit (100,000 live handles) stops the
    // guest first.
    let run = measured_run(&runtime, &endless, WasiCtxBuilder::new().build(), None);
    expect_trap(&run, "store handle limit exceeded");
    run.assert_within("10^5 resources (default handle limit)", 64 * MIB);
    // With that limit raised, the host's own table (wasmtime's `ResourceTable`, 1,000,000
    // entries by default) is what refuses the next timer: 10^6 resources, then a trap.
    let run = measured_run_with(
        &runtime,
        &endless,
        WasiCtxBuilder::new().build(),
        None,
        |store| store.set_max_component_handles(2_000_000),
    );
    expect_trap(&run, "resource table has no free keys");
    // 10^6 times a pollable's cost (host table slot, boxed timer, guest handle slot): at
    // most 256 bytes each.
    run.assert_within("10^6 resources (host table full)", 256 * MIB);
}

fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(r.rep())
}

/// Direct host calls (what a guest's imports reach) with `u64::MAX` lengths.
#[test]
fn u64_max_lengths_are_capped_or_refused_never_allocated() {
    use weir::bindings::wasi::cli::stdin::Host as _;
    use weir::bindings::wasi::filesystem::preopens::Host as _;
    use weir::bindings::wasi::filesystem::types::{
        DescriptorFlags, HostDescriptor, OpenFlags, PathFlags,
    };
    use weir::bindings::wasi::io::streams::HostInputStream;
    use weir::bindings::wasi::random::{insecure::Host as _, random::Host as _};
    use weir::bindings::wasi::sockets::instance_network::Host as _;
    use weir::bindings::wasi::sockets::network::{
        IpAddressFamily, IpSocketAddress, Ipv4SocketAddress,
    };
    use weir::bindings::wasi::sockets::udp::{HostIncomingDatagramStream, HostUdpSocket};
    use weir::bindings::wasi::sockets::udp_create_socket::Host as _;

    let _lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // A sparse 64 GiB file: a read that honoured u64::MAX would try to hold all of it.
    let big = std::fs::File::create(dir.path().join("big")).unwrap();
    big.set_len(64 << 30).unwrap();
    drop(big);
    let stdin_bytes = 64 * MIB as usize;
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdin(weir::io::MemoryInputPipe::new(vec![7; stdin_bytes]))
        .network_policy(weir::sockets::NetworkPolicy::allow_all());
    builder
        .preopened_dir(dir.path(), "/", weir::DirPerms::READ, weir::FilePerms::READ)
        .unwrap();
    let mut wasi = builder.build();
    let mut table = ResourceTable::new();
    let runtime = runtime();
    let peak = PeakRss::start();
    let mut returned: u64 = 0;
    runtime.block_on(async {
        let mut v = WasiCtxView {
            ctx: &mut wasi,
            table: &mut table,
        };

        // Streams: stdin (a 64 MiB pipe) and a file stream over the sparse file.
        let stdin = v.get_stdin().unwrap();
        let root = v.get_directories().unwrap().remove(0).0;
        let file = v
            .open_at(
                borrow(&root),
                PathFlags::empty(),
                "big".into(),
                OpenFlags::empty(),
                DescriptorFlags::READ,
            )
            .expect("open big");
        let file_stream = v.read_via_stream(borrow(&file), 0).expect("stream");
        for stream in [&stdin, &file_stream] {
            for _ in 0..4 {
                let bytes = HostInputStream::read(&mut v, borrow(stream), u64::MAX).expect("read");
                assert!(
                    bytes.len() <= weir::io::MAX_READ_BYTES,
                    "read {}",
                    bytes.len()
                );
                returned += bytes.len() as u64;
                let bytes = HostInputStream::blocking_read(&mut v, borrow(stream), u64::MAX)
                    .await
                    .expect("blocking-read");
                assert!(bytes.len() <= weir::io::MAX_READ_BYTES);
                returned += bytes.len() as u64;
                v.skip(borrow(stream), u64::MAX).expect("skip");
            }
        }
        // The descriptor's own read.
        let (bytes, _) =
            HostDescriptor::read(&mut v, borrow(&file), u64::MAX, 0).expect("descriptor read");
        assert!(
            bytes.len() <= weir::io::MAX_READ_BYTES,
            "read {}",
            bytes.len()
        );
        returned += bytes.len() as u64;
        // Random: refused with a trap, as the WIT allows for lengths the host cannot meet.
        for result in [
            v.get_random_bytes(u64::MAX).map(|_| ()),
            v.get_insecure_random_bytes(u64::MAX).map(|_| ()),
        ] {
            // (Not `{error:?}`: that would symbolise the captured backtrace, which takes
            // more memory than everything measured here.)
            let text = common::chain(&result.expect_err("u64::MAX random bytes"));
            assert!(text.contains("exceeds limit"), "{text}");
        }
        // UDP: 64 datagrams of 60,000 bytes queued, then receive(u64::MAX).
        let network = v.instance_network().unwrap();
        let socket = v.create_udp_socket(IpAddressFamily::Ipv4).unwrap();
        let loopback = IpSocketAddress::Ipv4(Ipv4SocketAddress {
            port: 0,
            address: (127, 0, 0, 1),
        });
        v.start_bind(borrow(&socket), borrow(&network), loopback)
            .expect("bind");
        v.finish_bind(borrow(&socket)).expect("bind");
        let local = match v.local_address(borrow(&socket)).unwrap() {
            IpSocketAddress::Ipv4(a) => a.port,
            IpSocketAddress::Ipv6(_) => unreachable!("an IPv4 socket"),
        };
        let (incoming, _outgoing) = v.stream(borrow(&socket), None).expect("stream");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..64 {
            sender.send_to(&[1; 60_000], ("127.0.0.1", local)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let datagrams = v.receive(borrow(&incoming), u64::MAX).expect("receive");
        assert!(!datagrams.is_empty(), "the queued datagrams");
        returned += datagrams.iter().map(|d| d.data.len() as u64).sum::<u64>();
    });
    let host_growth = peak.growth();
    drop(table);
    drop(wasi);
    println!(
        "u64::MAX lengths: peak RSS growth {:.1} MiB, {:.1} MiB returned to the caller",
        host_growth as f64 / MIB as f64,
        returned as f64 / MIB as f64
    );
    // What the calls returned (each capped at MAX_READ_BYTES, or a receive batch) is all
    // the memory they may take, plus a constant.
    assert!(
        host_growth <= returned + 16 * MIB,
        "peak RSS grew {host_growth} bytes for {returned} bytes returned"
    );
}
