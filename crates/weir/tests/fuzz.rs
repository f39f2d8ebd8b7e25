//! A seeded host-call fuzzer: long random sequences of WASI calls made directly on Weir's
//! host traits (what a guest's imports reach after the component ABI), with valid and invalid
//! arguments, huge lengths and resources dropped in random order.
//!
//! Oracle, for every call: no host panic; no hang (each call returns within 10 s); an error is
//! the WIT's (`error-code`, `stream-error`) or a trap whose message is one of the documented
//! ones ([`DOCUMENTED_TRAPS`]). A trap ends the instance, as it would a guest: the driver drops
//! it and starts a new one. At the end every instance's handles are dropped (in random
//! order), the table must be empty, and the process's descriptor count must be back at its
//! baseline.
//!
//! CI runs a fixed-seed campaign of `WEIR_FUZZ_CALLS` calls (default 100,000). The long
//! campaign (see `docs/reliability.md`):
//! `WEIR_FUZZ_CALLS=10000000 WEIR_FUZZ_SEED=1 cargo nextest run --release --workspace -E 'test(host_call_fuzzer)'`.
//! A failure prints the seed and the instance's call log; rerun with that seed.

mod common;

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wasmtime::component::{Resource, ResourceTable};
use weir::bindings::wasi::cli::{stdin::Host as _, stdout::Host as _};
use weir::bindings::wasi::clocks::monotonic_clock::Host as _;
use weir::bindings::wasi::filesystem::preopens::Host as _;
use weir::bindings::wasi::filesystem::types::{
    DescriptorFlags, HostDescriptor, HostDirectoryEntryStream, OpenFlags, PathFlags,
};
use weir::bindings::wasi::io::poll::{Host as _, HostPollable};
use weir::bindings::wasi::io::streams::{HostInputStream, HostOutputStream};
use weir::bindings::wasi::random::random::Host as _;
use weir::bindings::wasi::sockets::instance_network::Host as _;
use weir::bindings::wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
use weir::bindings::wasi::sockets::udp::{
    HostIncomingDatagramStream, HostOutgoingDatagramStream, HostUdpSocket, OutgoingDatagram,
};
use weir::bindings::wasi::sockets::udp_create_socket::Host as _;
use weir::error::GuestError;
use weir::io::{MemoryInputPipe, MemoryOutputPipe, StreamError};
use weir::sockets::NetworkPolicy;
use weir::{WasiCtx, WasiCtxBuilder, WasiCtxView};

/// Trap messages the host documents (README status table, WIT contract); anything else is a
/// fuzzer failure.
const DOCUMENTED_TRAPS: &[&str] = &[
    "write exceeded budget",
    "Buffer too large for blocking-write-and-flush",
    "empty poll list",
    "exceeds limit",
    "not preceded by check-send",
    "argument exceeds permitted size",
    // A parent (stream, socket) dropped before its child pollables, and a full table:
    // wasmtime's resource-table errors.
    "resource has children",
    "resource table has no free keys",
];

/// Which kind of resource a handle is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Output,
    Input,
    Pollable,
    Descriptor,
    DirEntries,
    Network,
    Udp,
    Incoming,
    Outgoing,
}

struct Instance {
    ctx: WasiCtx,
    table: ResourceTable,
    /// Live handles (rep, kind); a dropped one may stay here as a stale handle.
    handles: Vec<(u32, Kind)>,
    log: Vec<String>,
}

impl Instance {
    fn new(dir: &std::path::Path) -> Instance {
        let mut builder = WasiCtxBuilder::new();
        builder
            // Large enough for one instance's writes: a blocking write into a full pipe
            // nobody reads waits forever, as the WIT says it must.
            .stdout(MemoryOutputPipe::new(64 << 20))
            .stdin(MemoryInputPipe::new(vec![0x5a; 10_000]))
            .network_policy(NetworkPolicy::allow_all())
            .max_random_size(1 << 20);
        builder
            .preopened_dir(
                dir,
                "/",
                weir::DirPerms::READ | weir::DirPerms::MUTATE,
                weir::FilePerms::READ | weir::FilePerms::WRITE,
            )
            .expect("preopen");
        Instance {
            ctx: builder.build(),
            table: ResourceTable::new(),
            handles: Vec::new(),
            log: Vec::new(),
        }
    }

