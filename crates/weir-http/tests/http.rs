//! wasi:http end to end: the guests in `guests/http/` served by `weir_http::server::serve`,
//! requested over HTTP/1.1 and h2c by a hyper client; outgoing requests from the `probe`
//! guest to a local hyper upstream server, under the network policy.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::net::{TcpListener, TcpStream};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use weir::sockets::NetworkPolicy;
use weir::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use weir_http::server::{ServeOptions, ServeStats};
use weir_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn wasi(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
        }
    }
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::default)
}

/// A running `serve` of one guest; stopped (gracefully) by [`Server::stop`].
struct Server {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    stats: Arc<ServeStats>,
}

impl Server {
    /// A `/fetch` request to the probe (see [`fetch`]) with an empty body.
    async fn fetch(&self, headers: &[(&str, String)], h2: bool) -> Reply {
        send(self.addr, fetch(headers, body("")), h2).await
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.done
            .await
            .expect("the server task")
            .expect("the server stops cleanly");
    }
}

async fn start(guest: &str, policy: NetworkPolicy, options: ServeOptions) -> Server {
    start_custom(guest, policy, options, |ctx| ctx).await
}

/// The probe guest, allowed to send requests to 127.0.0.1 (the local upstreams).
async fn start_probe_for_loopback() -> Server {
    start(
        "probe",
        allowing("http-request=127.0.0.1"),
        ServeOptions::default(),
    )
    .await
}

/// [`start`], with each instance's HTTP context passed through `customize`.
async fn start_custom(
    guest: &str,
    policy: NetworkPolicy,
    options: ServeOptions,
    customize: impl Fn(WasiHttpCtx) -> WasiHttpCtx + Send + Sync + 'static,
) -> Server {
    let bytes = weir_test_guests::http_guest(guest).expect("the guest is built");
    let component = Component::new(engine(), &**bytes).expect("a valid component");
    let mut linker = Linker::<Host>::new(engine());
    weir_http::add_proxy_to_linker_async(&mut linker).expect("linking");
    let pre = weir_http::bindings::ProxyPre::new(linker.instantiate_pre(&component).unwrap())
        .expect("a proxy component");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stats = Arc::new(ServeStats::default());
    let options = ServeOptions {
        stats: Some(stats.clone()),
        ..options
    };
    let make_store = move || {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr().network_policy(policy.clone());
        Ok(Store::new(
            engine(),
            Host {
                wasi: wasi.build(),
                http: customize(WasiHttpCtx::new(policy.clone())),
                table: ResourceTable::new(),
            },
        ))
    };
    let done = tokio::spawn(weir_http::server::serve(
        listener,
        pre,
        make_store,
        options,
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        stop,
        done,
        stats,
    }
}

type ClientBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn body(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into()).boxed()
}

/// The flood pattern: byte `i` is `i % 251`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A body of `total` pattern bytes sent in 64 KiB chunks, without a length (chunked).
fn streamed_pattern(total: usize) -> ClientBody {
    const CHUNK: usize = 64 * 1024;
    let chunks = (0..total.div_ceil(CHUNK)).map(move |i| {
        let start = i * CHUNK;
        let end = total.min(start + CHUNK);
        let bytes: Vec<u8> = (start..end).map(|j| (j % 251) as u8).collect();
        Ok::<_, Infallible>(Frame::data(Bytes::from(bytes)))
    });
    StreamBody::new(IterStream(chunks)).boxed()
}

/// An iterator as a stream (each item ready at once).
struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
    trailers: Option<http::HeaderMap>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a new connection (HTTP/1.1, or h2c with `h2`).
async fn send(addr: SocketAddr, request: http::Request<ClientBody>, h2: bool) -> Reply {
    try_send(addr, request, h2).await.expect("a full response")
}

async fn try_send(
    addr: SocketAddr,
    request: http::Request<ClientBody>,
    h2: bool,
) -> Result<Reply, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let response = if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        sender.send_request(request).await
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        sender.send_request(request).await
    };
    let response = response.map_err(|e| e.to_string())?;
    let (parts, incoming) = response.into_parts();
    let collected = incoming.collect().await.map_err(|e| format!("body: {e}"))?;
    let trailers = collected.trailers().cloned();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    })
}

fn get(path: &str) -> http::Request<ClientBody> {
    http::Request::get(path)
        .header("host", "weir.test")
        .body(body(""))
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn hello_is_served_over_http1_and_h2c() {
    runtime().block_on(async {
        let server = start("hello", NetworkPolicy::deny_all(), ServeOptions::default()).await;
        for h2 in [false, true] {
            let reply = send(server.addr, get("/"), h2).await;
            assert_eq!(reply.status, 200, "h2: {h2}");
            assert_eq!(reply.text(), "Hello from a wasi:http component on Weir\n");
            assert_eq!(reply.headers["content-type"], "text/plain");
        }
        // HTTP/1.1 keep-alive: several requests on one connection.
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        for _ in 0..5 {
            sender.ready().await.unwrap();
            let response = sender.send_request(get("/")).await.unwrap();
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.unwrap();
        }
        assert_eq!(server.stats.with_status_class(2), 7);
        server.stop().await;
    });
}

#[test]
fn echo_streams_bodies_both_ways_from_0_bytes_to_64_mib() {
    runtime().block_on(async {
        let server = start("echo", NetworkPolicy::deny_all(), ServeOptions::default()).await;
        for (len, h2, chunked) in [
            (0, false, false),
            (1, false, true),
            (70_000, true, false),
            (1 << 20, true, true),
            (64 << 20, false, true),
            (64 << 20, true, false),
        ] {
            let mut request = http::Request::post("/")
                .header("host", "weir.test")
                .header("content-type", "application/x-weir");
            let payload = if chunked {
                streamed_pattern(len)
            } else {
                request = request.header("content-length", len);
                body(pattern(len))
            };
            let reply = send(server.addr, request.body(payload).unwrap(), h2).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.headers["content-type"], "application/x-weir");
            assert_eq!(reply.body.len(), len, "len {len} h2 {h2} chunked {chunked}");
            assert!(
                weir_test_guests::flood_pattern_mismatch(&reply.body).is_none(),
                "the echo differs from what was sent (len {len})"
            );
        }
        server.stop().await;
    });
}

