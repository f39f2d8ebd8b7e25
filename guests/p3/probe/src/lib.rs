//! A WASI 0.3 command for the tests: `p3_probe ACTION [ARG]`.
//!
//! - `env`: prints its arguments, environment and initial cwd.
//! - `exit N`: `exit-with-code(N)`; `exit-ok`: `exit(ok)`; `fail`: `run` returns `err`.
//! - `cat`: copies stdin to stdout through `read-via-stream`/`write-via-stream`, 64 KiB
//!   reads, then prints both futures' results to stderr.
//! - `stdin-drop`: reads up to 16 bytes of stdin, drops the stream with the rest unread and
//!   prints the future's result.
//! - `random N`: prints the lengths `get-random-bytes(N)` and `get-insecure-random-bytes(N)`
//!   returned.
//! - `sleep MS`: `wait-for(MS)`, then prints how long it took.
//! - `cancel-sleep`: races `wait-for(10 s)` against `wait-for(20 ms)`, drops (cancels) the
//!   long one, prints how long it took.
//! - `drop-halfway`: writes to a stdout stream, then drops the writer and the result future
//!   without waiting for either, and returns.
//! - `udp`: a UDP script over loopback (bind, send/receive both ways, connect, implicit
//!   bind, 64 concurrent sends, each typical error of the WIT), one line per step.
//! - `lookup NAME`: `resolve-addresses(NAME)`.
//! - `tcp`: a TCP script over loopback (bind, listen, accept, connect, send/receive both
//!   ways, implicit bind, each state error and typical error of the WIT), one line per step.
//! - `tcp-echo-client PORT N`: connects to 127.0.0.1:PORT, sends N bytes (closing the
//!   stream), reads the echo until the peer's FIN, and reports whether it came back intact.
//! - `tcp-loop N`: listens, connects to itself and echoes N bytes through the accepted
//!   connection, all three streams at once.
//! - `fs`: a filesystem script over the preopens `/data` and `/ro` (streams, directory
//!   listing, stat, rename, link, unlink, symlinks, the sandbox, read-only descriptors and
//!   preopens), one line per step.
//! - `fs-copy SRC DST`: copies `/data/SRC` to `/data/DST` through a read and a write stream.
//! - `tcp-limits`: with the instance's TCP socket limit at 3, `create` past it fails and
//!   `listen`'s stream waits to accept until a socket is dropped.
//! - `tcp-cancel-connect`: fills a listener's accept queue, cancels the connect that stays
//!   pending, and tries the socket again.
//! - `tcp-reset PORT`: connects, sends, and reports how the receive stream and later
//!   writes end when the server drops the connection unread (a reset).
//! - `tcp-drop-halfway PORT N`: writes N bytes into the send stream, then drops the writer,
//!   the future and the socket without waiting.
//! - `udp-flood N PORT`: sends N datagrams of 64 B to 127.0.0.1:PORT, 64 `send`s in flight
//!   at a time, and prints how long it took (the UDP send benchmark's guest).
//! - Benchmark guests, each printing how long its transfer took: `stdout-bench N` (N bytes
//!   to stdout, 1 MiB writes; to stderr), `tcp-send PORT N`, `tcp-receive PORT` (until
//!   the peer closes), `udp-receive PORT MS` (datagrams counted for MS ms).
//! - `flood N`: writes N bytes (the flood pattern, `i % 251`) to stdout, then prints the
//!   future's result to stderr.

use std::future::Future;
use std::task::Poll;

use wasip3::cli::{environment, exit, stderr, stdin, stdout};
use wasip3::clocks::monotonic_clock;
use wasip3::filesystem::types::Descriptor;
use wasip3::random::{insecure, random};
use wasip3::wit_stream;
use wasip3::wit_bindgen::StreamResult;

use wasip3::sockets::types::{
    IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, TcpSocket, UdpSocket,
};

struct Probe;

fn v4(address: (u8, u8, u8, u8), port: u16) -> IpSocketAddress {
    IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address })
}

fn port_of(address: &IpSocketAddress) -> u16 {
    match address {
        IpSocketAddress::Ipv4(a) => a.port,
        IpSocketAddress::Ipv6(a) => a.port,
    }
}

