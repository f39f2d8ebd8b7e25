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
use weir::bindings::wasi::sockets::ip_name_lookup::{Host as _, HostResolveAddressStream};
use weir::bindings::wasi::sockets::network::{
    ErrorCode as SocketErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress,
    Ipv6SocketAddress,
};
use weir::bindings::wasi::sockets::tcp::{HostTcpSocket, ShutdownType};
use weir::bindings::wasi::sockets::tcp_create_socket::Host as _;
use weir::bindings::wasi::sockets::udp::{
    HostIncomingDatagramStream, HostOutgoingDatagramStream, HostUdpSocket, OutgoingDatagram,
};
use weir::bindings::wasi::sockets::udp_create_socket::Host as _;
use weir::error::GuestError;
use weir::io::{MemoryInputPipe, StreamError};
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
    Tcp,
    /// TCP streams: only the non-blocking stream calls are made on them (a blocking write to
    /// a peer that never reads waits forever, as the WIT says).
    TcpIn,
    TcpOut,
    Resolve,
}

struct Instance {
    ctx: WasiCtx,
    table: ResourceTable,
    /// Live handles (rep, kind); a dropped one may stay here as a stale handle.
    handles: Vec<(u32, Kind)>,
    log: Vec<String>,
    /// The call being made (for a hang report).
    running: String,
}

impl Instance {
    fn new(dir: &std::path::Path) -> Instance {
        let mut builder = WasiCtxBuilder::new();
        builder
            // A sink: an instance lives up to 2,000 calls and may write gigabytes (permits
            // of 1 MiB); a bounded pipe nobody reads would make a blocking write wait
            // forever, as the WIT says it must.
            .stdout(weir::io::SinkOutputStream)
            .stdin(MemoryInputPipe::new(vec![0x5a; 10_000]))
            // Sockets anywhere; lookups of `localhost` only, so that no fuzzed name reaches
            // the network's DNS (every other name is converted and judged, then denied).
            .network_policy(
                NetworkPolicy::allow_all_sockets()
                    .allow("ip-name-lookup=localhost")
                    .expect("rule"),
            )
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
            running: String::new(),
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

/// Lengths: mostly small, sometimes huge (rare enough that instances live long).
fn huge_or_small(rng: &mut StdRng) -> u64 {
    match rng.random_range(0..32) {
        0 => u64::MAX,
        1 => u64::MAX / 2,
        2 => 1 << 40,
        3 | 4 => rng.random_range(0..(8 << 20)),
        _ => rng.random_range(0..5000),
    }
}

/// Names for `resolve-addresses`: IP literals, `localhost`, malformed names and IDNA edge
/// cases (only `localhost` is allowed by the policy, so nothing reaches DNS).
fn random_name(rng: &mut StdRng) -> String {
    const NAMES: &[&str] = &[
        "localhost",
        "LOCALHOST",
        "localhost.",
        "127.0.0.1",
        "::1",
        "[::1]",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "",
        ".",
        "..",
        "a..b",
        "-leading.hyphen",
        "trailing-.hyphen",
        "bücher.example",
        "xn--",
        "xn--bcher-kva.example",
        "xn--zz",
        "a\u{200d}b.example",
        "\u{fb00}.example",
        "\0",
        "local host",
        "localhost:80",
        "%",
        "ü",
    ];
    match rng.random_range(0..12) {
        0 => "a".repeat(rng.random_range(60..400)),
        1 => (0..rng.random_range(2..200)).map(|_| "a.").collect(),
        _ => NAMES[rng.random_range(0..NAMES.len())].to_string(),
    }
}

/// The port of the test's TCP peer (accepts, writes a greeting, closes), once started.
static PEER_PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();

/// Starts the TCP peer that fuzzed connects can reach.
fn start_tcp_peer() {
    PEER_PORT.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("peer listener");
        let port = listener.local_addr().expect("peer address").port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = std::io::Write::write_all(&mut &stream, b"hello from the peer");
                // Dropped at once: the guest sees data, then the end (or a reset).
            }
        });
        port
    });
}

fn loopback(rng: &mut StdRng) -> IpSocketAddress {
    if rng.random_range(0..8) == 0 {
        return IpSocketAddress::Ipv6(Ipv6SocketAddress {
            port: rng.random_range(0..3),
            address: (0, 0, 0, 0, 0, 0, 0, rng.random_range(0..2)),
            flow_info: rng.random_range(0..2),
            scope_id: rng.random_range(0..2),
        });
    }
    let address = match rng.random_range(0..4) {
        0 => (0, 0, 0, 0),
        1 => (255, 255, 255, 255),
        2 => (224, 0, 0, 1),
        _ => (127, 0, 0, 1),
    };
    let port = match rng.random_range(0..3) {
        0 => 0,
        1 => *PEER_PORT.get().unwrap_or(&1),
        _ => rng.random_range(40000..40100),
    };
    IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address })
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