#[test]
fn a_hundred_concurrent_clients_are_all_answered() {
    runtime().block_on(async {
        let server = start("hello", NetworkPolicy::deny_all(), ServeOptions::default()).await;
        let clients: Vec<_> = (0..100)
            .map(|i| {
                let addr = server.addr;
                tokio::spawn(async move {
                    let reply = send(addr, get("/"), i % 2 == 0).await;
                    reply.status
                })
            })
            .collect();
        for client in clients {
            assert_eq!(client.await.unwrap(), 200);
        }
        assert_eq!(server.stats.requests(), 100);
        server.stop().await;
    });
}

#[test]
fn traps_missing_responses_and_timeouts_give_500_and_the_server_keeps_serving() {
    runtime().block_on(async {
        let options = ServeOptions {
            request_timeout: Some(Duration::from_millis(300)),
            ..ServeOptions::default()
        };
        let server = start("probe", NetworkPolicy::deny_all(), options).await;
        for path in ["/trap", "/no-response", "/sleep/5000"] {
            let reply = send(server.addr, get(path), false).await;
            assert_eq!(reply.status, 500, "{path}");
            assert_eq!(reply.text(), "internal error\n", "{path}");
            let next = send(server.addr, get("/hello"), false).await;
            assert_eq!(
                (next.status, next.text().as_str()),
                (200, "hello"),
                "after {path}"
            );
        }
        let reply = send(server.addr, get("/sleep/10"), true).await;
        assert_eq!((reply.status, reply.text().as_str()), (200, "slept"));
        assert_eq!(server.stats.with_status_class(5), 3);
        server.stop().await;
    });
}

#[test]
fn requests_over_the_concurrency_limit_get_503() {
    runtime().block_on(async {
        let options = ServeOptions {
            max_concurrent_requests: 1,
            ..ServeOptions::default()
        };
        let server = start("probe", NetworkPolicy::deny_all(), options).await;
        let addr = server.addr;
        let slow = tokio::spawn(async move { send(addr, get("/sleep/600"), false).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let busy = send(server.addr, get("/hello"), false).await;
        assert_eq!(busy.status, 503);
        assert_eq!(busy.text(), "too many requests at once\n");
        assert_eq!(slow.await.unwrap().status, 200);
        assert_eq!(send(server.addr, get("/hello"), false).await.status, 200);
        server.stop().await;
    });
}

#[test]
fn shutdown_lets_the_request_in_flight_finish() {
    runtime().block_on(async {
        let server = start("probe", NetworkPolicy::deny_all(), ServeOptions::default()).await;
        let addr = server.addr;
        let in_flight = tokio::spawn(async move { send(addr, get("/sleep/500"), false).await });
        tokio::time::sleep(Duration::from_millis(150)).await;
        server.stop().await;
        let reply = in_flight.await.unwrap();
        assert_eq!((reply.status, reply.text().as_str()), (200, "slept"));
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the listener is closed after shutdown"
        );
    });
}

#[test]
fn the_incoming_request_is_what_the_client_sent() {
    runtime().block_on(async {
        let server = start("probe", NetworkPolicy::deny_all(), ServeOptions::default()).await;
        for h2 in [false, true] {
            let request = http::Request::put(format!("http://{}/info?a=1&b=2", server.addr))
                .header("X-Custom", "one")
                .header("x-custom", "two")
                .body(body(""))
                .unwrap();
            let reply = send(server.addr, request, h2).await;
            assert_eq!(reply.status, 200);
            let text = reply.text();
            assert!(text.starts_with("method: PUT\nscheme: http\n"), "{text}");
            assert!(
                text.contains(&format!("authority: {}\n", server.addr)),
                "{text}"
            );
            assert!(text.contains("path: /info?a=1&b=2\n"), "{text}");
            assert!(
                text.contains("header x-custom: one\nheader x-custom: two\n"),
                "values of a repeated header keep their order: {text}"
            );
        }
        server.stop().await;
    });
}

#[test]
fn fields_follow_the_wit_validation_and_immutability_rules() {
    runtime().block_on(async {
        let server = start("probe", NetworkPolicy::deny_all(), ServeOptions::default()).await;
        let reply = send(server.addr, get("/fields"), false).await;
        assert_eq!(reply.status, 200);
        let expected = "\
from-list bad name: invalid-syntax
from-list empty name: invalid-syntax
from-list bad value: invalid-syntax
from-list forbidden: forbidden
from-list host: forbidden
from-list ok: ok
append: ok
append again: ok
append forbidden: forbidden
set bad value: invalid-syntax
get case-insensitive: 1,2
has: true
entries keep case: X-Multi,x-multi
delete: ok
has after delete: false
request headers append: immutable
request headers set: immutable
request headers delete: immutable
clone is mutable: ok
set-method bad: false
set-authority bad: false
set-path bad: false
set-scheme bad: false
status 99: false
status 1000: false
status 204: true
body once: true
body twice: false
";
        assert_eq!(reply.text(), expected);
        server.stop().await;
    });
}

// ---- Outgoing requests -------------------------------------------------------------

/// A local upstream server. Routes: `/echo` streams the body back (with `x-echo: METHOD`,
/// and the request's trailers as response trailers); `/trailers` answers `body` with a
/// trailer `x-t: done`; `/slow-head` answers after 3 s; `/slow-body` sends 5 bytes, then
/// stalls 3 s; `/big/N` sends N pattern bytes; anything else: `upstream`, with the request's
/// content-length in `x-len`, the body bytes received in `x-received` and whether they
/// were the flood pattern in `x-pattern`.
async fn upstream() -> SocketAddr {
    upstream_counting().await.0
}

/// [`upstream`], with the number of connections it accepted.
async fn upstream_counting() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(serve_upstream_connection(stream));
        }
    });
    (addr, accepted)
}