/// Runs the UDP steps, returning one line per step (what the host answered).
async fn udp_script() -> String {
    let mut log = String::new();
    let mut step = |name: &str, outcome: String| log += &format!("{name}: {outcome}\n");
    let loopback = (127, 0, 0, 1);
    let a = UdpSocket::create(IpAddressFamily::Ipv4).expect("create a");
    let b = UdpSocket::create(IpAddressFamily::Ipv4).expect("create b");
    step("local before bind", format!("{:?}", a.get_local_address().map(|_| ())));
    step("receive before bind", format!("{:?}", a.receive().await.map(|_| ())));
    step("bind a", format!("{:?}", a.bind(v4(loopback, 0))));
    step("bind a again", format!("{:?}", a.bind(v4(loopback, 0))));
    let v6 = IpSocketAddress::Ipv6(Ipv6SocketAddress { port: 0, flow_info: 0, address: (0, 0, 0, 0, 0, 0, 0, 1), scope_id: 0 });
    step("bind b to ipv6", format!("{:?}", b.bind(v6)));
    step("bind b", format!("{:?}", b.bind(v4(loopback, 0))));
    let (Ok(a_addr), Ok(b_addr)) = (a.get_local_address(), b.get_local_address()) else {
        // Denied by the policy: an implicit bind is a bind too.
        let c = UdpSocket::create(IpAddressFamily::Ipv4).expect("create c");
        let to = v4(loopback, 9);
        step("send unbound", format!("{:?}", c.send(b"x".to_vec(), Some(to)).await));
        step("connect unbound", format!("{:?}", c.connect(to)));
        return log;
    };
    step("a port is set", format!("{}", port_of(&a_addr) != 0));

    step("send a->b", format!("{:?}", a.send(b"hello".to_vec(), Some(b_addr)).await));
    match b.receive().await {
        Ok((data, from)) => step("b received", format!("{:?} from a: {}", String::from_utf8_lossy(&data), port_of(&from) == port_of(&a_addr))),
        Err(e) => step("b received", format!("{e:?}")),
    }
    step("remote before connect", format!("{:?}", b.get_remote_address().map(|_| ())));
    step("disconnect before connect", format!("{:?}", b.disconnect()));
    step("send without address", format!("{:?}", b.send(b"x".to_vec(), None).await));
    step("send to port 0", format!("{:?}", b.send(b"x".to_vec(), Some(v4(loopback, 0))).await));
    step("send to 0.0.0.0", format!("{:?}", b.send(b"x".to_vec(), Some(v4((0, 0, 0, 0), 9))).await));
    step("send 70000 bytes", format!("{:?}", b.send(vec![0; 70_000], Some(a_addr)).await));
    step("connect b to a", format!("{:?}", b.connect(a_addr)));
    step("remote is a", format!("{}", b.get_remote_address().map(|r| port_of(&r) == port_of(&a_addr)).unwrap_or(false)));
    step("send connected", format!("{:?}", b.send(b"reply".to_vec(), None).await));
    step("send connected elsewhere", format!("{:?}", b.send(b"x".to_vec(), Some(v4(loopback, 9))).await));
    match a.receive().await {
        Ok((data, from)) => step("a received", format!("{:?} from b: {}", String::from_utf8_lossy(&data), port_of(&from) == port_of(&b_addr))),
        Err(e) => step("a received", format!("{e:?}")),
    }
    step("disconnect", format!("{:?}", b.disconnect()));

    // Implicit bind by `send`.
    let c = UdpSocket::create(IpAddressFamily::Ipv4).expect("create c");
    step("send unbound", format!("{:?}", c.send(b"implicit".to_vec(), Some(a_addr)).await));
    step("c bound by send", format!("{}", c.get_local_address().map(|l| port_of(&l) != 0).unwrap_or(false)));
    match a.receive().await {
        Ok((data, _)) => step("a received", format!("{:?}", String::from_utf8_lossy(&data))),
        Err(e) => step("a received", format!("{e:?}")),
    }

    // 64 sends in flight at once from one socket; all arrive, in some order.
    let sends: Vec<_> = (0..64u8).map(|i| Box::pin(c.send(vec![i; 64], Some(a_addr)))).collect();
    let results = join_all(sends).await;
    step("64 concurrent sends ok", format!("{}", results.iter().all(|r| r.is_ok())));
    let mut seen = [false; 64];
    for _ in 0..64 {
        if let Ok((data, _)) = a.receive().await {
            if data.len() == 64 {
                seen[data[0] as usize % 64] = true;
            }
        }
    }
    step("64 received", format!("{}", seen.iter().all(|s| *s)));
    log
}

/// A socket's result without its value, for one line of a script.
fn unit<T, E: std::fmt::Debug>(result: Result<T, E>) -> String {
    format!("{:?}", result.map(|_| ()))
}

/// Reads a whole `stream<u8>`, then its future's result.
async fn receive_all(socket: &TcpSocket) -> (Vec<u8>, String) {
    let (mut stream, done) = socket.receive();
    let mut received = Vec::new();
    loop {
        let (status, chunk) = stream.read(Vec::with_capacity(64 * 1024)).await;
        received.extend_from_slice(&chunk);
        match status {
            StreamResult::Complete(_) => {}
            StreamResult::Dropped | StreamResult::Cancelled => break,
        }
    }
    drop(stream);
    (received, format!("{:?}", done.await))
}

/// Sends `bytes` and closes the stream (the FIN); returns the future's result and how many
/// bytes the stream did not take.
async fn send_all(socket: &TcpSocket, bytes: Vec<u8>) -> (usize, String) {
    let (mut writer, reader) = wit_stream::new();
    let done = socket.send(reader);
    let unwritten = writer.write_all(bytes).await;
    drop(writer);
    (unwritten.len(), format!("{:?}", done.await))
}

/// Accepts one connection from a `listen` stream.
async fn accept(connections: &mut wasip3::wit_bindgen::StreamReader<TcpSocket>) -> Option<TcpSocket> {
    let (_, mut accepted) = connections.read(Vec::with_capacity(1)).await;
    accepted.pop()
}