    fn view(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }

    fn pick(&self, rng: &mut StdRng, kind: Kind) -> Option<u32> {
        let of_kind: Vec<u32> = self
            .handles
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(rep, _)| *rep)
            .collect();
        if of_kind.is_empty() {
            None
        } else {
            Some(of_kind[rng.random_range(0..of_kind.len())])
        }
    }
}

/// What one call returned, reduced to what the oracle judges.
enum Verdict {
    Fine,
    Trap(String),
}

/// An error of a host call: a WIT error for the guest (`None`), or a trap and its message.
trait HostCallError {
    fn trap_message(self) -> Option<String>;
}

impl HostCallError for StreamError {
    fn trap_message(self) -> Option<String> {
        match self {
            StreamError::Closed | StreamError::LastOperationFailed(_) => None,
            StreamError::Trap(e) => Some(format!("{e:#}")),
        }
    }
}

impl<C> HostCallError for GuestError<C> {
    fn trap_message(self) -> Option<String> {
        match self {
            GuestError::Code(_) => None,
            GuestError::Trap(e) => Some(format!("{e:#}")),
        }
    }
}

impl HostCallError for wasmtime::Error {
    fn trap_message(self) -> Option<String> {
        Some(format!("{self:#}"))
    }
}

fn judge<T, E: HostCallError>(result: Result<T, E>) -> Verdict {
    match result.err().and_then(HostCallError::trap_message) {
        None => Verdict::Fine,
        Some(message) => Verdict::Trap(message),
    }
}

/// Judges a call that creates a resource, and lists the resource it returned.
fn created<R: 'static, E: HostCallError>(
    handles: &mut Vec<(u32, Kind)>,
    kind: Kind,
    result: Result<Resource<R>, E>,
) -> Verdict {
    if let Ok(resource) = &result {
        handles.push((resource.rep(), kind));
    }
    judge(result)
}

fn random_path(rng: &mut StdRng) -> String {
    const PARTS: &[&str] = &[
        "a",
        "b",
        "dir",
        "..",
        ".",
        "/",
        "/etc/passwd",
        "link",
        "a/b",
        "../..",
        "\0",
        "x\0y",
        "ü",
        "",
        "//",
        "a/../..",
    ];
    match rng.random_range(0..10) {
        0 => "n".repeat(rng.random_range(200..5000)),
        _ => (0..rng.random_range(1..4))
            .map(|_| PARTS[rng.random_range(0..PARTS.len())])
            .collect::<Vec<_>>()
            .join("/"),
    }
}

fn huge_or_small(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..8) {
        0 => u64::MAX,
        1 => u64::MAX / 2,
        2 => 1 << 40,
        3 => rng.random_range(0..(8 << 20)),
        _ => rng.random_range(0..5000),
    }
}

fn loopback(rng: &mut StdRng) -> IpSocketAddress {
    let address = match rng.random_range(0..4) {
        0 => (0, 0, 0, 0),
        1 => (255, 255, 255, 255),
        2 => (224, 0, 0, 1),
        _ => (127, 0, 0, 1),
    };
    IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: if rng.random_bool(0.5) {
            0
        } else {
            rng.random_range(40000..40100)
        },
        address,
    })
}

fn random_flags<F: Copy + std::ops::BitOr<Output = F>>(rng: &mut StdRng, each: &[F], none: F) -> F {
    each.iter().fold(none, |acc, &flag| {
        if rng.random_bool(0.4) {
            acc | flag
        } else {
            acc
        }
    })
}

fn own<T: 'static>(rep: u32) -> Resource<T> {
    Resource::new_own(rep)
}

fn borrow<T: 'static>(rep: u32) -> Resource<T> {
    Resource::new_borrow(rep)
}