/// Serves [`upstream_route`] on one connection (HTTP/1.1).
async fn serve_upstream_connection<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(upstream_route);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

async fn upstream_route(
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<UpstreamBody>, Infallible> {
    let full = |text: &'static str| Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed();
    let response = match request.uri().path() {
        "/echo" => {
            let method = request.method().to_string();
            let mut response = http::Response::builder().header("x-echo", method);
            if let Some(declared) = request.headers().get("trailer") {
                response = response.header("trailer", declared);
            }
            response.body(request.into_body().boxed()).unwrap()
        }
        "/trailers" => {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-t", "done".parse().unwrap());
            let frames = vec![
                Ok::<_, hyper::Error>(Frame::data(Bytes::from("body"))),
                Ok(Frame::trailers(trailers)),
            ];
            http::Response::builder()
                .header("trailer", "x-t")
                .body(StreamBody::new(IterStream(frames.into_iter())).boxed())
                .unwrap()
        }
        path if path.starts_with("/big/") => {
            let total: usize = path["/big/".len()..].parse().unwrap_or(0);
            http::Response::new(streamed_pattern(total).map_err(|e| match e {}).boxed())
        }
        "/slow-head" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            http::Response::new(full("late"))
        }
        "/slow-body" => {
            let (sender, receiver) =
                tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(1);
            tokio::spawn(async move {
                let _ = sender.send(Ok(Frame::data(Bytes::from("first")))).await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                let _ = sender.send(Ok(Frame::data(Bytes::from("late")))).await;
            });
            http::Response::new(StreamBody::new(ReceiverStream(receiver)).boxed())
        }
        _ => {
            let len = request
                .headers()
                .get("content-length")
                .map(|v| v.to_str().unwrap_or("?").to_string())
                .unwrap_or_else(|| "-".into());
            let received = request.into_body().collect().await.map(|b| b.to_bytes());
            let (count, pattern) = match &received {
                Ok(bytes) => (
                    bytes.len().to_string(),
                    weir_test_guests::flood_pattern_mismatch(bytes).is_none(),
                ),
                Err(error) => (format!("error {error}"), false),
            };
            http::Response::builder()
                .header("x-len", len)
                .header("x-received", count)
                .header("x-pattern", if pattern { "ok" } else { "bad" })
                .body(full("upstream"))
                .unwrap()
        }
    };
    Ok(response)
}

struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// A `/fetch` request to the probe: the outgoing request is described by `x-*` headers.
fn fetch(headers: &[(&str, String)], payload: ClientBody) -> http::Request<ClientBody> {
    let mut request = http::Request::post("/fetch").header("host", "weir.test");
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    request.body(payload).unwrap()
}

fn allowing(rule: &str) -> NetworkPolicy {
    NetworkPolicy::deny_all().allow(rule).expect("a valid rule")
}

#[test]
fn outgoing_requests_are_denied_unless_a_rule_allows_them() {
    runtime().block_on(async {
        let upstream = upstream().await;
        let url = format!("http://{upstream}/plain");
        let other_port = format!("http://127.0.0.1:{}/plain", upstream.port() + 1);
        for (policy, target, expected) in [
            (
                NetworkPolicy::deny_all(),
                &url,
                Err("handle: ErrorCode::HttpRequestDenied"),
            ),
            (
                // Sockets allowed is not HTTP allowed.
                NetworkPolicy::allow_all_sockets(),
                &url,
                Err("handle: ErrorCode::HttpRequestDenied"),
            ),
            (
                allowing(&format!("http-request=127.0.0.1:{}", upstream.port())),
                &url,
                Ok(()),
            ),
            (
                allowing(&format!("http-request=127.0.0.1:{}", upstream.port())),
                &other_port,
                Err("handle: ErrorCode::HttpRequestDenied"),
            ),
            (
                allowing("http-request=localhost"),
                &url,
                Err("handle: ErrorCode::HttpRequestDenied"),
            ),
            (
                allowing("http-request=*")
                    .deny("http-request=127.0.0.1")
                    .unwrap(),
                &url,
                Err("handle: ErrorCode::HttpRequestDenied"),
            ),
        ] {
            let server = start("probe", policy.clone(), ServeOptions::default()).await;
            let reply = server.fetch(&[("x-url", target.clone())], false).await;
            match expected {
                Ok(()) => {
                    assert_eq!(reply.status, 200, "{policy:?}: {}", reply.text());
                    assert_eq!(reply.headers["x-upstream-status"], "200");
                    assert_eq!(reply.text(), "upstream");
                }
                Err(text) => {
                    assert_eq!(reply.status, 502, "{policy:?}");
                    assert_eq!(reply.text(), format!("{text}\n"), "{policy:?}");
                }
            }
            server.stop().await;
        }
    });
}