/// Runs the TCP steps, returning one line per step (what the host answered).
async fn tcp_script() -> String {
    let mut log = String::new();
    let mut step = |name: &str, outcome: String| log += &format!("{name}: {outcome}\n");
    let loopback = (127, 0, 0, 1);
    let server = match TcpSocket::create(IpAddressFamily::Ipv4) {
        Ok(socket) => socket,
        Err(e) => {
            step("create", format!("{e:?}"));
            return log;
        }
    };
    step("local before bind", unit(server.get_local_address()));
    step("remote before connect", unit(server.get_remote_address()));
    step("listening before listen", format!("{}", server.get_is_listening()));
    step("send before connect", send_all(&server, b"x".to_vec()).await.1);
    step("receive before connect", receive_all(&server).await.1);
    let v6 = IpSocketAddress::Ipv6(Ipv6SocketAddress { port: 0, flow_info: 0, address: (0, 0, 0, 0, 0, 0, 0, 1), scope_id: 0 });
    step("bind to ipv6", unit(server.bind(v6)));
    step("bind to multicast", unit(server.bind(v4((224, 0, 0, 1), 0))));
    step("backlog 0", unit(server.set_listen_backlog_size(0)));
    step("keep-alive count 0", unit(server.set_keep_alive_count(0)));
    step("keep-alive idle 0", unit(server.set_keep_alive_idle_time(0)));
    step("hop limit 0", unit(server.set_hop_limit(0)));
    step("keep-alive on", unit(server.set_keep_alive_enabled(true)));
    step("keep-alive is on", format!("{:?}", server.get_keep_alive_enabled()));
    step("bind", unit(server.bind(v4(loopback, 0))));
    step("bind again", unit(server.bind(v4(loopback, 0))));
    step("backlog 16", unit(server.set_listen_backlog_size(16)));
    let mut connections = match server.listen() {
        Ok(connections) => connections,
        Err(e) => {
            step("listen", format!("{e:?}"));
            return log;
        }
    };
    step("listening", format!("{}", server.get_is_listening()));
    step("listen again", unit(server.listen()));
    let Ok(address) = server.get_local_address() else {
        step("local after listen", "none".into());
        return log;
    };
    step("connect a listener", unit(server.connect(address).await));
    step("backlog while listening", unit(server.set_listen_backlog_size(32)));

    let client = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
    step("connect to port 0", unit(client.connect(v4(loopback, 0)).await));
    step("connect to 0.0.0.0", unit(client.connect(v4((0, 0, 0, 0), port_of(&address))).await));
    let v6_remote = IpSocketAddress::Ipv6(Ipv6SocketAddress { port: 80, flow_info: 0, address: (0, 0, 0, 0, 0, 0, 0, 1), scope_id: 0 });
    step("connect to ipv6", unit(client.connect(v6_remote).await));
    step("connect", unit(client.connect(address).await));
    step("connect again", unit(client.connect(address).await));
    step("bind connected", unit(client.bind(v4(loopback, 0))));
    step("listen connected", unit(client.listen()));
    step("backlog connected", unit(client.set_listen_backlog_size(8)));
    let Some(accepted) = accept(&mut connections).await else {
        step("accept", "none".into());
        return log;
    };
    let (client_local, accepted_remote) = (client.get_local_address(), accepted.get_remote_address());
    step("accepted the client", format!("{}", matches!((&client_local, &accepted_remote), (Ok(l), Ok(r)) if port_of(l) == port_of(r))));
    step("client remote is server", format!("{}", client.get_remote_address().map(|r| port_of(&r) == port_of(&address)).unwrap_or(false)));
    step("accepted keep-alive inherited", format!("{:?}", accepted.get_keep_alive_enabled()));

    let (unsent, sent) = send_all(&client, b"ping".to_vec()).await;
    step("client send", format!("{sent}, {unsent} unsent"));
    step("client send again", send_all(&client, b"x".to_vec()).await.1);
    let (received, done) = receive_all(&accepted).await;
    step("server received", format!("{:?}, {done}", String::from_utf8_lossy(&received)));
    step("server receive again", receive_all(&accepted).await.1);
    let (unsent, sent) = send_all(&accepted, b"pong".to_vec()).await;
    step("server send", format!("{sent}, {unsent} unsent"));
    let (received, done) = receive_all(&client).await;
    step("client received", format!("{:?}, {done}", String::from_utf8_lossy(&received)));

    // A port with a bound socket that does not listen refuses connections.
    let closed = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
    let _ = closed.bind(v4(loopback, 0));
    let refused = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
    match closed.get_local_address() {
        Ok(to) => step("connect refused", unit(refused.connect(to).await)),
        Err(e) => step("connect refused", format!("{e:?}")),
    }
    step("connect after failure", unit(refused.connect(address).await));
    step("local after failure", unit(refused.get_local_address()));

    let implicit = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
    step("listen unbound", unit(implicit.listen()));
    step("bound by listen", format!("{}", implicit.get_local_address().map(|l| port_of(&l) != 0).unwrap_or(false)));
    log
}

/// A deterministic byte pattern for bulk transfers.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Connects to 127.0.0.1:PORT, sends N pattern bytes, closes, and reads the echo.
async fn tcp_echo_client(port: u16, n: usize) -> String {
    let socket = match TcpSocket::create(IpAddressFamily::Ipv4) {
        Ok(socket) => socket,
        Err(e) => return format!("create: {e:?}\n"),
    };
    if let Err(e) = socket.connect(v4((127, 0, 0, 1), port)).await {
        return format!("connect: {e:?}\n");
    }
    let bytes = pattern(n, 0);
    let mut both = join_all(vec![
        Box::pin(async { let (unsent, sent) = send_all(&socket, bytes.clone()).await; (Vec::new(), format!("{sent}, {unsent} unsent")) })
            as std::pin::Pin<Box<dyn Future<Output = (Vec<u8>, String)>>>,
        Box::pin(receive_all(&socket)),
    ])
    .await;
    let (received, receive_done) = both.pop().expect("two");
    let (_, send_done) = both.pop().expect("two");
    format!("send {send_done}; received {} intact {}; receive {receive_done}\n", received.len(), received == bytes)
}