/// One random call on `instance`.
async fn step(instance: &mut Instance, rng: &mut StdRng) -> (String, Verdict) {
    let choice = rng.random_range(0..30);
    let out = instance.pick(rng, Kind::Output);
    let input = instance.pick(rng, Kind::Input);
    let pollable = instance.pick(rng, Kind::Pollable);
    let desc = instance.pick(rng, Kind::Descriptor);
    let udp = instance.pick(rng, Kind::Udp);
    let network = instance.pick(rng, Kind::Network);
    let outgoing = instance.pick(rng, Kind::Outgoing);
    let incoming = instance.pick(rng, Kind::Incoming);
    let entries = instance.pick(rng, Kind::DirEntries);
    let len = huge_or_small(rng);
    let mut new_handles: Vec<(u32, Kind)> = Vec::new();
    let mut v = instance.view();
    let (name, verdict) = match choice {
        0 => (
            "get-stdout".into(),
            created(&mut new_handles, Kind::Output, v.get_stdout()),
        ),
        1 => (
            "get-stdin".into(),
            created(&mut new_handles, Kind::Input, v.get_stdin()),
        ),
        2 => match out {
            Some(o) => ("check-write".into(), judge(v.check_write(borrow(o)))),
            None => ("none".into(), Verdict::Fine),
        },
        3 => match out {
            Some(o) => {
                let n = (len % 8192) as usize;
                (
                    format!("write({n})"),
                    judge(HostOutputStream::write(&mut v, borrow(o), vec![1; n])),
                )
            }
            None => ("none".into(), Verdict::Fine),
        },
        4 => match out {
            Some(o) => ("flush".into(), judge(v.flush(borrow(o)))),
            None => ("none".into(), Verdict::Fine),
        },
        5 => match out {
            Some(o) => {
                let n = (len % 6000) as usize;
                (
                    format!("blocking-write-and-flush({n})"),
                    judge(v.blocking_write_and_flush(borrow(o), vec![2; n]).await),
                )
            }
            None => ("none".into(), Verdict::Fine),
        },
        6 => match out {
            Some(o) => (
                format!("write-zeroes({len})"),
                judge(v.write_zeroes(borrow(o), len)),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        7 => match (out, input) {
            (Some(o), Some(i)) => (
                format!("splice({len})"),
                judge(v.splice(borrow(o), borrow(i), len)),
            ),
            _ => ("none".into(), Verdict::Fine),
        },
        8 => match input {
            Some(i) => (
                format!("read({len})"),
                judge(HostInputStream::read(&mut v, borrow(i), len)),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        9 => match input {
            Some(i) => (format!("skip({len})"), judge(v.skip(borrow(i), len))),
            None => ("none".into(), Verdict::Fine),
        },
        10 => match (out, input) {
            (Some(o), _) if rng.random_bool(0.5) => (
                "subscribe(out)".into(),
                created(
                    &mut new_handles,
                    Kind::Pollable,
                    HostOutputStream::subscribe(&mut v, borrow(o)),
                ),
            ),
            (_, Some(i)) => (
                "subscribe(in)".into(),
                created(
                    &mut new_handles,
                    Kind::Pollable,
                    HostInputStream::subscribe(&mut v, borrow(i)),
                ),
            ),
            _ => ("none".into(), Verdict::Fine),
        },
        11 => {
            let nanos = if rng.random_bool(0.9) {
                rng.random_range(0..2_000_000)
            } else {
                u64::MAX
            };
            (
                format!("subscribe-duration({nanos})"),
                created(
                    &mut new_handles,
                    Kind::Pollable,
                    v.subscribe_duration(nanos),
                ),
            )
        }
        12 => {
            // A random list, duplicates allowed, possibly empty (a documented trap). Only
            // pollables that become ready soon are polled with a timer among them, so a poll
            // never waits forever.
            let count = rng.random_range(0..6);
            let mut list = Vec::new();
            for _ in 0..count {
                if let Some(p) = pollable {
                    list.push(p);
                }
            }
            let timer = v.subscribe_duration(1_000_000).ok();
            let mut reps: Vec<u32> = list;
            if let Some(t) = timer.as_ref().filter(|_| count > 0) {
                reps.push(t.rep());
            }
            let n = reps.len();
            let verdict = judge(v.poll(reps.into_iter().map(borrow).collect()).await);
            if let Some(t) = timer {
                let _ = HostPollable::drop(&mut v, own(t.rep()));
            }
            (format!("poll({n})"), verdict)
        }
        13 => match pollable {
            Some(p) => ("ready".into(), judge(v.ready(borrow(p)))),
            None => ("none".into(), Verdict::Fine),
        },
        14 => (
            format!("get-random-bytes({len})"),
            judge(v.get_random_bytes(len)),
        ),
        15 => (
            "get-directories".into(),
            match v.get_directories() {
                Ok(dirs) => {
                    if let Some((d, _)) = dirs.into_iter().next() {
                        new_handles.push((d.rep(), Kind::Descriptor));
                    }
                    Verdict::Fine
                }
                Err(e) => Verdict::Trap(format!("{e:#}")),
            },
        ),
        16 => match desc {
            Some(d) => {
                let path = random_path(rng);
                let oflags = random_flags(
                    rng,
                    &[
                        OpenFlags::CREATE,
                        OpenFlags::DIRECTORY,
                        OpenFlags::EXCLUSIVE,
                        OpenFlags::TRUNCATE,
                    ],
                    OpenFlags::empty(),
                );
                let flags = random_flags(
                    rng,
                    &[
                        DescriptorFlags::READ,
                        DescriptorFlags::WRITE,
                        DescriptorFlags::MUTATE_DIRECTORY,
                        DescriptorFlags::FILE_INTEGRITY_SYNC,
                        DescriptorFlags::DATA_INTEGRITY_SYNC,
                        DescriptorFlags::REQUESTED_WRITE_SYNC,
                    ],
                    DescriptorFlags::empty(),
                );
                let pflags = if rng.random_bool(0.5) {
                    PathFlags::SYMLINK_FOLLOW
                } else {
                    PathFlags::empty()
                };
                (
                    format!("open-at({path:?}, {oflags:?}, {flags:?})"),
                    created(
                        &mut new_handles,
                        Kind::Descriptor,
                        v.open_at(borrow(d), pflags, path, oflags, flags),
                    ),
                )
            }
            None => ("none".into(), Verdict::Fine),
        },
        17 => match desc {
            Some(d) => (
                format!("read({len})"),
                judge(HostDescriptor::read(
                    &mut v,
                    borrow(d),
                    len,
                    rng.random_range(0..100),
                )),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        18 => match desc {
            Some(d) => (
                "write".into(),
                judge(HostDescriptor::write(
                    &mut v,
                    borrow(d),
                    vec![3; (len % 4096) as usize],
                    len,
                )),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        19 => match desc {
            Some(d) => (
                "read-directory".into(),
                created(
                    &mut new_handles,
                    Kind::DirEntries,
                    v.read_directory(borrow(d)),
                ),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        20 => match entries {
            Some(e) => (
                "read-directory-entry".into(),
                judge(v.read_directory_entry(borrow(e))),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        21 => match desc {
            Some(d) => {
                let (a, b) = (random_path(rng), random_path(rng));
                let verdict = match rng.random_range(0..5) {
                    0 => judge(v.rename_at(borrow(d), a.clone(), borrow(d), b.clone())),
                    1 => judge(v.symlink_at(borrow(d), a.clone(), b.clone())),
                    2 => judge(v.unlink_file_at(borrow(d), a.clone())),
                    3 => judge(v.create_directory_at(borrow(d), a.clone())),
                    _ => judge(v.stat_at(borrow(d), PathFlags::SYMLINK_FOLLOW, a.clone())),
                };
                (format!("path-op({a:?}, {b:?})"), verdict)
            }
            None => ("none".into(), Verdict::Fine),
        },
        22 => match desc {
            Some(d) => (
                "read-via-stream".into(),
                created(
                    &mut new_handles,
                    Kind::Input,
                    v.read_via_stream(borrow(d), len),
                ),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        23 => match desc {
            Some(d) => (
                "write-via-stream".into(),
                created(
                    &mut new_handles,
                    Kind::Output,
                    v.write_via_stream(borrow(d), len % 100_000),
                ),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        24 => (
            "instance-network".into(),
            created(&mut new_handles, Kind::Network, v.instance_network()),
        ),
        25 => (
            "create-udp-socket".into(),
            created(
                &mut new_handles,
                Kind::Udp,
                v.create_udp_socket(IpAddressFamily::Ipv4),
            ),
        ),
        26 => match (udp, network) {
            (Some(s), Some(n)) => {
                let addr = loopback(rng);
                let first = judge(v.start_bind(borrow(s), borrow(n), addr));
                let verdict = match first {
                    Verdict::Fine => judge(v.finish_bind(borrow(s))),
                    trap => trap,
                };
                (format!("bind({addr:?})"), verdict)
            }
            _ => ("none".into(), Verdict::Fine),
        },
        27 => match udp {
            Some(s) => {
                let remote = rng.random_bool(0.5).then(|| loopback(rng));
                (
                    "udp.stream".into(),
                    match v.stream(borrow(s), remote) {
                        Ok((i, o)) => {
                            new_handles.push((i.rep(), Kind::Incoming));
                            new_handles.push((o.rep(), Kind::Outgoing));
                            Verdict::Fine
                        }
                        Err(e) => judge::<(), _>(Err(e)),
                    },
                )
            }
            None => ("none".into(), Verdict::Fine),
        },
        28 => match outgoing {
            Some(o) => {
                let verdict = if rng.random_bool(0.5) {
                    judge(v.check_send(borrow(o)))
                } else {
                    let count = rng.random_range(0..5);
                    let datagrams = (0..count)
                        .map(|_| OutgoingDatagram {
                            data: vec![4; rng.random_range(0..2000)],
                            remote_address: rng.random_bool(0.5).then(|| loopback(rng)),
                        })
                        .collect();
                    judge(v.send(borrow(o), datagrams))
                };
                ("udp.check-send/send".into(), verdict)
            }
            None => ("none".into(), Verdict::Fine),
        },
        29 => match incoming {
            Some(i) => (
                format!("udp.receive({len})"),
                judge(v.receive(borrow(i), len)),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        _ => unreachable!(),
    };
    let name = if new_handles.is_empty() {
        name
    } else {
        format!("{name} -> {new_handles:?}")
    };
    instance.handles.extend(new_handles);
    (name, verdict)
}

/// Drops the handle at `index` through its interface's `drop`. A dropped handle leaves the
/// list; one whose drop trapped (it still has children) stays, as it is still in the table.
///
/// No stale or mistyped handles: the canonical ABI rejects those before the host sees them
/// (and wasmtime's `ResourceTable::delete` removes an entry even when it then reports
/// "another type", so a host-level model of them would test wasmtime's table, not Weir).
fn drop_handle(instance: &mut Instance, index: usize) -> (String, Verdict) {
    let (rep, kind) = instance.handles[index];
    let (name, verdict) = drop_rep(instance, rep, kind);
    let still_there = matches!(&verdict, Verdict::Trap(m) if m.contains("has children"));
    if !still_there {
        instance.handles.swap_remove(index);
    }
    (name, verdict)
}

fn drop_rep(instance: &mut Instance, rep: u32, kind: Kind) -> (String, Verdict) {
    let mut v = instance.view();
    let verdict = match kind {
        Kind::Output => judge(HostOutputStream::drop(&mut v, own(rep))),
        Kind::Input => judge(HostInputStream::drop(&mut v, own(rep))),
        Kind::Pollable => judge(HostPollable::drop(&mut v, own(rep))),
        Kind::Descriptor => judge(HostDescriptor::drop(&mut v, own(rep))),
        Kind::DirEntries => judge(HostDirectoryEntryStream::drop(&mut v, own(rep))),
        Kind::Network => judge(weir::bindings::wasi::sockets::network::HostNetwork::drop(
            &mut v,
            own(rep),
        )),
        Kind::Udp => judge(HostUdpSocket::drop(&mut v, own(rep))),
        Kind::Incoming => judge(HostIncomingDatagramStream::drop(&mut v, own(rep))),
        Kind::Outgoing => judge(HostOutgoingDatagramStream::drop(&mut v, own(rep))),
    };
    (format!("drop({kind:?} {rep})"), verdict)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Calls per instance before it is dropped and a new one starts (unless a trap ends it
/// first).
const CALLS_PER_INSTANCE: u64 = 2_000;

struct Campaign {
    calls: u64,
    traps: u64,
    instances: u64,
}

/// Runs `calls` random calls from `seed`; returns the figures or the first failure.
async fn campaign(seed: u64, calls: u64, dir: &std::path::Path) -> Result<Campaign, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut figures = Campaign {
        calls: 0,
        traps: 0,
        instances: 0,
    };
    while figures.calls < calls {
        figures.instances += 1;
        let mut instance = Instance::new(dir);
        for _ in 0..CALLS_PER_INSTANCE.min(calls - figures.calls) {
            figures.calls += 1;
            let (name, verdict) = if !instance.handles.is_empty() && rng.random_range(0..6) == 0 {
                let index = rng.random_range(0..instance.handles.len());
                drop_handle(&mut instance, index)
            } else {
                match tokio::time::timeout(Duration::from_secs(10), step(&mut instance, &mut rng))
                    .await
                {
                    Ok(done) => done,
                    Err(_) => {
                        return Err(format!(
                            "seed {seed}: a call hung (> 10 s) after {:?}",
                            instance.log.iter().rev().take(20).collect::<Vec<_>>()
                        ));
                    }
                }
            };
            instance.log.push(match &verdict {
                Verdict::Fine => name.clone(),
                Verdict::Trap(message) => format!("{name}: trap {message}"),
            });
            if let Verdict::Trap(message) = verdict {
                if !DOCUMENTED_TRAPS.iter().any(|known| message.contains(known)) {
                    return Err(format!(
                        "seed {seed}: `{name}` trapped with an undocumented message `{message}`; last calls: {:?}",
                        instance.log.iter().rev().take(20).collect::<Vec<_>>()
                    ));
                }
                figures.traps += 1;
                break;
            }
        }
        // The instance ends (trap or not): its handles go in random order, then the
        // table must be empty.
        // A parent whose children are still there stays listed and is retried.
        let mut attempts = 0;
        while !instance.handles.is_empty() && attempts < 100_000 {
            attempts += 1;
            let index = rng.random_range(0..instance.handles.len());
            let _ = drop_handle(&mut instance, index);
        }
        // What remains in the table after every handle was dropped is a leak.
        if !instance.table.is_empty() {
            return Err(format!(
                "seed {seed}: resources {:?} left in the table after every handle was dropped; calls: {:?}",
                instance.table,
                instance
                    .log
                    .iter()
                    .filter(|l| *l != "none")
                    .collect::<Vec<_>>()
            ));
        }
        drop(instance);
    }
    Ok(figures)
}

#[test]
fn host_call_fuzzer() {
    let seed = env_number("WEIR_FUZZ_SEED", 0x5eed);
    let calls = env_number("WEIR_FUZZ_CALLS", 100_000);
    let dir = tempfile::tempdir().expect("a scratch directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let baseline = common::open_fds();
    let outcome = runtime.block_on(async {
        let dir = dir.path().to_path_buf();
        // A panic inside a call surfaces as a failed task, with the seed printed below.
        tokio::spawn(async move { campaign(seed, calls, &dir).await }).await
    });
    let figures = match outcome {
        Ok(Ok(figures)) => figures,
        Ok(Err(failure)) => panic!("{failure}"),
        Err(panic) => panic!("seed {seed}: the host panicked: {panic}"),
    };
    // Background tasks of dropped instances (stream workers) end shortly after.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while common::open_fds() > baseline && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        common::open_fds() <= baseline,
        "seed {seed}: {} descriptors open, {baseline} before",
        common::open_fds()
    );
    println!(
        "host-call fuzzer: seed {seed}, {} calls, {} instances, {} documented traps, 0 panics, 0 hangs, 0 leaks",
        figures.calls, figures.instances, figures.traps
    );
    assert_eq!(figures.calls, calls);
}