#[test]
fn outgoing_bodies_stream_both_ways_with_methods_lengths_and_trailers() {
    runtime().block_on(async {
        let upstream = upstream().await;
        let server = start_probe_for_loopback().await;
        let echo = format!("http://{upstream}/echo");
        // GET/POST/PUT with generated bodies from 0 bytes to 1 MiB.
        for (method, len) in [
            ("GET", 0usize),
            ("POST", 1),
            ("PUT", 70_000),
            ("POST", 1 << 20),
        ] {
            let reply = server
                .fetch(
                    &[
                        ("x-url", echo.clone()),
                        ("x-method", method.into()),
                        ("x-send", len.to_string()),
                    ],
                    false,
                )
                .await;
            assert_eq!(reply.status, 200, "{method} {len}: {}", reply.text());
            assert_eq!(reply.headers["x-echo"], method);
            assert_eq!(reply.body.len(), len, "{method} {len}");
            assert!(weir_test_guests::flood_pattern_mismatch(&reply.body).is_none());
        }
        // 64 MiB each way, streamed through the guest: client -> guest -> upstream, and
        // upstream -> guest -> client.
        let len = 64 << 20;
        let reply = send(
            server.addr,
            fetch(
                &[
                    ("x-url", format!("http://{upstream}/count")),
                    ("x-method", "PUT".into()),
                    ("x-forward-body", "1".into()),
                ],
                streamed_pattern(len),
            ),
            true,
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.headers["x-received"], len.to_string().as_str());
        assert_eq!(reply.headers["x-pattern"], "ok");
        assert_eq!(
            reply.headers["x-len"], "-",
            "sent chunked: no content-length"
        );
        let reply = server
            .fetch(&[("x-url", format!("http://{upstream}/big/{len}"))], false)
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), len);
        assert!(weir_test_guests::flood_pattern_mismatch(&reply.body).is_none());

        // A declared content-length goes out as such.
        let reply = server
            .fetch(
                &[
                    ("x-url", format!("http://{upstream}/plain")),
                    ("x-send", "10".into()),
                    ("x-content-length", "10".into()),
                ],
                false,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.headers["x-len"], "10");
        assert_eq!(reply.headers["x-received"], "10");

        let reply = server
            .fetch(&[("x-url", format!("http://{upstream}/trailers"))], true)
            .await;
        assert_eq!(reply.text(), "body");
        assert_eq!(reply.trailers.expect("upstream trailers")["x-t"], "done");
        // Trailers both ways: the guest's outgoing trailer reaches the upstream (which
        // echoes it as a response trailer); the upstream's trailers reach the guest, which
        // forwards them to the client.
        let reply = server
            .fetch(
                &[
                    ("x-url", echo.clone()),
                    ("x-method", "POST".into()),
                    ("x-send", "3".into()),
                    ("x-trailer", "x-guest-trailer=sent".into()),
                    // HTTP/1.1 sends the trailers a message declares (RFC 9110 6.6.2).
                    ("x-header", "trailer=x-guest-trailer".into()),
                ],
                true,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let trailers = reply.trailers.expect("trailers reach the client");
        assert_eq!(trailers["x-guest-trailer"], "sent");
        server.stop().await;
    });
}

#[test]
fn content_length_over_and_under_writes_are_the_wits_body_size_errors() {
    runtime().block_on(async {
        let upstream = upstream().await;
        let server = start_probe_for_loopback().await;
        let url = format!("http://{upstream}/plain");
        for (method, declared, sent, expected) in [
            (
                "POST",
                "5",
                "10",
                "body-write: ErrorCode::HttpRequestBodySize(Some(10))",
            ),
            (
                "PUT",
                "10",
                "5",
                "body-finish: ErrorCode::HttpRequestBodySize(Some(5))",
            ),
            // HTTP/1.1 sends a GET without a declared length with no body: bytes written
            // after `handle` are refused, not dropped.
            (
                "GET",
                "",
                "3",
                "body-write: ErrorCode::HttpRequestBodySize(Some(3))",
            ),
        ] {
            let mut headers = vec![
                ("x-url", url.clone()),
                ("x-method", method.to_string()),
                ("x-send", sent.to_string()),
            ];
            if !declared.is_empty() {
                headers.push(("x-content-length", declared.to_string()));
            }
            let reply = server.fetch(&headers, false).await;
            assert_eq!(reply.status, 502, "{method}");
            assert_eq!(reply.text(), format!("{expected}\n"), "{method}");
        }
        // A GET that writes nothing succeeds, however fast the connection drops its body.
        for _ in 0..20 {
            let reply = server.fetch(&[("x-url", url.clone())], false).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_eq!(reply.headers["x-received"], "0");
        }
        server.stop().await;
    });
}