/// Listens on loopback, connects to itself and echoes N bytes through the accepted
/// connection: both directions of one guest's TCP at once.
async fn tcp_loop(n: usize) -> String {
    let (_server, mut connections, address) = match loopback_listener(128) {
        Ok(listener) => listener,
        Err(e) => return format!("listen: {e:?}\n"),
    };
    let client = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
    if let Err(e) = client.connect(address).await {
        return format!("connect: {e:?}\n");
    }
    let accepted = accept(&mut connections).await.expect("accepted");
    let bytes = pattern(n, 7);
    let echo = async {
        // Forward what arrives as it arrives, so neither side's buffers fill up.
        let (mut input, input_done) = accepted.receive();
        let (mut writer, reader) = wit_stream::new();
        let output_done = accepted.send(reader);
        let moved = pump(&mut input, &mut writer).await;
        drop(input);
        drop(writer);
        (Vec::new(), format!("echoed {moved}: {:?} {:?}", input_done.await, output_done.await))
    };
    let mut all = join_all(vec![
        Box::pin(async { let (unsent, sent) = send_all(&client, bytes.clone()).await; (Vec::new(), format!("{sent}, {unsent} unsent")) })
            as std::pin::Pin<Box<dyn Future<Output = (Vec<u8>, String)>>>,
        Box::pin(echo),
        Box::pin(receive_all(&client)),
    ])
    .await;
    let (received, receive_done) = all.pop().expect("three");
    let (_, echo_done) = all.pop().expect("three");
    let (_, send_done) = all.pop().expect("three");
    format!("send {send_done}; {echo_done}; received {} intact {}; receive {receive_done}\n", received.len(), received == bytes)
}

/// Whether `future` finishes within `ms` milliseconds; if not, it is dropped (cancelled).
async fn within<F: Future>(ms: u64, future: F) -> Option<F::Output> {
    let mut future = Box::pin(future);
    let mut timer = Box::pin(monotonic_clock::wait_for(ms * 1_000_000));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(value) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// A socket listening on 127.0.0.1 (any port) with `backlog`, its stream of connections
/// and its address.
fn loopback_listener(
    backlog: u64,
) -> Result<(TcpSocket, wasip3::wit_bindgen::StreamReader<TcpSocket>, IpSocketAddress), wasip3::sockets::types::ErrorCode> {
    let server = TcpSocket::create(IpAddressFamily::Ipv4)?;
    server.set_listen_backlog_size(backlog)?;
    server.bind(v4((127, 0, 0, 1), 0))?;
    let connections = server.listen()?;
    let address = server.get_local_address()?;
    Ok((server, connections, address))
}

/// The instance's socket limit (the test sets it to 3) with TCP: `create` past it fails,
/// and `listen` waits to accept until a socket is dropped.
async fn tcp_limits() -> String {
    let mut log = String::new();
    let mut step = |name: &str, outcome: String| log += &format!("{name}: {outcome}\n");
    let (_server, mut connections, address) = match loopback_listener(1) {
        Ok(listener) => listener,
        Err(e) => {
            step("listen", format!("{e:?}"));
            return log;
        }
    };
    let first = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
    let second = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
    step("a fourth socket", unit(TcpSocket::create(IpAddressFamily::Ipv4)));
    step("first connect", unit(first.connect(address).await));
    step("second connect", unit(second.connect(address).await));
    // Three sockets are open: the accepted one would be a fourth.
    step("accept at the limit waits", format!("{}", within(200, accept(&mut connections)).await.is_none()));
    drop(second);
    let accepted = within(5_000, accept(&mut connections)).await.flatten();
    step("accept after a drop", format!("{}", accepted.is_some()));
    step("another socket at the limit", unit(TcpSocket::create(IpAddressFamily::Ipv4)));
    log
}

/// A connect that cannot finish (the listener's accept queue is full), cancelled.
async fn tcp_cancel_connect() -> String {
    let mut log = String::new();
    let mut step = |name: &str, outcome: String| log += &format!("{name}: {outcome}\n");
    let (_server, _connections, address) = match loopback_listener(1) {
        Ok(listener) => listener,
        Err(e) => {
            step("listen", format!("{e:?}"));
            return log;
        }
    };
    // Fill the accept queue (nothing accepts), then one more connect stays pending.
    let mut queued = Vec::new();
    let mut pending = None;
    for _ in 0..8 {
        let client = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
        match within(300, client.connect(address)).await {
            Some(_) => queued.push(client),
            None => {
                pending = Some(client);
                break;
            }
        }
    }
    step("a connect stayed pending and was cancelled", format!("{}", pending.is_some()));
    if let Some(client) = pending {
        step("connect on the cancelled socket", unit(within(1_000, client.connect(address)).await.unwrap_or(Ok(()))));
        drop(client);
    }
    drop(queued);
    // Every dropped socket gave its slot back (the test's limit is 16; the listener holds one).
    let again: Vec<_> = (0..15).map(|_| TcpSocket::create(IpAddressFamily::Ipv4)).collect();
    step("15 sockets again", format!("{}", again.iter().all(|s| s.is_ok())));
    log
}

/// Connects to 127.0.0.1:PORT (a server that drops the connection unread), sends a byte
/// and reports how the receive stream ends.
async fn tcp_reset(port: u16) -> String {
    let socket = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
    if let Err(e) = socket.connect(v4((127, 0, 0, 1), port)).await {
        return format!("connect: {e:?}\n");
    }
    let (mut writer, reader) = wit_stream::new();
    let sent = socket.send(reader);
    let _ = writer.write_all(b"unread".to_vec()).await;
    let (received, done) = receive_all(&socket).await;
    // The stream stays open on our side; a later write meets the reset.
    let mut failed_later = false;
    for _ in 0..50 {
        if !writer.write_all(vec![0; 65536]).await.is_empty() {
            failed_later = true;
            break;
        }
    }
    drop(writer);
    format!("received {}; receive {done}; later writes fail {failed_later}; send {:?}\n", received.len(), sent.await)
}

/// Connects to 127.0.0.1:PORT, writes N bytes into the send stream, then drops the writer
/// and the future without waiting for either, and returns.
async fn tcp_drop_halfway(port: u16, n: usize) -> String {
    let socket = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
    if let Err(e) = socket.connect(v4((127, 0, 0, 1), port)).await {
        return format!("connect: {e:?}\n");
    }
    let (mut writer, reader) = wit_stream::new();
    let done = socket.send(reader);
    let unwritten = writer.write_all(pattern(n, 3)).await;
    drop(done);
    drop(writer);
    drop(socket);
    format!("{} bytes not taken\n", unwritten.len())
}

/// Reads a whole `stream<T>`, then its future's result.
async fn drain<T: 'static>(
    mut stream: wasip3::wit_bindgen::StreamReader<T>,
    done: wasip3::wit_bindgen::FutureReader<Result<(), wasip3::filesystem::types::ErrorCode>>,
) -> (Vec<T>, Result<(), wasip3::filesystem::types::ErrorCode>) {
    let mut items = Vec::new();
    loop {
        let (status, chunk) = stream.read(Vec::with_capacity(64 * 1024)).await;
        items.extend(chunk);
        if !matches!(status, StreamResult::Complete(_)) {
            break;
        }
    }
    drop(stream);
    (items, done.await)
}