/// The local address of the TCP socket `socket`, if it has one.
fn instance_tcp_address(v: &mut WasiCtxView<'_>, socket: Option<u32>) -> Option<IpSocketAddress> {
    HostTcpSocket::local_address(v, borrow(socket?)).ok()
}

fn own<T: 'static>(rep: u32) -> Resource<T> {
    Resource::new_own(rep)
}

fn borrow<T: 'static>(rep: u32) -> Resource<T> {
    Resource::new_borrow(rep)
}

/// One random call on `instance`.
async fn step(instance: &mut Instance, rng: &mut StdRng) -> (String, Verdict) {
    let choice = rng.random_range(0..43);
    // Non-blocking stream calls go to any stream, TCP ones included; the blocking ones
    // (`blocking-write-and-flush`, `poll` without a timer) never see a TCP stream.
    let tcp_streams = rng.random_bool(0.3);
    let out_any = if tcp_streams {
        instance.pick(rng, Kind::TcpOut)
    } else {
        instance.pick(rng, Kind::Output)
    };
    let in_any = if tcp_streams {
        instance.pick(rng, Kind::TcpIn)
    } else {
        instance.pick(rng, Kind::Input)
    };
    let out = instance.pick(rng, Kind::Output);
    let tcp = instance.pick(rng, Kind::Tcp);
    let tcp_other = instance.pick(rng, Kind::Tcp);
    let resolve = instance.pick(rng, Kind::Resolve);
    let pollable = instance.pick(rng, Kind::Pollable);
    let desc = instance.pick(rng, Kind::Descriptor);
    let udp = instance.pick(rng, Kind::Udp);
    let network = instance.pick(rng, Kind::Network);
    let outgoing = instance.pick(rng, Kind::Outgoing);
    let incoming = instance.pick(rng, Kind::Incoming);
    let entries = instance.pick(rng, Kind::DirEntries);
    let len = huge_or_small(rng);
    instance.running = format!("choice {choice}, len {len}");
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
        2 => match out_any {
            Some(o) => ("check-write".into(), judge(v.check_write(borrow(o)))),
            None => ("none".into(), Verdict::Fine),
        },
        3 => match out_any {
            Some(o) => {
                // Mostly within the permit just granted; sometimes blind (over the permit,
                // or with no check-write before it: documented traps).
                let within = rng.random_bool(0.9);
                let n = if within {
                    match v.check_write(borrow(o)) {
                        Ok(permit) => (len % 8192).min(permit) as usize,
                        Err(_) => 0,
                    }
                } else {
                    (len % 8192) as usize
                };
                (
                    format!("write({n}, within permit: {within})"),
                    judge(HostOutputStream::write(&mut v, borrow(o), vec![1; n])),
                )
            }
            None => ("none".into(), Verdict::Fine),
        },
        4 => match out_any {
            Some(o) => ("flush".into(), judge(v.flush(borrow(o)))),
            None => ("none".into(), Verdict::Fine),
        },
        5 => match out {
            Some(o) => {
                // Over 4096 bytes traps; rarely asked for.
                let n = if rng.random_bool(0.95) {
                    (len % 4097) as usize
                } else {
                    (len % 6000) as usize
                };
                (
                    format!("blocking-write-and-flush({n})"),
                    judge(v.blocking_write_and_flush(borrow(o), vec![2; n]).await),
                )
            }
            None => ("none".into(), Verdict::Fine),
        },
        6 => match out_any {
            Some(o) => {
                let n = if rng.random_bool(0.9) {
                    v.check_write(borrow(o)).map_or(0, |permit| len.min(permit))
                } else {
                    len
                };
                (
                    format!("write-zeroes({n})"),
                    judge(v.write_zeroes(borrow(o), n)),
                )
            }
            None => ("none".into(), Verdict::Fine),
        },
        7 => match (out_any, in_any) {
            (Some(o), Some(i)) => (
                format!("splice({len})"),
                judge(v.splice(borrow(o), borrow(i), len)),
            ),
            _ => ("none".into(), Verdict::Fine),
        },
        8 => match in_any {
            Some(i) => (
                format!("read({len})"),
                judge(HostInputStream::read(&mut v, borrow(i), len)),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        9 => match in_any {
            Some(i) => (format!("skip({len})"), judge(v.skip(borrow(i), len))),
            None => ("none".into(), Verdict::Fine),
        },
        10 => match (out_any, in_any) {
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
            let count = if rng.random_bool(0.03) {
                0
            } else {
                rng.random_range(1..6)
            };
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
        14 => {
            // Over the instance's 1 MiB limit traps; rarely asked for.
            let n = if rng.random_bool(0.9) {
                len % (1 << 20)
            } else {
                len
            };
            (
                format!("get-random-bytes({n})"),
                judge(v.get_random_bytes(n)),
            )
        }
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
                let first = judge(HostUdpSocket::start_bind(
                    &mut v,
                    borrow(s),
                    borrow(n),
                    addr,
                ));
                let verdict = match first {
                    Verdict::Fine => judge(HostUdpSocket::finish_bind(&mut v, borrow(s))),
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
                } else if rng.random_bool(0.2) {
                    // One datagram over the permit just granted: a documented trap.
                    match v.check_send(borrow(o)) {
                        Ok(permit) => {
                            let datagrams = (0..=permit)
                                .map(|_| OutgoingDatagram {
                                    data: vec![5; 8],
                                    remote_address: Some(loopback(rng)),
                                })
                                .collect();
                            judge(v.send(borrow(o), datagrams))
                        }
                        Err(e) => judge::<(), _>(Err(e)),
                    }
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
        30 => {
            let family = if rng.random_bool(0.8) {
                IpAddressFamily::Ipv4
            } else {
                IpAddressFamily::Ipv6
            };
            (
                format!("create-tcp-socket({family:?})"),
                created(&mut new_handles, Kind::Tcp, v.create_tcp_socket(family)),
            )
        }
        31 => match (tcp, network) {
            (Some(t), Some(n)) => {
                let addr = loopback(rng);
                let mut verdict = judge(HostTcpSocket::start_bind(
                    &mut v,
                    borrow(t),
                    borrow(n),
                    addr,
                ));
                if matches!(verdict, Verdict::Fine) && rng.random_bool(0.8) {
                    verdict = judge(HostTcpSocket::finish_bind(&mut v, borrow(t)));
                }
                (format!("tcp.bind({addr:?})"), verdict)
            }
            _ => ("none".into(), Verdict::Fine),
        },
        32 => match tcp {
            Some(t) => {
                let mut verdict = judge(v.start_listen(borrow(t)));
                if matches!(verdict, Verdict::Fine) && rng.random_bool(0.8) {
                    verdict = judge(v.finish_listen(borrow(t)));
                }
                ("tcp.listen".into(), verdict)
            }
            None => ("none".into(), Verdict::Fine),
        },
        33 => match (tcp, network) {
            (Some(t), Some(n)) => {
                // The test's peer, another socket of this instance (a listener, say), or
                // a random address.
                let other = instance_tcp_address(&mut v, tcp_other);
                let addr = match rng.random_range(0..10) {
                    0..4 => IpSocketAddress::Ipv4(Ipv4SocketAddress {
                        port: *PEER_PORT.get().unwrap_or(&1),
                        address: (127, 0, 0, 1),
                    }),
                    4..7 => other.unwrap_or_else(|| loopback(rng)),
                    _ => loopback(rng),
                };
                let mut verdict = judge(v.start_connect(borrow(t), borrow(n), addr));
                let mut made = "";
                if matches!(verdict, Verdict::Fine) && rng.random_bool(0.7) {
                    // Finish once the connection is up (or failed): a few ms on loopback.
                    for _ in 0..200 {
                        match v.finish_connect(borrow(t)) {
                            Ok((i, o)) => {
                                new_handles.push((i.rep(), Kind::TcpIn));
                                new_handles.push((o.rep(), Kind::TcpOut));
                                made = " (connected)";
                                break;
                            }
                            Err(GuestError::Code(SocketErrorCode::WouldBlock)) => {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            Err(e) => {
                                verdict = judge::<(), _>(Err(e));
                                break;
                            }
                        }
                    }
                }
                (format!("tcp.connect({addr:?}){made}"), verdict)
            }
            _ => ("none".into(), Verdict::Fine),
        },
        34 => match tcp {
            Some(t) => (
                "tcp.finish-connect".into(),
                match v.finish_connect(borrow(t)) {
                    Ok((i, o)) => {
                        new_handles.push((i.rep(), Kind::TcpIn));
                        new_handles.push((o.rep(), Kind::TcpOut));
                        Verdict::Fine
                    }
                    Err(e) => judge::<(), _>(Err(e)),
                },
            ),
            None => ("none".into(), Verdict::Fine),
        },
        35 => match tcp {
            Some(t) => (
                "tcp.accept".into(),
                match v.accept(borrow(t)) {
                    Ok((s, i, o)) => {
                        new_handles.push((s.rep(), Kind::Tcp));
                        new_handles.push((i.rep(), Kind::TcpIn));
                        new_handles.push((o.rep(), Kind::TcpOut));
                        Verdict::Fine
                    }
                    Err(e) => judge::<(), _>(Err(e)),
                },
            ),
            None => ("none".into(), Verdict::Fine),
        },
        36 => match tcp {
            Some(t) => {
                let nanos = huge_or_small(rng).saturating_mul(rng.random_range(0..3));
                let which = rng.random_range(0..8);
                let verdict = match which {
                    0 => judge(v.set_keep_alive_enabled(borrow(t), rng.random_bool(0.5))),
                    1 => judge(v.set_keep_alive_idle_time(borrow(t), nanos)),
                    2 => judge(v.set_keep_alive_interval(borrow(t), nanos)),
                    3 => judge(v.set_keep_alive_count(borrow(t), rng.random())),
                    4 => judge(HostTcpSocket::set_hop_limit(
                        &mut v,
                        borrow(t),
                        rng.random(),
                    )),
                    5 => judge(HostTcpSocket::set_receive_buffer_size(
                        &mut v,
                        borrow(t),
                        len,
                    )),
                    6 => judge(HostTcpSocket::set_send_buffer_size(&mut v, borrow(t), len)),
                    _ => judge(v.set_listen_backlog_size(borrow(t), len)),
                };
                (format!("tcp.set-option({which}, {nanos}, {len})"), verdict)
            }
            None => ("none".into(), Verdict::Fine),
        },
        37 => match tcp {
            Some(t) => {
                let which = rng.random_range(0..10);
                let verdict = match which {
                    0 => judge(HostTcpSocket::local_address(&mut v, borrow(t))),
                    1 => judge(HostTcpSocket::remote_address(&mut v, borrow(t))),
                    2 => judge(v.is_listening(borrow(t)).map_err(GuestError::<()>::Trap)),
                    3 => judge(
                        HostTcpSocket::address_family(&mut v, borrow(t))
                            .map_err(GuestError::<()>::Trap),
                    ),
                    4 => judge(v.keep_alive_enabled(borrow(t))),
                    5 => judge(v.keep_alive_idle_time(borrow(t))),
                    6 => judge(v.keep_alive_count(borrow(t))),
                    7 => judge(HostTcpSocket::hop_limit(&mut v, borrow(t))),
                    8 => judge(HostTcpSocket::receive_buffer_size(&mut v, borrow(t))),
                    _ => judge(HostTcpSocket::send_buffer_size(&mut v, borrow(t))),
                };
                (format!("tcp.get({which})"), verdict)
            }
            None => ("none".into(), Verdict::Fine),
        },
        38 => match tcp {
            Some(t) => {
                let how = match rng.random_range(0..3) {
                    0 => ShutdownType::Receive,
                    1 => ShutdownType::Send,
                    _ => ShutdownType::Both,
                };
                (
                    format!("tcp.shutdown({how:?})"),
                    judge(v.shutdown(borrow(t), how)),
                )
            }
            None => ("none".into(), Verdict::Fine),
        },
        39 => match tcp {
            Some(t) => (
                "tcp.subscribe".into(),
                created(
                    &mut new_handles,
                    Kind::Pollable,
                    HostTcpSocket::subscribe(&mut v, borrow(t)),
                ),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        40 => match network {
            Some(n) => {
                let name = random_name(rng);
                (
                    format!("resolve-addresses({name:?})"),
                    created(
                        &mut new_handles,
                        Kind::Resolve,
                        v.resolve_addresses(borrow(n), name),
                    ),
                )
            }
            None => ("none".into(), Verdict::Fine),
        },
        41 => match resolve {
            Some(r) => (
                "resolve-next-address".into(),
                judge(v.resolve_next_address(borrow(r))),
            ),
            None => ("none".into(), Verdict::Fine),
        },
        42 => match resolve {
            Some(r) => (
                "resolve.subscribe".into(),
                created(
                    &mut new_handles,
                    Kind::Pollable,
                    HostResolveAddressStream::subscribe(&mut v, borrow(r)),
                ),
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
        Kind::Tcp => judge(HostTcpSocket::drop(&mut v, own(rep))),
        Kind::TcpIn => judge(HostInputStream::drop(&mut v, own(rep))),
        Kind::TcpOut => judge(HostOutputStream::drop(&mut v, own(rep))),
        Kind::Resolve => judge(HostResolveAddressStream::drop(&mut v, own(rep))),
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
    /// Traps by the documented message they matched.
    traps_by_message: std::collections::BTreeMap<&'static str, u64>,
    /// Calls that returned (ok or a WIT error) by call name: what the campaign exercised.
    returned_by_call: std::collections::BTreeMap<String, u64>,
}

/// Runs `calls` random calls from `seed`; returns the figures or the first failure.
async fn campaign(seed: u64, calls: u64, dir: &std::path::Path) -> Result<Campaign, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut figures = Campaign {
        calls: 0,
        traps: 0,
        instances: 0,
        traps_by_message: Default::default(),
        returned_by_call: Default::default(),
    };
    while figures.calls < calls {
        figures.instances += 1;
        let mut instance = Instance::new(dir);
        for _ in 0..CALLS_PER_INSTANCE.min(calls - figures.calls) {
            figures.calls += 1;
            let (name, verdict) = if !instance.handles.is_empty() && rng.random_range(0..6) == 0 {
                // Mostly the newest handle (children before their parents, as programs
                // do), sometimes any (a parent with live children traps).
                let index = if rng.random_bool(0.8) {
                    instance.handles.len() - 1
                } else {
                    rng.random_range(0..instance.handles.len())
                };
                drop_handle(&mut instance, index)
            } else {
                match tokio::time::timeout(Duration::from_secs(10), step(&mut instance, &mut rng))
                    .await
                {
                    Ok(done) => done,
                    Err(_) => {
                        return Err(format!(
                            "seed {seed}: a call ({}) hung (> 10 s) after {:?}",
                            instance.running,
                            instance.log.iter().rev().take(20).collect::<Vec<_>>()
                        ));
                    }
                }
            };
            instance.log.push(match &verdict {
                Verdict::Fine => name.clone(),
                Verdict::Trap(message) => format!("{name}: trap {message}"),
            });
            if matches!(verdict, Verdict::Fine) && name != "none" {
                let call = name.split(['(', ' ']).next().unwrap_or_default();
                *figures
                    .returned_by_call
                    .entry(call.to_string())
                    .or_default() += 1;
                if name.contains("TcpIn") {
                    *figures
                        .returned_by_call
                        .entry("(tcp streams made)".into())
                        .or_default() += 1;
                }
            }
            if let Verdict::Trap(message) = verdict {
                let Some(known) = DOCUMENTED_TRAPS
                    .iter()
                    .find(|known| message.contains(*known))
                else {
                    return Err(format!(
                        "seed {seed}: `{name}` trapped with an undocumented message `{message}`; last calls: {:?}",
                        instance.log.iter().rev().take(20).collect::<Vec<_>>()
                    ));
                };
                figures.traps += 1;
                *figures.traps_by_message.entry(known).or_default() += 1;
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

/// Runs `campaign` (given a scratch directory) in a task on a 2-worker runtime and returns
/// its figures. Panics with the campaign's failure, or if the host panicked (a panic inside
/// a call surfaces as a failed task), or if descriptors are not back at the baseline after.
fn run_checked<T, F>(seed: u64, campaign: impl FnOnce(std::path::PathBuf) -> F) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("a scratch directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let baseline = common::open_fds();
    let campaign = campaign(dir.path().to_path_buf());
    let outcome = runtime.block_on(async { tokio::spawn(campaign).await });
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
    figures
}

#[test]
fn host_call_fuzzer() {
    let seed = env_number("WEIR_FUZZ_SEED", 0x5eed);
    let calls = env_number("WEIR_FUZZ_CALLS", 100_000);
    start_tcp_peer();
    let figures = run_checked(
        seed,
        move |dir| async move { campaign(seed, calls, &dir).await },
    );
    println!(
        "host-call fuzzer: seed {seed}, {} calls, {} instances, {} documented traps, 0 panics, 0 hangs, 0 leaks",
        figures.calls, figures.instances, figures.traps
    );
    println!("traps by message: {:?}", figures.traps_by_message);
    println!(
        "calls that returned, by call: {:?}",
        figures.returned_by_call
    );
    assert_eq!(figures.calls, calls);
}

/// Every `wasi_snapshot_preview1` function with its parameter types (`i` = i32, `I` = i64);
/// all return an errno except `proc_exit`.
const P1_FUNCTIONS: &[(&str, &str)] = &[
    ("args_get", "ii"),
    ("args_sizes_get", "ii"),
    ("environ_get", "ii"),
    ("environ_sizes_get", "ii"),
    ("clock_res_get", "ii"),
    ("clock_time_get", "iIi"),
    ("fd_advise", "iIIi"),
    ("fd_allocate", "iII"),
    ("fd_close", "i"),
    ("fd_datasync", "i"),
    ("fd_fdstat_get", "ii"),
    ("fd_fdstat_set_flags", "ii"),
    ("fd_fdstat_set_rights", "iII"),
    ("fd_filestat_get", "ii"),
    ("fd_filestat_set_size", "iI"),
    ("fd_filestat_set_times", "iIIi"),
    ("fd_pread", "iiiIi"),
    ("fd_prestat_get", "ii"),
    ("fd_prestat_dir_name", "iii"),
    ("fd_pwrite", "iiiIi"),
    ("fd_read", "iiii"),
    ("fd_readdir", "iiiIi"),
    ("fd_renumber", "ii"),
    ("fd_seek", "iIii"),
    ("fd_sync", "i"),
    ("fd_tell", "ii"),
    ("fd_write", "iiii"),
    ("path_create_directory", "iii"),
    ("path_filestat_get", "iiiii"),
    ("path_filestat_set_times", "iiiiIIi"),
    ("path_link", "iiiiiii"),
    ("path_open", "iiiiiIIii"),
    ("path_readlink", "iiiiii"),
    ("path_remove_directory", "iii"),
    ("path_rename", "iiiiii"),
    ("path_symlink", "iiiii"),
    ("path_unlink_file", "iii"),
    ("poll_oneoff", "iiii"),
    ("proc_exit", "i"),
    ("proc_raise", "i"),
    ("sched_yield", ""),
    ("random_get", "ii"),
    ("sock_accept", "iii"),
    ("sock_recv", "iiiiii"),
    ("sock_send", "iiiii"),
    ("sock_shutdown", "ii"),
];

/// Where the generated module keeps its prepared data (one 64 KiB page in all).
const P1_PATHS: u32 = 0x1000; // 16 paths of up to 200 bytes, 256 apart
const P1_IOVECS: u32 = 0x2000; // two iovecs: (0x3000, 100), (0x3100, 3000)
const P1_SUBSCRIPTIONS: u32 = 0x4000; // a 1 ms clock, fd_read on 0, fd_write on 1
const P1_SCRATCH: u32 = 0x5000;

/// Trap messages of preview1 calls the host documents; anything else fails the campaign.
const P1_DOCUMENTED_TRAPS: &[&str] = &["exceeds limit"];

fn p1_pointer(rng: &mut StdRng) -> u32 {
    match rng.random_range(0..12) {
        0 => 0,
        1 => 0xffff_ffff,
        2 => 65536 - rng.random_range(0..16),
        3 => rng.random_range(0..65536),
        4 | 5 => P1_IOVECS,
        _ => P1_SCRATCH + rng.random_range(0..64) * 8,
    }
}

fn p1_length(rng: &mut StdRng) -> u32 {
    match rng.random_range(0..10) {
        0 => 0xffff_ffff,
        1 => 65536,
        2 => rng.random_range(0..70_000),
        _ => rng.random_range(0..64),
    }
}

fn p1_fd(rng: &mut StdRng) -> u32 {
    match rng.random_range(0..10) {
        0 => rng.random(),
        1 => 0xffff_ffff,
        _ => rng.random_range(0..8),
    }
}

/// The arguments of one call of `name`, as WAT constants.
fn p1_arguments(rng: &mut StdRng, name: &str, types: &str) -> Vec<String> {
    let mut args = Vec::new();
    for (position, kind) in types.chars().enumerate() {
        let value: u64 = if kind == 'I' {
            match rng.random_range(0..6) {
                0 => u64::MAX,
                1 => 1 << 63,
                2 => rng.random(),
                _ => rng.random_range(0..5000),
            }
        } else {
            let path_call = name.starts_with("path_");
            u64::from(match (name, position) {
                // A path: (ptr, len) of a prepared path, or random.
                (_, 2) | (_, 5) if path_call && rng.random_bool(0.8) => {
                    P1_PATHS + rng.random_range(0..16) * 256
                }
                ("poll_oneoff", 0) => {
                    if rng.random_bool(0.9) {
                        P1_SUBSCRIPTIONS
                    } else {
                        0xffff_fff0
                    }
                }
                ("poll_oneoff", 2) => rng.random_range(0..4),
                ("fd_read" | "fd_write" | "fd_pread" | "fd_pwrite", 1) => p1_pointer(rng),
                ("fd_read" | "fd_write" | "fd_pread" | "fd_pwrite", 2) => rng.random_range(0..4),
                ("proc_exit", _) => rng.random_range(0..3),
                // Over the 1 MiB limit traps (documented); rarely asked for.
                ("random_get", 1) if rng.random_bool(0.95) => rng.random_range(0..70_000),
                (_, 0) => p1_fd(rng),
                ("path_link" | "path_rename", 3) | ("path_rename", 2) => p1_fd(rng),
                _ => {
                    if rng.random_bool(0.5) {
                        p1_pointer(rng)
                    } else {
                        p1_length(rng)
                    }
                }
            })
        };
        args.push(if kind == 'I' {
            format!("(i64.const {})", value as i64)
        } else {
            format!("(i32.const {})", value as u32 as i32)
        });
    }
    args
}

/// A WAT string literal of `bytes`.
fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A preview1 command module whose `_start` makes `calls` random calls (errnos dropped).
fn p1_module(rng: &mut StdRng, calls: usize) -> (String, Vec<String>) {
    let mut wat = String::from("(module\n");
    for (name, types) in P1_FUNCTIONS {
        let params: String = types
            .chars()
            .map(|c| if c == 'I' { " i64" } else { " i32" })
            .collect();
        let result = if *name == "proc_exit" {
            ""
        } else {
            " (result i32)"
        };
        wat.push_str(&format!(
            "  (import \"wasi_snapshot_preview1\" \"{name}\" (func ${name} (param{params}){result}))\n"
        ));
    }
    wat.push_str("  (memory (export \"memory\") 1)\n");
    // Counts the calls made, read back after the run.
    wat.push_str("  (global $made (export \"made\") (mut i32) (i32.const 0))\n");
    // Paths at P1_PATHS + 256k (the call's length argument is random, so a path is read
    // with too short, exact or too long lengths).
    for k in 0..16 {
        let path = random_path(rng);
        let path = &path.as_bytes()[..path.len().min(200)];
        wat.push_str(&format!(
            "  (data (i32.const {}) \"{}\")\n",
            P1_PATHS + k * 256,
            wat_bytes(path)
        ));
    }
    let mut iovecs = Vec::new();
    for (ptr, len) in [(0x3000u32, 100u32), (0x3100, 3000)] {
        iovecs.extend(ptr.to_le_bytes());
        iovecs.extend(len.to_le_bytes());
    }
    wat.push_str(&format!(
        "  (data (i32.const {P1_IOVECS}) \"{}\")\n",
        wat_bytes(&iovecs)
    ));
    // Subscriptions (48 bytes each): userdata u64, tag u8 at 8, then the union at 16.
    let mut subscriptions = vec![0u8; 48 * 3];
    subscriptions[8] = 0; // clock
    subscriptions[16..20].copy_from_slice(&1u32.to_le_bytes()); // monotonic
    subscriptions[24..32].copy_from_slice(&1_000_000u64.to_le_bytes()); // 1 ms
    subscriptions[48 + 8] = 1; // fd_read
    subscriptions[48 + 16..48 + 20].copy_from_slice(&0u32.to_le_bytes());
    subscriptions[96 + 8] = 2; // fd_write
    subscriptions[96 + 16..96 + 20].copy_from_slice(&1u32.to_le_bytes());
    wat.push_str(&format!(
        "  (data $subscriptions \"{}\")\n",
        wat_bytes(&subscriptions)
    ));
    wat.push_str("  (func (export \"_start\")\n");
    let mut log = Vec::new();
    for _ in 0..calls {
        // proc_exit ends the run: rare.
        let (name, types) = loop {
            let f = P1_FUNCTIONS[rng.random_range(0..P1_FUNCTIONS.len())];
            if f.0 != "proc_exit" || rng.random_range(0..100) == 0 {
                break f;
            }
        };
        let args = p1_arguments(rng, name, types).join(" ");
        log.push(format!("{name} {args}"));
        wat.push_str("    (global.set $made (i32.add (global.get $made) (i32.const 1)))\n");
        if name == "poll_oneoff" {
            // Other calls may have written over the subscriptions (random pointers): put
            // them back, so that a poll never waits on a timeout the fuzzer wrote by chance.
            wat.push_str(&format!(
                "    (memory.init $subscriptions (i32.const {P1_SUBSCRIPTIONS}) (i32.const 0) (i32.const 144))\n"
            ));
        }
        if name == "proc_exit" {
            wat.push_str(&format!("    (call ${name} {args})\n"));
        } else {
            wat.push_str(&format!("    (drop (call ${name} {args}))\n"));
        }
    }
    wat.push_str("  )\n)\n");
    (wat, log)
}

/// Runs preview1 modules of random calls until `calls` calls were made; returns the
/// figures (calls generated, calls made, instances, exits, traps) or the first failure. A
/// module that exits or traps makes fewer calls than it holds.
async fn p1_campaign(
    seed: u64,
    calls: u64,
    dir: &std::path::Path,
) -> Result<(u64, u64, u64, u64, u64), String> {
    const CALLS_PER_MODULE: u64 = 500;
    let mut rng = StdRng::seed_from_u64(seed);
    let engine = {
        let mut config = wasmtime::Config::new();
        // Small modules, compiled once each: the fastest compiler settings will do.
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        wasmtime::Engine::new(&config).map_err(|e| format!("{e:#}"))?
    };
    let mut linker = wasmtime::Linker::new(&engine);
    weir::p1::add_to_linker_async(&mut linker).map_err(|e| format!("{e:#}"))?;
    let (mut generated, mut made, mut instances, mut exits, mut traps) = (0, 0, 0, 0, 0);
    while made < calls {
        let count = CALLS_PER_MODULE;
        generated += count;
        instances += 1;
        let (wat, log) = p1_module(&mut rng, count as usize);
        let module = wasmtime::Module::new(&engine, &wat)
            .map_err(|e| format!("seed {seed}: the generated module does not compile: {e:#}"))?;
        let instance = Instance::new(dir);
        let mut store =
            wasmtime::Store::new(&engine, common::Host::new(instance.ctx, instance.table));
        let instance = linker
            .instantiate_async(&mut store, &module)
            .await
            .map_err(|e| format!("seed {seed}: instantiating: {e:#}"))?;
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .map_err(|e| format!("{e:#}"))?;
        let run = async {
            match start.call_async(&mut store, ()).await {
                Ok(()) => Ok(weir::command::Outcome::Success),
                Err(error) => match error.downcast_ref::<weir::cli::I32Exit>() {
                    Some(exit) => Ok(weir::command::Outcome::Exit(exit.0)),
                    None => Err(error),
                },
            }
        };
        let result = tokio::time::timeout(Duration::from_secs(10), run).await;
        let mut made_here = 0;
        if let Some(wasmtime::Extern::Global(counter)) = instance.get_export(&mut store, "made") {
            made_here = counter.get(&mut store).unwrap_i32() as u32 as usize;
            made += made_here as u64;
        }
        match result {
            Err(_) => {
                return Err(format!(
                    "seed {seed}: preview1 module {instances} hung (> 10 s) in call {made_here}, `{}`; the calls before: {:?}",
                    log.get(made_here.wrapping_sub(1))
                        .map_or("?", String::as_str),
                    &log[..made_here.saturating_sub(1).min(log.len())]
                ));
            }
            Ok(Ok(weir::command::Outcome::Exit(_))) => exits += 1,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                let message = format!("{error:#}");
                if !P1_DOCUMENTED_TRAPS
                    .iter()
                    .any(|known| message.contains(known))
                {
                    return Err(format!(
                        "seed {seed}: preview1 module {instances} trapped with an undocumented message `{message}`; calls: {log:?}"
                    ));
                }
                traps += 1;
            }
        }
    }
    Ok((generated, made, instances, exits, traps))
}

#[test]
fn preview1_call_fuzzer() {
    let seed = env_number("WEIR_FUZZ_SEED", 0x5eed);
    let calls = env_number("WEIR_FUZZ_P1_CALLS", 100_000);
    let (generated, made, instances, exits, traps) = run_checked(seed, move |dir| async move {
        p1_campaign(seed, calls, &dir).await
    });
    println!(
        "preview1 fuzzer: seed {seed}, {made} calls made ({generated} generated) in {instances} modules, {exits} proc_exit, {traps} documented traps, 0 panics, 0 hangs, 0 leaks"
    );
    assert!(made >= calls);
}