#[test]
fn each_typical_failure_is_its_error_code() {
    runtime().block_on(async {
        let upstream = upstream().await;
        let server = start("probe", allowing("http-request=*"), ServeOptions::default()).await;
        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed_port = closed.local_addr().unwrap().port();
        drop(closed);
        let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
            (
                vec![("x-url", format!("http://127.0.0.1:{closed_port}/"))],
                "response: ErrorCode::ConnectionRefused",
            ),
            (
                vec![("x-url", "http://no-such-host.invalid/".into())],
                "response: ErrorCode::DnsError(",
            ),
            (
                vec![("x-url", format!("ftp://{upstream}/"))],
                "handle: ErrorCode::HttpProtocolError",
            ),
            (
                vec![("x-url", "http://127.0.0.1:99999/".into())],
                "handle: ErrorCode::HttpRequestUriInvalid",
            ),
            (
                vec![
                    ("x-url", format!("http://{upstream}/slow-head")),
                    ("x-first-byte-timeout-ms", "200".into()),
                ],
                "response: ErrorCode::ConnectionReadTimeout",
            ),
            (
                vec![
                    ("x-url", format!("http://{upstream}/x")),
                    ("x-header", "connection=close".into()),
                ],
                "headers: forbidden",
            ),
            (
                vec![
                    ("x-url", format!("http://{upstream}/x")),
                    ("x-header", "bad name=1".into()),
                ],
                "headers: invalid-syntax",
            ),
        ];
        for (headers, expected) in cases {
            let reply = server.fetch(&headers, false).await;
            assert_eq!(reply.status, 502, "{headers:?}");
            assert!(
                reply.text().starts_with(expected),
                "{headers:?}: expected {expected}, got {}",
                reply.text()
            );
        }
        // A body that stalls longer than the between-bytes timeout: the guest's read fails,
        // so the response it had started is cut short.
        let stalled = try_send(
            server.addr,
            fetch(
                &[
                    ("x-url", format!("http://{upstream}/slow-body")),
                    ("x-between-bytes-timeout-ms", "200".into()),
                ],
                body(""),
            ),
            false,
        )
        .await;
        match stalled {
            Err(error) => assert!(error.starts_with("body:"), "{error}"),
            Ok(reply) => panic!("a stalled body was delivered whole: {:?}", reply.body),
        }
        server.stop().await;
    });
}

/// A TLS upstream for `localhost` with a fresh self-signed certificate, serving the same
/// routes as [`upstream`]; returns its address and a client configuration trusting it.
async fn tls_upstream() -> (SocketAddr, Arc<weir_http::rustls::ClientConfig>) {
    use weir_http::rustls;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    #[allow(deprecated)] // ring: no post-quantum key exchange, which this test needs not.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(stream).await {
                    serve_upstream_connection(stream).await;
                }
            });
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    (addr, Arc::new(weir_http::tls_config_trusting(roots)))
}

#[test]
fn https_requests_verify_the_server_and_report_tls_errors() {
    runtime().block_on(async {
        let (tls_addr, trusting) = tls_upstream().await;
        let plain = upstream().await;
        let policy = allowing("http-request=localhost");
        let url = format!("https://localhost:{}/plain", tls_addr.port());

        let server = start_custom(
            "probe",
            policy.clone(),
            ServeOptions::default(),
            move |ctx| ctx.with_tls_config(trusting.clone()),
        )
        .await;
        let reply = server
            .fetch(
                &[
                    ("x-url", url.clone()),
                    ("x-method", "POST".into()),
                    ("x-send", "70000".into()),
                ],
                false,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), "upstream");
        assert_eq!(reply.headers["x-received"], "70000");
        assert_eq!(reply.headers["x-pattern"], "ok");
        let big = server
            .fetch(
                &[(
                    "x-url",
                    format!("https://localhost:{}/big/{}", tls_addr.port(), 4 << 20),
                )],
                true,
            )
            .await;
        assert_eq!(big.body.len(), 4 << 20);
        assert!(weir_test_guests::flood_pattern_mismatch(&big.body).is_none());
        // TLS to a server that speaks plain HTTP.
        let reply = server
            .fetch(
                &[("x-url", format!("https://localhost:{}/plain", plain.port()))],
                false,
            )
            .await;
        assert_eq!(reply.text(), "response: ErrorCode::TlsProtocolError\n");
        server.stop().await;

        // The default configuration (Mozilla roots) does not trust a self-signed certificate.
        let server = start("probe", policy, ServeOptions::default()).await;
        let reply = server.fetch(&[("x-url", url)], false).await;
        assert_eq!(reply.status, 502);
        assert_eq!(reply.text(), "response: ErrorCode::TlsCertificateError\n");
        server.stop().await;
    });
}

/// A [`weir_http::RequestSender`] that answers every request itself.
struct MockSender;