/// Writes `bytes` through a file stream future-returning call (`write-via-stream` or
/// `append-via-stream`), closes it and waits for the result.
async fn write_file(
    bytes: Vec<u8>,
    start: impl FnOnce(wasip3::wit_bindgen::StreamReader<u8>) -> wasip3::wit_bindgen::FutureReader<Result<(), wasip3::filesystem::types::ErrorCode>>,
) -> String {
    let (mut writer, reader) = wit_stream::new();
    let done = start(reader);
    let unwritten = writer.write_all(bytes).await;
    drop(writer);
    format!("{:?}, {} unwritten", done.await, unwritten.len())
}

fn preopen(name: &str) -> Option<Descriptor> {
    wasip3::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, path)| path == name)
        .map(|(descriptor, _)| descriptor)
}

/// The filesystem steps over the preopens `/data` (read-write: `hello.txt` holding "hello",
/// a directory `sub`, a symlink `escape` to `../outside`) and `/ro` (read-only, holding
/// `hello.txt`), one line per step.
async fn fs_script() -> String {
    use wasip3::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let mut log = String::new();
    let mut step = |name: &str, outcome: String| log += &format!("{name}: {outcome}\n");
    let mut names: Vec<String> = wasip3::filesystem::preopens::get_directories().into_iter().map(|(_, p)| p).collect();
    names.sort();
    step("preopens", format!("{names:?}"));
    let (Some(data), Some(ro)) = (preopen("/data"), preopen("/ro")) else {
        return log;
    };
    let rw = DescriptorFlags::READ | DescriptorFlags::WRITE;
    let file = match data.open_at(PathFlags::empty(), "new.txt".into(), OpenFlags::CREATE, rw).await {
        Ok(file) => file,
        Err(e) => {
            step("create new.txt", format!("{e:?}"));
            return log;
        }
    };
    step("flags", format!("{:?}", file.get_flags().await));
    step("type", format!("{:?}", file.get_type().await));
    step("write at 0", write_file(b"0123456789".to_vec(), |r| file.write_via_stream(r, 0)).await);
    step("write at 20", write_file(b"x".to_vec(), |r| file.write_via_stream(r, 20)).await);
    step("append", write_file(b"ABC".to_vec(), |r| file.append_via_stream(r)).await);
    step("size", format!("{:?}", file.stat().await.map(|s| s.size)));
    let (bytes, done) = file.read_via_stream(0);
    let (bytes, done) = drain(bytes, done).await;
    step("read from 0", format!("{:?}, {done:?}", String::from_utf8_lossy(&bytes)));
    let (bytes, done) = file.read_via_stream(22);
    let (bytes, done) = drain(bytes, done).await;
    step("read from 22", format!("{:?}, {done:?}", String::from_utf8_lossy(&bytes)));
    let (bytes, done) = file.read_via_stream(100);
    let (bytes, done) = drain(bytes, done).await;
    step("read past the end", format!("{} bytes, {done:?}", bytes.len()));
    step("set-size 3", format!("{:?}, size {:?}", file.set_size(3).await, file.stat().await.map(|s| s.size)));
    step("same object", format!("{} {}", data.is_same_object(&data).await, data.is_same_object(&file).await));
    step("hash stable", format!("{}", file.metadata_hash().await.ok().map(|h| (h.lower, h.upper)) == data.metadata_hash_at(PathFlags::empty(), "new.txt".into()).await.ok().map(|h| (h.lower, h.upper))));
    drop(file);

    let (entries, done) = data.read_directory();
    let (entries, done) = drain(entries, done).await;
    let mut listed: Vec<String> = entries.iter().map(|e| format!("{} {:?}", e.name, e.type_)).collect();
    listed.sort();
    step("read-directory", format!("{listed:?}, {done:?}"));
    step("stat-at hello.txt", format!("{:?}", data.stat_at(PathFlags::empty(), "hello.txt".into()).await.map(|s| (s.type_, s.size))));
    step("rename", format!("{:?}", data.rename_at("new.txt".into(), &data, "renamed.txt".into()).await));
    step("old name", format!("{:?}", data.stat_at(PathFlags::empty(), "new.txt".into()).await.map(|_| ())));
    step("new name", format!("{:?}", data.stat_at(PathFlags::empty(), "renamed.txt".into()).await.map(|s| s.size)));
    step("link", format!("{:?}", data.link_at(PathFlags::empty(), "renamed.txt".into(), &data, "linked.txt".into()).await));
    step("link count", format!("{:?}", data.stat_at(PathFlags::empty(), "linked.txt".into()).await.map(|s| s.link_count)));
    step("unlink", format!("{:?} {:?}", data.unlink_file_at("renamed.txt".into()).await, data.unlink_file_at("linked.txt".into()).await));
    step("unlink again", format!("{:?}", data.unlink_file_at("renamed.txt".into()).await));
    step("mkdir", format!("{:?}", data.create_directory_at("made".into()).await));
    step("mkdir again", format!("{:?}", data.create_directory_at("made".into()).await));
    step("rmdir", format!("{:?}", data.remove_directory_at("made".into()).await));
    step("rmdir non-empty", format!("{:?}", data.remove_directory_at("sub".into()).await));
    step("symlink", format!("{:?}", data.symlink_at("hello.txt".into(), "link-to-hello".into()).await));
    step("readlink", format!("{:?}", data.readlink_at("link-to-hello".into()).await));
    step("through the symlink", format!("{:?}", data.stat_at(PathFlags::SYMLINK_FOLLOW, "link-to-hello".into()).await.map(|s| s.size)));
    let _ = data.unlink_file_at("link-to-hello".into()).await;

    // Nothing leaves the preopen.
    step("open ..", format!("{:?}", data.open_at(PathFlags::empty(), "../outside/secret".into(), OpenFlags::empty(), DescriptorFlags::READ).await.map(|_| ())));
    step("open absolute", format!("{:?}", data.open_at(PathFlags::empty(), "/etc/passwd".into(), OpenFlags::empty(), DescriptorFlags::READ).await.map(|_| ())));
    step("open through escape", format!("{:?}", data.open_at(PathFlags::SYMLINK_FOLLOW, "escape/secret".into(), OpenFlags::empty(), DescriptorFlags::READ).await.map(|_| ())));
    step("stat-at through escape", format!("{:?}", data.stat_at(PathFlags::SYMLINK_FOLLOW, "escape".into()).await.map(|_| ())));
    step("readlink escape", format!("{:?}", data.readlink_at("escape".into()).await));
    step("symlink out", format!("{:?}", data.symlink_at("/etc/passwd".into(), "abs".into()).await));

    // What a descriptor was opened for bounds its streams.
    let hello = data.open_at(PathFlags::empty(), "hello.txt".into(), OpenFlags::empty(), DescriptorFlags::READ).await.expect("hello.txt");
    step("write read-only file", write_file(b"no".to_vec(), |r| hello.write_via_stream(r, 0)).await);
    let (bytes, done) = data.read_via_stream(0);
    let (bytes, done) = drain(bytes, done).await;
    step("read a directory", format!("{} bytes, {done:?}", bytes.len()));
    let (entries, done) = hello.read_directory();
    let (entries, done) = drain(entries, done).await;
    step("read-directory of a file", format!("{} entries, {done:?}", entries.len()));

    // A read-only preopen.
    step("ro create", format!("{:?}", ro.open_at(PathFlags::empty(), "new.txt".into(), OpenFlags::CREATE, rw).await.map(|_| ())));
    step("ro mkdir", format!("{:?}", ro.create_directory_at("made".into()).await));
    let ro_hello = ro.open_at(PathFlags::empty(), "hello.txt".into(), OpenFlags::empty(), DescriptorFlags::READ).await.expect("ro hello.txt");
    step("ro append", write_file(b"no".to_vec(), |r| ro_hello.append_via_stream(r)).await);
    let (bytes, done) = ro_hello.read_via_stream(0);
    let (bytes, done) = drain(bytes, done).await;
    step("ro read", format!("{:?}, {done:?}", String::from_utf8_lossy(&bytes)));
    log
}