impl weir_http::RequestSender for MockSender {
    fn send(
        &self,
        request: http::Request<weir_http::body::HostBody>,
        target: weir_http::OutgoingTarget,
    ) -> weir_http::SenderFuture {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let received = body
                .collect()
                .await
                .map_err(|e| weir_http::ErrorCode::InternalError(Some(e.to_string())))?
                .to_bytes();
            let text = format!(
                "mocked {} {}:{} https={} {} with {} bytes",
                parts.method,
                target.host,
                target.port,
                target.https,
                parts.uri,
                received.len()
            );
            Ok(http::Response::builder()
                .header("x-mock", "1")
                .body(Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed())
                .unwrap())
        })
    }
}

#[test]
fn an_embedders_sender_sends_the_requests_the_policy_allows() {
    runtime().block_on(async {
        let mock = |ctx: WasiHttpCtx| ctx.with_sender(Arc::new(MockSender));
        let server = start_custom(
            "probe",
            allowing("http-request=*.example"),
            ServeOptions::default(),
            mock,
        )
        .await;
        let reply = server
            .fetch(
                &[
                    ("x-url", "https://api.example/v1?q=2".into()),
                    ("x-method", "PUT".into()),
                    ("x-send", "1000".into()),
                ],
                false,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.headers["x-mock"], "1");
        assert_eq!(
            reply.text(),
            "mocked PUT api.example:443 https=true /v1?q=2 with 1000 bytes"
        );
        // The policy still decides first.
        let reply = server
            .fetch(&[("x-url", "http://other.test/".into())], false)
            .await;
        assert_eq!(reply.text(), "handle: ErrorCode::HttpRequestDenied\n");
        server.stop().await;
    });
}

#[test]
fn outgoing_connections_are_reused_through_the_pool() {
    runtime().block_on(async {
        let (upstream, accepted) = upstream_counting().await;
        let url = format!("http://{upstream}/plain");
        let pool = weir_http::ConnectionPool::new();
        let shared = pool.clone();
        let server = start_custom(
            "probe",
            allowing("http-request=127.0.0.1"),
            ServeOptions::default(),
            move |ctx| ctx.with_connection_pool(shared.clone()),
        )
        .await;
        for _ in 0..10 {
            let reply = server.fetch(&[("x-url", url.clone())], false).await;
            assert_eq!(reply.text(), "upstream");
        }
        use std::sync::atomic::Ordering::SeqCst;
        assert_eq!(
            accepted.load(SeqCst),
            1,
            "10 sequential requests, one connection"
        );
        assert_eq!(pool.connections(), 1);
        server.stop().await;

        // Without a shared pool, each instance (one per request) opens its own.
        let server = start_probe_for_loopback().await;
        for _ in 0..3 {
            let reply = server.fetch(&[("x-url", url.clone())], false).await;
            assert_eq!(reply.text(), "upstream");
        }
        assert_eq!(accepted.load(SeqCst), 4);
        server.stop().await;
    });
}

#[test]
fn request_heads_over_the_fields_limit_are_refused_before_any_instance() {
    runtime().block_on(async {
        let options = ServeOptions {
            max_fields_size: Some(10_000),
            ..ServeOptions::default()
        };
        let server = start("probe", NetworkPolicy::deny_all(), options).await;
        let small = http::Request::get("/hello")
            .header("host", "weir.test")
            .header("x-small", "a".repeat(1000))
            .body(body(""))
            .unwrap();
        assert_eq!(send(server.addr, small, false).await.status, 200);
        let large = || {
            http::Request::get("/hello")
                .header("host", "weir.test")
                .header("x-large", "a".repeat(20_000))
                .body(body(""))
                .unwrap()
        };
        assert_eq!(send(server.addr, large(), false).await.status, 431);
        assert_eq!(send(server.addr, large(), true).await.status, 431);
        assert_eq!(
            server.stats.requests(),
            1,
            "no instance ran for the refused requests"
        );
        server.stop().await;
    });
}

/// A listener whose accept queue is full and never drained: further connects get no answer
/// (Linux drops their SYNs), so they time out.
fn unanswering_listener() -> (socket2::Socket, Vec<std::net::TcpStream>, SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let filler =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        filler.set_nonblocking(true).unwrap();
        let _ = filler.connect(&addr.into());
        fillers.push(std::net::TcpStream::from(filler));
    }
    std::thread::sleep(Duration::from_millis(100));
    (socket, fillers, addr)
}

#[test]
fn a_connect_that_gets_no_answer_is_connection_timeout() {
    runtime().block_on(async {
        let (_listener, _fillers, addr) = unanswering_listener();
        let server = start_probe_for_loopback().await;
        let started = std::time::Instant::now();
        let reply = server
            .fetch(
                &[
                    ("x-url", format!("http://{addr}/")),
                    ("x-connect-timeout-ms", "300".into()),
                ],
                false,
            )
            .await;
        assert_eq!(reply.text(), "response: ErrorCode::ConnectionTimeout\n");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        server.stop().await;
    });
}

#[test]
fn consume_and_future_incoming_response_get_follow_the_wit() {
    runtime().block_on(async {
        let upstream = upstream().await;
        let server = start_probe_for_loopback().await;
        // `consume` succeeds once, then fails.
        let reply = send(server.addr, get("/consume-twice"), false).await;
        assert_eq!(reply.text(), "first: true, second: false");
        // `get` is `none` before the response is ready and `some(err)` once it was taken.
        let reply = server
            .fetch(&[("x-url", format!("http://{upstream}/slow-head"))], false)
            .await;
        assert_eq!(reply.text(), "late");
        assert_eq!(reply.headers["x-get-ready-at-once"], "false");
        assert_eq!(reply.headers["x-get-again-is-err"], "true");
        server.stop().await;
    });
}