/// Copies /data/SRC to /data/DST through a read stream and a write stream, 64 KiB reads.
async fn fs_copy(source: &str, target: &str) -> String {
    use wasip3::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let Some(data) = preopen("/data") else { return "no /data\n".into() };
    let from = match data.open_at(PathFlags::empty(), source.into(), OpenFlags::empty(), DescriptorFlags::READ).await {
        Ok(file) => file,
        Err(e) => return format!("open {source}: {e:?}\n"),
    };
    let to = match data.open_at(PathFlags::empty(), target.into(), OpenFlags::CREATE | OpenFlags::TRUNCATE, DescriptorFlags::WRITE).await {
        Ok(file) => file,
        Err(e) => return format!("open {target}: {e:?}\n"),
    };
    let (mut input, input_done) = from.read_via_stream(0);
    let (mut writer, reader) = wit_stream::new();
    let output_done = to.write_via_stream(reader, 0);
    let copied = pump(&mut input, &mut writer).await;
    drop(input);
    drop(writer);
    format!("copied {copied}; read {:?}; write {:?}\n", input_done.await, output_done.await)
}

/// Writes N bytes to stdout through one stream, 1 MiB writes, and prints how long it took
/// (to stderr).
async fn stdout_bench(total: u64) -> Result<(), ()> {
    let chunk = pattern(1 << 20, 0);
    let (mut writer, reader) = wit_stream::new();
    let done = stdout::write_via_stream(reader);
    let start = monotonic_clock::now();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if !writer.write_all(chunk[..n].to_vec()).await.is_empty() {
            return Err(());
        }
        left -= n as u64;
    }
    drop(writer);
    let result = done.await;
    let took = monotonic_clock::now() - start;
    write(true, format!("wrote {total} in {took} ns; {result:?}\n").into_bytes()).await
}

/// Connects to 127.0.0.1:PORT, sends N bytes (1 MiB writes), closes the stream and prints
/// how long it took until the future resolved.
async fn tcp_send_bench(port: u16, total: u64) -> String {
    let socket = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
    if let Err(e) = socket.connect(v4((127, 0, 0, 1), port)).await {
        return format!("connect: {e:?}\n");
    }
    let chunk = pattern(1 << 20, 0);
    let (mut writer, reader) = wit_stream::new();
    let done = socket.send(reader);
    let start = monotonic_clock::now();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if !writer.write_all(chunk[..n].to_vec()).await.is_empty() {
            break;
        }
        left -= n as u64;
    }
    drop(writer);
    let result = done.await;
    let took = monotonic_clock::now() - start;
    format!("sent {} in {took} ns; {result:?}\n", total - left)
}

/// Connects to 127.0.0.1:PORT, reads until the peer closes (64 KiB reads) and prints how
/// long it took.
async fn tcp_receive_bench(port: u16) -> String {
    let socket = TcpSocket::create(IpAddressFamily::Ipv4).expect("create");
    if let Err(e) = socket.connect(v4((127, 0, 0, 1), port)).await {
        return format!("connect: {e:?}\n");
    }
    let (mut stream, done) = socket.receive();
    let start = monotonic_clock::now();
    let mut total = 0u64;
    let mut buffer = Vec::with_capacity(64 * 1024);
    loop {
        let (status, chunk) = stream.read(buffer).await;
        total += chunk.len() as u64;
        buffer = chunk;
        buffer.clear();
        if !matches!(status, StreamResult::Complete(_)) {
            break;
        }
    }
    drop(stream);
    let result = done.await;
    let took = monotonic_clock::now() - start;
    format!("received {total} in {took} ns; {result:?}\n")
}

/// Binds 127.0.0.1:PORT and counts datagrams for MS ms from the first one.
async fn udp_receive_bench(port: u16, window_ms: u64) -> String {
    let socket = UdpSocket::create(IpAddressFamily::Ipv4).expect("create");
    if let Err(e) = socket.bind(v4((127, 0, 0, 1), port)) {
        return format!("bind: {e:?}\n");
    }
    if let Err(e) = socket.receive().await {
        return format!("receive: {e:?}\n");
    }
    let start = monotonic_clock::now();
    let end = start + window_ms * 1_000_000;
    let mut count = 1u64;
    while monotonic_clock::now() < end {
        if socket.receive().await.is_ok() {
            count += 1;
        }
    }
    let took = monotonic_clock::now() - start;
    format!("received {count} in {took} ns\n")
}

/// Moves everything from `input` to `output`, 64 KiB reads, until either end stops;
/// returns how many bytes were read.
async fn pump(
    input: &mut wasip3::wit_bindgen::StreamReader<u8>,
    output: &mut wasip3::wit_bindgen::StreamWriter<u8>,
) -> usize {
    let mut moved = 0usize;
    loop {
        let (status, chunk) = input.read(Vec::with_capacity(64 * 1024)).await;
        moved += chunk.len();
        if !chunk.is_empty() && !output.write_all(chunk).await.is_empty() {
            break;
        }
        if !matches!(status, StreamResult::Complete(_)) {
            break;
        }
    }
    moved
}

/// Polls every future until all are done (no executor crate in this guest).
async fn join_all<F: Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match std::pin::Pin::new(&mut *future).poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// Writes `bytes` to a new stdout (or stderr) stream and waits for its result: how many
/// bytes the stream did not take, and the future's result.
async fn write_reporting(to_stderr: bool, bytes: Vec<u8>) -> (usize, Result<(), stdout::ErrorCode>) {
    let (mut writer, reader) = wit_stream::new();
    let done = if to_stderr {
        stderr::write_via_stream(reader)
    } else {
        stdout::write_via_stream(reader)
    };
    let unwritten = writer.write_all(bytes).await;
    drop(writer);
    (unwritten.len(), done.await)
}