/// Runs the `http_get` command guest (a `wasi:cli/command` using `wasi:http`) with
/// Wasmtime's synchronous API and Weir's sync linkers, on a thread with no tokio runtime;
/// returns its outcome, stdout and stderr.
fn run_http_get_sync(url: &str, policy: NetworkPolicy) -> (weir::command::Outcome, Bytes, String) {
    let bytes = weir_test_guests::rust_guest("http_get").expect("the guest is built");
    let component = Component::new(engine(), &**bytes).expect("a valid component");
    let mut linker = Linker::<Host>::new(engine());
    weir_http::add_proxy_to_linker_sync(&mut linker).expect("linking");
    let stdout = weir::io::MemoryOutputPipe::new(8 << 20);
    let stderr = weir::io::MemoryOutputPipe::new(1 << 16);
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(["http_get", url])
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    let mut store = Store::new(
        engine(),
        Host {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(policy),
            table: ResourceTable::new(),
        },
    );
    let outcome = std::thread::spawn(move || {
        assert!(tokio::runtime::Handle::try_current().is_err());
        weir::command::run_sync(&mut store, &linker, &component)
    })
    .join()
    .expect("the guest thread")
    .expect("the command runs");
    let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
    (outcome, stdout.contents(), stderr)
}

#[test]
fn a_command_sends_requests_through_the_sync_linker() {
    use weir::command::Outcome;
    let rt = runtime();
    let upstream = rt.block_on(upstream());
    let loopback = || allowing("http-request=127.0.0.1");

    // A streamed 3 MiB body arrives whole through blocking reads.
    let total = 3 << 20;
    let (outcome, stdout, stderr) =
        run_http_get_sync(&format!("http://{upstream}/big/{total}"), loopback());
    assert_eq!(outcome, Outcome::Success, "{stderr}");
    let head = b"status 200\n";
    assert_eq!(&stdout[..head.len()], head, "{stderr}");
    let body = &stdout[head.len()..];
    assert_eq!(body.len(), total);
    assert_eq!(weir_test_guests::flood_pattern_mismatch(body), None);

    // The policy holds in the sync linker too.
    let (outcome, _, stderr) = run_http_get_sync(
        &format!("http://{upstream}/"),
        allowing("http-request=localhost"),
    );
    assert_eq!(outcome, Outcome::Exit(1), "{stderr}");
    assert!(
        stderr.contains("handle: ErrorCode::HttpRequestDenied"),
        "{stderr}"
    );

    // A dead server: the error code comes back through `future-incoming-response.get`.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (outcome, _, stderr) = run_http_get_sync(&format!("http://{closed}/"), loopback());
    assert_eq!(outcome, Outcome::Exit(1), "{stderr}");
    assert!(
        stderr.contains("response: ErrorCode::ConnectionRefused"),
        "{stderr}"
    );
}

/// A hand-written `wasi:http/proxy` handler whose `handle` runs `body` (WAT) with the
/// request in local 0 and the outparam in local 1, and locals `$body $stream $n` (i32,
/// i32, i64). Never answers by itself: a handler that returns ends as
/// [`HandlerFailure::NoResponse`], one that traps as [`HandlerFailure::Trap`].
fn wat_handler(body: &str) -> Vec<u8> {
    let world = r#"
        package weir:trap-probe;
        world guest {
          import wasi:http/types@0.2.12;
          import wasi:io/streams@0.2.12;
          export wasi:http/incoming-handler@0.2.12;
        }
    "#;
    let wat = format!(
        r#"(module
          (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields (result i32)))
          (import "wasi:http/types@0.2.12" "[constructor]outgoing-response"
            (func $response (param i32) (result i32)))
          (import "wasi:http/types@0.2.12" "[method]outgoing-response.body"
            (func $response-body (param i32 i32)))
          (import "wasi:http/types@0.2.12" "[method]outgoing-body.write"
            (func $body-write (param i32 i32)))
          (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish"
            (func $body-finish (param i32 i32 i32 i32)))
          (import "wasi:http/types@0.2.12" "[resource-drop]outgoing-body"
            (func $drop-body (param i32)))
          (import "wasi:http/types@0.2.12" "[method]incoming-request.headers"
            (func $request-headers (param i32) (result i32)))
          (import "wasi:http/types@0.2.12" "[resource-drop]fields" (func $drop-fields (param i32)))
          (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request"
            (func $drop-request (param i32)))
          (import "wasi:http/types@0.2.12" "[method]incoming-request.consume"
            (func $consume (param i32 i32)))
          (import "wasi:http/types@0.2.12" "[method]incoming-body.stream"
            (func $incoming-stream (param i32 i32)))
          (import "wasi:http/types@0.2.12" "[static]incoming-body.finish"
            (func $incoming-finish (param i32) (result i32)))
          (import "wasi:io/streams@0.2.12" "[method]output-stream.check-write"
            (func $check-write (param i32 i32)))
          (import "wasi:io/streams@0.2.12" "[method]output-stream.write"
            (func $write (param i32 i32 i32 i32)))
          (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream"
            (func $drop-output (param i32)))
          (import "wasi:io/streams@0.2.12" "[resource-drop]input-stream"
            (func $drop-input (param i32)))
          (memory (export "memory") 4)
          ;; Nothing here returns a list or string; a bump allocator above the scratch space.
          (global $heap (mut i32) (i32.const 0x20000))
          (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
            (global.get $heap)
            (global.set $heap (i32.add (global.get $heap) (local.get 3))))
          ;; An outgoing response's body in $body and its stream in $stream (results at 16..32).
          (func $response-stream (param $body i32) (result i32 i32)
            (call $response-body (call $response (call $fields)) (i32.const 16))
            (call $body-write (i32.load (i32.const 20)) (i32.const 24))
            (i32.load (i32.const 20))
            (i32.load (i32.const 28)))
          (func (export "wasi:http/incoming-handler@0.2.12#handle") (param i32 i32)
            (local $body i32) (local $stream i32) (local $n i64)
            {body})
        )"#
    );
    weir_test_guests::wat_guest(world, &wat).expect("the WAT handler builds")
}