async fn write(to_stderr: bool, bytes: Vec<u8>) -> Result<(), ()> {
    match write_reporting(to_stderr, bytes).await {
        (0, Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn say(text: String) -> Result<(), ()> {
    write(false, text.into_bytes()).await
}

fn arg(args: &[String], at: usize) -> u64 {
    args.get(at).and_then(|a| a.parse().ok()).unwrap_or(0)
}

async fn cat() -> Result<(), ()> {
    let (mut input, input_done) = stdin::read_via_stream();
    let (mut writer, reader) = wit_stream::new();
    let output_done = stdout::write_via_stream(reader);
    let copied = pump(&mut input, &mut writer).await;
    drop(input);
    drop(writer);
    let input_result = input_done.await;
    let output_result = output_done.await;
    let report = format!("copied {copied}; stdin {input_result:?}; stdout {output_result:?}\n");
    write(true, report.into_bytes()).await
}

impl wasip3::exports::cli::run::Guest for Probe {
    async fn run() -> Result<(), ()> {
        let args = environment::get_arguments();
        match args.get(1).map(String::as_str).unwrap_or("") {
            "env" => {
                let mut text = format!("args: {}\n", args.join(" "));
                for (name, value) in environment::get_environment() {
                    text += &format!("env: {name}={value}\n");
                }
                text += &format!("cwd: {:?}\n", environment::get_initial_cwd());
                say(text).await
            }
            "exit" => {
                exit::exit_with_code(arg(&args, 2) as u8);
                Err(())
            }
            "exit-ok" => {
                exit::exit(Ok(()));
                Err(())
            }
            "fail" => Err(()),
            "cat" => cat().await,
            "random" => {
                let n = arg(&args, 2);
                let secure = random::get_random_bytes(n).len();
                let weak = insecure::get_insecure_random_bytes(n).len();
                say(format!("random {secure} insecure {weak}\n")).await
            }
            "sleep" => {
                let start = monotonic_clock::now();
                monotonic_clock::wait_for(arg(&args, 2) * 1_000_000).await;
                let took = (monotonic_clock::now() - start) / 1_000_000;
                say(format!("slept {took} ms\n")).await
            }
            "cancel-sleep" => {
                let start = monotonic_clock::now();
                let mut long = Box::pin(monotonic_clock::wait_for(10_000_000_000));
                let mut short = Box::pin(monotonic_clock::wait_for(20_000_000));
                let short_won = std::future::poll_fn(|cx| {
                    if long.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(false);
                    }
                    short.as_mut().poll(cx).map(|()| true)
                })
                .await;
                drop(long);
                let took = (monotonic_clock::now() - start) / 1_000_000;
                say(format!("short won: {short_won} after {took} ms\n")).await
            }
            "drop-halfway" => {
                let (mut writer, reader) = wit_stream::new();
                let done = stdout::write_via_stream(reader);
                let unwritten = writer.write_all(b"written before the drop\n".to_vec()).await;
                drop(done);
                drop(writer);
                if unwritten.is_empty() { Ok(()) } else { Err(()) }
            }
            "udp" => say(udp_script().await).await,
            "lookup" => {
                let name = args.get(2).cloned().unwrap_or_default();
                let result = wasip3::sockets::ip_name_lookup::resolve_addresses(name).await;
                say(format!("{result:?}\n")).await
            }
            "udp-flood" => {
                let (count, port) = (arg(&args, 2), arg(&args, 3) as u16);
                let socket = UdpSocket::create(IpAddressFamily::Ipv4).expect("create");
                let to = v4((127, 0, 0, 1), port);
                let payload = vec![0x5a; 64];
                let start = monotonic_clock::now();
                let mut sent = 0u64;
                let mut failed = 0u64;
                while sent < count {
                    let wave = (count - sent).min(64);
                    let sends: Vec<_> =
                        (0..wave).map(|_| Box::pin(socket.send(payload.clone(), Some(to)))).collect();
                    failed += join_all(sends).await.iter().filter(|r| r.is_err()).count() as u64;
                    sent += wave;
                }
                let took = monotonic_clock::now() - start;
                say(format!("sent {sent} failed {failed} in {took} ns\n")).await
            }
            "tcp" => say(tcp_script().await).await,
            "tcp-echo-client" => say(tcp_echo_client(arg(&args, 2) as u16, arg(&args, 3) as usize).await).await,
            "tcp-loop" => say(tcp_loop(arg(&args, 2) as usize).await).await,
            "tcp-limits" => say(tcp_limits().await).await,
            "stdin-drop" => {
                // Reads one chunk, drops the stream with input left unread, then reports
                // the future, which the WIT says resolves to success.
                let (mut input, done) = stdin::read_via_stream();
                let (_, chunk) = input.read(Vec::with_capacity(16)).await;
                drop(input);
                say(format!("read {} then dropped: {:?}\n", chunk.len(), done.await)).await
            }
            "stdout-bench" => stdout_bench(arg(&args, 2)).await,
            "tcp-send" => say(tcp_send_bench(arg(&args, 2) as u16, arg(&args, 3)).await).await,
            "tcp-receive" => say(tcp_receive_bench(arg(&args, 2) as u16).await).await,
            "udp-receive" => say(udp_receive_bench(arg(&args, 2) as u16, arg(&args, 3)).await).await,
            "fs" => say(fs_script().await).await,
            "fs-copy" => {
                let (from, to) = (args.get(2).cloned().unwrap_or_default(), args.get(3).cloned().unwrap_or_default());
                say(fs_copy(&from, &to).await).await
            }
            "tcp-cancel-connect" => say(tcp_cancel_connect().await).await,
            "tcp-reset" => say(tcp_reset(arg(&args, 2) as u16).await).await,
            "tcp-drop-halfway" => say(tcp_drop_halfway(arg(&args, 2) as u16, arg(&args, 3) as usize).await).await,
            "flood" => {
                let n = arg(&args, 2) as usize;
                let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                let (unwritten, result) = write_reporting(false, bytes).await;
                let report = format!("flood: {unwritten} bytes not taken, {result:?}\n");
                write(true, report.into_bytes()).await
            }
            other => {
                let _ = write(true, format!("p3_probe: unknown action {other:?}\n").into_bytes()).await;
                Err(())
            }
        }
    }
}

wasip3::cli::command::export!(Probe);