/// Runs one request through the handler built from `body`.
fn run_wat_handler(body: &str) -> Result<(), weir_http::server::HandlerFailure> {
    let bytes = wat_handler(body);
    let component = Component::new(engine(), &bytes).expect("a valid component");
    let mut linker = Linker::<Host>::new(engine());
    weir_http::add_proxy_to_linker_async(&mut linker).expect("linking");
    let pre = weir_http::bindings::ProxyPre::new(linker.instantiate_pre(&component).unwrap())
        .expect("a proxy component");
    let store = Store::new(
        engine(),
        Host {
            wasi: WasiCtxBuilder::new().build(),
            http: WasiHttpCtx::default(),
            table: ResourceTable::new(),
        },
    );
    let request = http::Request::post("/")
        .body(Full::new(Bytes::from("payload")))
        .unwrap();
    runtime()
        .block_on(weir_http::server::handle(pre, store, request, None))
        .map(|_| ())
}

/// Asserts that the handler built from `body` traps with a message containing `expected`.
fn assert_handler_traps(body: &str, expected: &str) {
    match run_wat_handler(body) {
        Err(weir_http::server::HandlerFailure::Trap(error)) => {
            let text = format!("{error:?}");
            assert!(text.contains(expected), "expected `{expected}` in: {text}");
        }
        other => panic!("expected a trap with `{expected}`, got {other:?}"),
    }
}

fn assert_handler_returns_without_answering(body: &str) {
    match run_wat_handler(body) {
        Err(weir_http::server::HandlerFailure::NoResponse) => {}
        other => panic!("expected the handler to return normally, got {other:?}"),
    }
}

#[test]
fn body_streams_keep_the_permit_and_child_resource_rules() {
    // `write` may take exactly what `check-write` granted...
    let write = |extra: i32| {
        format!(
            "(call $response-stream (i32.const 0)) (local.set $stream) (local.set $body)
             (call $check-write (local.get $stream) (i32.const 32))
             (if (i32.load8_u (i32.const 32)) (then unreachable))
             (local.set $n (i64.load (i32.const 40)))
             (if (i64.eqz (local.get $n)) (then unreachable))
             (call $write (local.get $stream) (i32.const 1024)
               (i32.add (i32.wrap_i64 (local.get $n)) (i32.const {extra})) (i32.const 48))"
        )
    };
    assert_handler_returns_without_answering(&write(0));
    // ... one byte more traps.
    assert_handler_traps(&write(1), "exceed");

    // The body's output-stream is a child: finishing or dropping the body while it is alive
    // traps; once it is dropped, `finish` succeeds.
    let stream = "(call $response-stream (i32.const 0)) (local.set $stream) (local.set $body)";
    let finish = "(call $body-finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 64))";
    assert_handler_traps(&format!("{stream} {finish}"), "children");
    assert_handler_traps(
        &format!("{stream} (call $drop-body (local.get $body))"),
        "children",
    );
    assert_handler_returns_without_answering(&format!(
        "{stream} (call $drop-output (local.get $stream)) {finish}
         (if (i32.load8_u (i32.const 64)) (then unreachable))"
    ));

    // The incoming request's headers are a child: dropping the request first traps.
    let headers = "(local.set $body (call $request-headers (local.get 0)))";
    assert_handler_traps(
        &format!("{headers} (call $drop-request (local.get 0))"),
        "children",
    );
    assert_handler_returns_without_answering(&format!(
        "{headers} (call $drop-fields (local.get $body)) (call $drop-request (local.get 0))"
    ));

    // The incoming body's input-stream is a child: `incoming-body.finish` traps while it is
    // alive.
    let input = "(call $consume (local.get 0) (i32.const 16))
                 (local.set $body (i32.load (i32.const 20)))
                 (call $incoming-stream (local.get $body) (i32.const 24))
                 (local.set $stream (i32.load (i32.const 28)))";
    assert_handler_traps(
        &format!("{input} (drop (call $incoming-finish (local.get $body)))"),
        "children",
    );
    assert_handler_returns_without_answering(&format!(
        "{input} (call $drop-input (local.get $stream))
         (drop (call $incoming-finish (local.get $body)))"
    ));
}
