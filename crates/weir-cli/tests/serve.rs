//! `weir serve` end to end: the real binary serving the `wasi:http` guests over TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes the `wasi:http` guest `name` as a component file in `dir`.
fn http_guest_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("http-{name}.wasm"));
    std::fs::write(&path, &*weir_test_guests::http_guest(name).unwrap()).unwrap();
    path
}

/// A running `weir serve`, its address read from its "Serving HTTP on" line; the rest of
/// its stderr is collected by a thread, line by line, into `log`.
struct Serving {
    child: Child,
    addr: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    stderr: Option<std::thread::JoinHandle<()>>,
}

fn serve(args: &[&str], component: &Path) -> Serving {
    let mut child = weir()
        .arg("serve")
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .arg(component)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("Serving HTTP on http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
        .parse()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(first));
    let stderr = std::thread::spawn({
        let log = log.clone();
        move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
                log.lock().unwrap().push_str(&line);
                line.clear();
            }
        }
    });
    Serving {
        child,
        addr,
        log,
        stderr: Some(stderr),
    }
}

impl Serving {
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = self.child.wait().unwrap();
        if let Some(stderr) = self.stderr.take() {
            stderr.join().unwrap();
        }
        (status, self.log.lock().unwrap().clone())
    }

    /// Waits (30 s at most) until the server's stderr has a line containing `needle`;
    /// returns the log so far.
    fn wait_for_log(&self, needle: &str) -> String {
        let started = std::time::Instant::now();
        loop {
            let log = self.log.lock().unwrap().clone();
            if log.contains(needle) {
                return log;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no {needle:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serving {
    /// A test that fails before `terminate` must not leave its server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on its own connection; returns the status and the (de-chunked) body.
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: weir.test\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = text(&raw[..split]);
    let status = head[9..12].parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(text(&raw[..line_end]).trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[test]
fn serve_answers_survives_traps_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let probe = http_guest_file(dir.path(), "probe");
    let server = serve(&["--stats"], &probe);
    assert_eq!(
        request(server.addr, "GET", "/hello", b""),
        (200, b"hello".to_vec())
    );
    assert_eq!(
        request(server.addr, "GET", "/trap", b""),
        (500, b"internal error\n".to_vec())
    );
    assert_eq!(
        request(server.addr, "GET", "/hello", b""),
        (200, b"hello".to_vec())
    );
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || request(addr, "GET", "/sleep/800", b""));
    std::thread::sleep(Duration::from_millis(300));
    let (status, stderr) = server.terminate();
    assert_eq!(
        in_flight.join().unwrap(),
        (200, b"slept".to_vec()),
        "the request in flight finishes: {stderr}"
    );
    assert!(status.success(), "{stderr}");
    for needle in [
        "GET /hello -> 200",
        "GET /trap: the guest trapped",
        "GET /trap -> 500",
        "probe: asked to trap",
        "shutting down after the requests in flight",
        "weir serve stats: 4 requests (2xx 3, 3xx 0, 4xx 0, 5xx 1)",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal colours when stderr is not a terminal:\n{stderr}"
    );
}

#[test]
fn the_echo_example_streams_the_body_back() {
    let root = weir_test_guests::workspace_root();
    let server = serve(&[], &root.join("examples/http-echo.wasm"));
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(request(server.addr, "POST", "/", &body), (200, body));
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}

#[test]
fn serve_refuses_what_is_not_a_proxy_component() {
    let root = weir_test_guests::workspace_root();
    for (file, needle) in [
        (
            "examples/hello.wasm",
            "does not export `wasi:http/incoming-handler`",
        ),
        ("examples/hello-p1.wasm", "is a core module"),
    ] {
        assert_serve_refuses(&["--addr", "127.0.0.1:0"], &root.join(file), 1, needle);
    }
    let refused_as_taken = |taken: String| {
        let hello = root.join("examples/http-hello.wasm");
        assert_serve_refuses(
            &["--addr", &taken],
            &hello,
            1,
            &format!("cannot listen on {taken}"),
        );
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    refused_as_taken(taken.local_addr().unwrap().to_string());
    // A port another `weir serve` listens on is taken too, though its listeners share the
    // port among its own threads (`SO_REUSEPORT`): the two do not split the connections.
    let first = serve(&[], &root.join("examples/http-hello.wasm"));
    refused_as_taken(first.addr.to_string());
    let (status, log) = first.terminate();
    assert!(status.success(), "{log}");
}

/// Runs `weir serve ARGS COMPONENT`, which must refuse to start: exits with `code` and says
/// `needle` on stderr.
fn assert_serve_refuses(args: &[&str], component: &Path, code: i32, needle: &str) {
    let out = weir()
        .arg("serve")
        .args(args)
        .arg(component)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: no {needle:?} in {stderr}"
    );
}

/// A one-shot HTTP/1.1 server on a thread: answers each connection with `200` and `body`.
fn tiny_upstream(body: &'static str) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    addr
}

#[test]
fn run_with_s_http_sends_requests_unless_rules_say_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let guest = dir.path().join("http_get.wasm");
    std::fs::write(&guest, &*weir_test_guests::rust_guest("http_get").unwrap()).unwrap();
    let upstream = tiny_upstream("from upstream");
    let url = format!("http://{upstream}/x");
    let run = |args: &[&str]| {
        weir()
            .arg("run")
            .args(args)
            .arg(&guest)
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    // `-S http` alone allows requests, as in wasmtime.
    let out = run(&["-S", "http"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "status 200\nfrom upstream");

    // Once an `http-request` rule is given, only what the rules allow passes.
    let out = run(&["-S", "http", "--allow", "http-request=example.com"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("handle: ErrorCode::HttpRequestDenied"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["-S", "http", "--allow", "http-request=127.0.0.1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Without `-S http`, `wasi:http` is not linked and the component is refused.
    let out = run(&[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("wasi:http"),
        "{}",
        text(&out.stderr)
    );
}

/// The WASI 0.3 HTTP service guest (`guests/p3/http`) as a component file in `dir`.
fn p3_service_file(dir: &Path) -> PathBuf {
    let path = dir.join("p3-http.wasm");
    std::fs::write(&path, &*weir_test_guests::p3_guest("http").unwrap()).unwrap();
    path
}

/// What a response carried: status, head (lowercased), de-chunked body and trailers.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
    trailers: String,
}

/// One HTTP/1.1 request with `extra` header lines, on its own connection, asking for
/// trailers.
fn request_with(addr: SocketAddr, method: &str, path: &str, extra: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: weir.test\r\nconnection: close\r\nte: trailers\r\n\
         {extra}content-length: {}\r\n\r\n",
        body.len()
    );
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        std::thread::spawn(move || stream.write_all(&bytes))
    };
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    // A server may answer (and close) before it read the whole request.
    let _ = writer.join().unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head from {addr} for {method} {path}: {raw:?}"));
    let head = text(&raw[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let mut rest = &raw[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return Answer {
            status,
            head,
            body: rest.to_vec(),
            trailers: String::new(),
        };
    }
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(text(&rest[..line_end]).trim(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    Answer {
        status,
        head,
        body,
        trailers: text(rest).to_ascii_lowercase(),
    }
}

#[test]
fn a_wasi_0_3_service_is_served_with_the_request_as_the_wit_describes_it() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let server = serve(&["--request-timeout", "2"], &service);
    let hello = request_with(server.addr, "GET", "/", "", b"");
    assert_eq!(hello.status, 200);
    assert!(
        hello.head.contains("content-type: text/plain"),
        "{}",
        hello.head
    );
    assert_eq!(text(&hello.body), "Hello from a WASI 0.3 service\n");

    // Scheme and authority come from the connection and the Host header; the path keeps
    // its query; repeated headers keep their order.
    let info = request_with(
        server.addr,
        "DELETE",
        "/info?x=1&y=2",
        "x-test: one\r\nx-test: two\r\n",
        b"",
    );
    assert_eq!(
        text(&info.body),
        "method: Method::Delete\nscheme: http\nauthority: weir.test\n\
         path-with-query: /info?x=1&y=2\nx-test: one,two\nx-forwarded: \n"
    );
    let missing = request_with(server.addr, "GET", "/nowhere", "", b"");
    assert_eq!(missing.status, 404);

    // A trap, an error answer and a handler that never answers are 500s; the server goes on.
    for path in ["/trap", "/error", "/hang"] {
        assert_eq!(
            request_with(server.addr, "GET", path, "", b"").status,
            500,
            "{path}"
        );
    }
    assert_eq!(request_with(server.addr, "GET", "/", "", b"").status, 200);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("GET /trap: the guest trapped"), "{log}");
    assert!(
        log.contains("GET /error: the guest answered with an error"),
        "{log}"
    );
    assert!(
        log.contains("GET /hang: the handler did not answer within 2s"),
        "{log}"
    );
}

#[test]
fn a_wasi_0_3_service_streams_64_mib_bodies_and_trailers() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let server = serve(&[], &service);
    let body: Vec<u8> = (0..64usize << 20).map(|i| (i % 251) as u8).collect();

    // The request's own stream and trailers handed back: host to host through the guest.
    let echo = request_with(
        server.addr,
        "POST",
        "/echo",
        "content-type: application/x-test\r\n",
        &body,
    );
    assert_eq!(echo.status, 200);
    assert!(
        echo.head.contains("content-type: application/x-test"),
        "{}",
        echo.head
    );
    assert_eq!(echo.body.len(), body.len());
    assert!(echo.body == body, "the echoed body differs");

    // Copied through guest memory, with a trailer the guest wrote.
    let copy = request_with(server.addr, "POST", "/copy", "", &body);
    assert_eq!(copy.status, 200);
    assert_eq!(copy.body.len(), body.len());
    assert!(copy.body == body, "the copied body differs");
    assert!(
        copy.trailers.contains(&format!("x-copied: {}", body.len())),
        "trailers: {:?}",
        copy.trailers
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn the_readme_wasi_0_3_service_and_client_examples_answer() {
    let example = weir_test_guests::workspace_root().join("examples/p3-http.wasm");
    let server = serve(&[], &example);
    let hello = request_with(server.addr, "GET", "/", "", b"");
    assert_eq!(
        (hello.status, text(&hello.body)),
        (200, "Hello from a WASI 0.3 service\n".to_string())
    );
    let echo = request_with(server.addr, "POST", "/echo", "", b"echo me");
    assert_eq!(text(&echo.body), "echo me");
    // The README's client example, as the README runs it against this service.
    let client = weir_test_guests::workspace_root().join("examples/p3-http-client.wasm");
    let authority = server.addr.to_string();
    let out = weir()
        .args(["run", "-S", "http", "--allow"])
        .arg(format!("http-request={authority}"))
        .arg(&client)
        .arg(&authority)
        .arg("/")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "200 Hello from a WASI 0.3 service\n");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn a_wasi_0_3_echo_hands_the_request_trailers_back() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let server = serve(&[], &service);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nhost: weir.test\r\nconnection: close\r\nte: trailers\r\n\
              trailer: x-sum\r\ntransfer-encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 42\r\n\r\n",
        )
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = text(&raw).to_ascii_lowercase();
    assert!(raw.starts_with("http/1.1 200"), "{raw}");
    let (_, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(body.contains("hello"), "{raw}");
    assert!(body.contains(" world"), "{raw}");
    assert!(
        body.contains("\r\nx-sum: 42\r\n"),
        "the trailer came back: {raw}"
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn a_wasi_0_3_service_sends_requests_through_the_client_under_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let upstream = serve(&[], &service);
    let up = upstream.addr.port();
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let allow_up = format!("http-request=127.0.0.1:{up}");
    let allow_dead = format!("http-request=127.0.0.1:{dead}");
    // `.invalid` names never resolve (RFC 6761).
    let nowhere = "weir-test.invalid";
    let allow_nowhere = format!("http-request={nowhere}:80");
    let front = serve(
        &[
            "--allow",
            &allow_up,
            "--allow",
            &allow_dead,
            "--allow",
            &allow_nowhere,
        ],
        &service,
    );
    let to = |authority: String, path: Option<&str>| {
        let mut extra = format!("x-target-authority: {authority}\r\n");
        if let Some(path) = path {
            extra += &format!("x-target-path: {path}\r\n");
        }
        extra
    };

    // Method, path with query, authority and headers reach the upstream.
    let info = request_with(
        front.addr,
        "PUT",
        "/fetch",
        &to(format!("127.0.0.1:{up}"), Some("/info?q=1")),
        b"",
    );
    assert_eq!(info.status, 200);
    assert_eq!(
        text(&info.body),
        format!(
            "method: Method::Put\nscheme: http\nauthority: 127.0.0.1:{up}\n\
             path-with-query: /info?q=1\nx-test: \nx-forwarded: weir\n"
        )
    );
    // A request whose path-with-query is none is sent as `/`.
    let root = request_with(
        front.addr,
        "GET",
        "/fetch",
        &to(format!("127.0.0.1:{up}"), None),
        b"",
    );
    assert_eq!(text(&root.body), "Hello from a WASI 0.3 service\n");
    // The upstream's status comes back as it is.
    let missing = request_with(
        front.addr,
        "GET",
        "/fetch",
        &to(format!("127.0.0.1:{up}"), Some("/nowhere")),
        b"",
    );
    assert_eq!(missing.status, 404);
    // A streamed body both ways: the guest's request body to the upstream's echo and back.
    let body: Vec<u8> = (0..8usize << 20).map(|i| (i % 251) as u8).collect();
    let echo = request_with(
        front.addr,
        "POST",
        "/fetch",
        &to(format!("127.0.0.1:{up}"), Some("/echo")),
        &body,
    );
    assert_eq!(echo.status, 200);
    assert_eq!(echo.body.len(), body.len());
    assert!(echo.body == body, "the body came back changed");

    // A GET's body goes on too (sent chunked: the client cannot know its size).
    let get_with_body = request_with(
        front.addr,
        "GET",
        "/fetch",
        &to(format!("127.0.0.1:{up}"), Some("/trailers")),
        b"hello",
    );
    assert_eq!(text(&get_with_body.body), "body 5; trailers none\n");

    // Send errors: a dead server, and an authority the policy does not allow.
    let refused = request_with(
        front.addr,
        "GET",
        "/fetch",
        &to(format!("127.0.0.1:{dead}"), Some("/")),
        b"",
    );
    assert_eq!(refused.status, 502);
    assert_eq!(
        text(&refused.body),
        "send failed: ErrorCode::ConnectionRefused\n"
    );
    // A name that does not resolve: a DNS error (a timeout, if the resolver never answers
    // within the connect timeout), not a connection error.
    let unresolved = request_with(
        front.addr,
        "GET",
        "/fetch",
        &to(format!("{nowhere}:80"), Some("/")),
        b"",
    );
    assert_eq!(unresolved.status, 502);
    let said = text(&unresolved.body);
    assert!(
        said.starts_with("send failed: ErrorCode::DnsError(")
            || said.starts_with("send failed: ErrorCode::DnsTimeout"),
        "{said}"
    );
    let denied = request_with(
        front.addr,
        "GET",
        "/fetch",
        &to("127.0.0.1:1".to_string(), Some("/")),
        b"",
    );
    assert_eq!(denied.status, 502);
    assert_eq!(
        text(&denied.body),
        "send failed: ErrorCode::HttpRequestDenied\n"
    );
    let (status, log) = front.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("denied http-request to 127.0.0.1:1"), "{log}");
    let (status, log) = upstream.terminate();
    assert!(status.success(), "{log}");
}

/// Sends a chunked POST with a trailer `x-sum: 42` (announced in `trailer`) and `extra`
/// header lines; returns the raw response, lowercased.
fn chunked_post_with_trailer(addr: SocketAddr, path: &str, extra: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: weir.test\r\nconnection: close\r\nte: trailers\r\n\
         trailer: x-sum\r\ntransfer-encoding: chunked\r\n{extra}\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 42\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    text(&raw).to_ascii_lowercase()
}

#[test]
fn wasi_0_3_request_trailers_reach_the_handler_and_go_on_through_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let upstream = serve(&[], &service);
    let allow = format!("http-request=127.0.0.1:{}", upstream.addr.port());
    let front = serve(&["--allow", &allow], &service);

    // A chunked body and its trailer, as the handler reads them.
    let direct = chunked_post_with_trailer(upstream.addr, "/trailers", "");
    assert!(direct.contains("body 11; trailers x-sum=42"), "{direct}");
    // The same request sent on by the client: chunked again, with the trailer.
    let extra = format!(
        "x-target-authority: 127.0.0.1:{}\r\nx-target-path: /trailers\r\n",
        upstream.addr.port()
    );
    let forwarded = chunked_post_with_trailer(front.addr, "/fetch", &extra);
    assert!(
        forwarded.contains("body 11; trailers x-sum=42"),
        "{forwarded}"
    );

    // A request built and dropped unsent resolves its transmission future to an error.
    let unsent = request_with(front.addr, "GET", "/unsent", "", b"");
    assert_eq!(
        text(&unsent.body),
        "Err(ErrorCode::InternalError(Some(\"the message was never sent\")))\n"
    );
    for server in [front, upstream] {
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
}

#[test]
fn weir_run_with_s_http_gives_a_wasi_0_3_command_the_http_client() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let upstream = serve(&[], &service);
    let authority = upstream.addr.to_string();
    let client = dir.path().join("p3-http-client.wasm");
    std::fs::write(
        &client,
        &*weir_test_guests::p3_guest("http_client").unwrap(),
    )
    .unwrap();
    let run = |flags: &[&str], path: Option<&str>| {
        weir()
            .arg("run")
            .args(flags)
            .arg(&client)
            .arg(&authority)
            .args(path)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["-S", "http"], Some("/info?via=run"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!(
            "200 method: Method::Get\nscheme: http\nauthority: {authority}\npath-with-query: /info?via=run\n"
        )),
        "{}",
        text(&out.stdout)
    );
    // No path: sent as `/`.
    let out = run(&["-S", "http"], None);
    assert_eq!(text(&out.stdout), "200 Hello from a WASI 0.3 service\n");
    // An `http-request` rule for another port decides alone: denied.
    let out = run(&["-S", "http", "--allow", "http-request=127.0.0.1:1"], None);
    assert_eq!(
        text(&out.stdout),
        "send failed: ErrorCode::HttpRequestDenied\n"
    );
    // Without `-S http`, wasi:http is not linked: the component is refused, naming it.
    let out = run(&[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("wasi:http/"),
        "{}",
        text(&out.stderr)
    );
    let (status, log) = upstream.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn wasi_0_3_response_trailers_that_fail_leave_the_response_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let server = serve(&[], &service);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /bad-trailers HTTP/1.1\r\nhost: weir.test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    // The connection ends without the last chunk (possibly with a reset).
    let _ = stream.read_to_end(&mut raw);
    let raw = text(&raw);
    // hyper may drop the connection before it flushed the head: either way the client must
    // not see a complete response (the last chunk), and what it sees is the guest's.
    assert!(raw.is_empty() || raw.starts_with("HTTP/1.1 200"), "{raw:?}");
    assert!(
        !raw.contains("\r\n0\r\n\r\n"),
        "the failed body looked complete: {raw:?}"
    );
    // The server goes on.
    assert_eq!(request_with(server.addr, "GET", "/", "", b"").status, 200);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn a_reused_wasi_0_3_instance_serves_many_requests_and_is_replaced_after_a_trap() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let server = serve(&["--max-instance-reuse-count", "4"], &service);
    // One request after another: each finds its instance idle and goes to it, up to 4;
    // then the pool makes a new instance, whose count starts again. (A request that comes
    // before the last one's slot was given back may start a parallel instance: so only
    // the bounds are certain.)
    let counts: Vec<u32> = (0..10)
        .map(|_| {
            let count = request_with(server.addr, "GET", "/count", "", b"");
            text(&count.body).trim().parse().unwrap()
        })
        .collect();
    assert!(
        counts.iter().all(|count| (1..=4).contains(count)) && counts.contains(&4),
        "instances answer up to 4 requests each: {counts:?}"
    );
    let body: Vec<u8> = (0..8usize << 20).map(|i| (i % 251) as u8).collect();
    let echo = request_with(server.addr, "POST", "/echo", "", &body);
    assert!(echo.body == body, "the echoed body differs");
    // Concurrent requests share an instance.
    let addr = server.addr;
    let clients: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || request_with(addr, "GET", "/info", "", b"").status))
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), 200);
    }
    // A trap ends its instance; the next request gets a new one.
    assert_eq!(
        request_with(server.addr, "GET", "/trap", "", b"").status,
        500
    );
    assert_eq!(request_with(server.addr, "GET", "/", "", b"").status, 200);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("a reused instance stopped"), "{log}");
}

/// A one-connection HTTP/1.1 server on a thread: reads a request (its head, and with
/// `whole` a chunked body up to its last chunk, or until the client gives up), writes
/// `reply` as it is, and keeps the connection open for `stall` before closing it. Returns
/// its address and what it received.
fn scripted_upstream(
    reply: &'static [u8],
    stall: Duration,
    whole: bool,
) -> (SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (received, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        let complete = |request: &[u8]| {
            let Some(split) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
                return false;
            };
            let head = text(&request[..split]).to_ascii_lowercase();
            !whole
                || !head.contains("transfer-encoding: chunked")
                || (request.windows(5).any(|w| w == b"\r\n0\r\n") && request.ends_with(b"\r\n\r\n"))
        };
        while !complete(&request) {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }
        let _ = received.send(request);
        let _ = stream.write_all(reply);
        std::thread::sleep(stall);
    });
    (addr, receiver)
}

/// A `/fetch-report` through `front` to `upstream` with `extra` header lines: what the
/// guest's client received, as the guest reports it.
fn fetch_report(front: SocketAddr, upstream: SocketAddr, extra: &str) -> String {
    let headers = format!("x-target-authority: {upstream}\r\nx-target-path: /up\r\n{extra}");
    let answer = request_with(front, "GET", "/fetch-report", &headers, b"");
    assert_eq!(answer.status, 200);
    text(&answer.body)
}

#[test]
fn a_wasi_0_3_client_reads_response_trailers_and_their_errors_and_keeps_its_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let upstreams = [
        // Trailers after the body.
        scripted_upstream(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-up\r\n\r\n\
              7\r\npartial\r\n0\r\nx-up: 1\r\n\r\n",
            Duration::ZERO,
            true,
        ),
        // A body cut short: the connection closes before its last chunk.
        scripted_upstream(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n7\r\npartial\r\n",
            Duration::ZERO,
            true,
        ),
        // No answer within the first-byte timeout.
        scripted_upstream(b"", Duration::from_secs(10), true),
        // A head and some body, then nothing within the between-bytes timeout.
        scripted_upstream(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n7\r\npartial\r\n",
            Duration::from_secs(10),
            true,
        ),
        // A request whose trailers fail: the upstream must not see a complete body.
        scripted_upstream(b"", Duration::ZERO, true),
    ];
    let [.., upload] = &upstreams;
    // Answers before reading the body, and closes the connection.
    let early = scripted_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        Duration::ZERO,
        false,
    );
    // A GET without a body, passed on as it came.
    let bodiless = scripted_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        Duration::ZERO,
        true,
    );
    let allow: Vec<String> = upstreams
        .iter()
        .chain([&early, &bodiless])
        .map(|(addr, _)| format!("--allow=http-request=127.0.0.1:{}", addr.port()))
        .collect();
    let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
    let front = serve(&allow, &service);
    let [trailers, cut, silent, stalled, _] = &upstreams;

    assert_eq!(
        fetch_report(front.addr, trailers.0, ""),
        "status 200; body partial; trailers x-up=1\n"
    );
    assert_eq!(
        fetch_report(front.addr, cut.0, ""),
        "status 200; body partial; trailers ErrorCode::HttpResponseIncomplete\n"
    );
    assert_eq!(
        fetch_report(front.addr, silent.0, "x-first-byte-timeout-ms: 300\r\n"),
        "send failed: ErrorCode::ConnectionReadTimeout\n"
    );
    assert_eq!(
        fetch_report(front.addr, stalled.0, "x-between-bytes-timeout-ms: 300\r\n"),
        "status 200; body partial; trailers ErrorCode::ConnectionReadTimeout\n"
    );

    let headers = format!("x-target-authority: {}\r\n", upload.0);
    let answer = request_with(front.addr, "GET", "/send-bad-trailers", &headers, b"");
    let report = text(&answer.body);
    assert!(
        report
            .ends_with("transmission: Err(ErrorCode::InternalError(Some(\"trailers failed\")))\n"),
        "{report}"
    );
    assert!(!report.starts_with("send: response"), "{report}");
    let received = text(&upload.1.recv_timeout(Duration::from_secs(20)).unwrap());
    // hyper aborts the connection, possibly before its buffered head and data went out:
    // what the upstream saw may be anything but a complete body.
    assert!(
        !received.contains("\r\n0\r\n"),
        "the body looked complete: {received}"
    );

    // The transmission future reports a body that never went out: the connection closed
    // once the response came, before the guest wrote its 16 MiB body. (A body small
    // enough for the socket's buffer may be taken by the kernel after the peer closed:
    // HTTP/1.1 cannot tell that one apart from a transmitted body.)
    let headers = format!("x-target-authority: {}\r\n", early.0);
    let answer = request_with(front.addr, "GET", "/send-after-response", &headers, b"");
    assert_eq!(
        text(&answer.body),
        "send: response 200; transmission: Err(ErrorCode::ConnectionTerminated)\n"
    );

    // A GET whose body is known to be empty goes without body framing.
    assert_eq!(
        fetch_report(front.addr, bodiless.0, ""),
        "status 200; body ok; trailers none\n"
    );
    let received = text(&bodiless.1.recv_timeout(Duration::from_secs(20)).unwrap());
    assert!(received.starts_with("GET /up HTTP/1.1\r\n"), "{received}");
    assert!(!received.contains("transfer-encoding"), "{received}");
    assert!(!received.contains("content-length"), "{received}");

    let (status, log) = front.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn dropping_a_wasi_0_3_request_or_response_closes_the_streams_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let server = serve(&[], &service);
    let answer = request_with(server.addr, "GET", "/drop-with-body", "", b"");
    assert_eq!(
        text(&answer.body),
        "request: 4 bytes unwritten, trailers taken false; \
         response: 4 bytes unwritten, trailers taken false\n"
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// Asks `/report-transmission` for `bytes` bytes (and failing trailers with `fail`); with
/// `leave`, reads only the start of the response and closes the connection.
fn ask_for_transmission_report(addr: SocketAddr, bytes: usize, fail: bool, leave: bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let fail = if fail { "x-fail-trailers: 1\r\n" } else { "" };
    write!(
        stream,
        "GET /report-transmission HTTP/1.1\r\nhost: weir.test\r\nconnection: close\r\n\
         te: trailers\r\nx-body-bytes: {bytes}\r\n{fail}\r\n"
    )
    .unwrap();
    if leave {
        let mut start = [0u8; 64];
        stream.read_exact(&mut start).unwrap();
        assert!(text(&start).starts_with("HTTP/1.1 200"), "{}", text(&start));
        return;
    }
    let mut raw = Vec::new();
    // A failed body ends the connection without its last chunk (possibly with a reset).
    let _ = stream.read_to_end(&mut raw);
    if !fail.is_empty() {
        assert!(!text(&raw).contains("\r\n0\r\n"), "{}", text(&raw));
    } else {
        assert!(text(&raw).ends_with("\r\n0\r\n\r\n"), "{}", text(&raw));
    }
}

#[test]
fn a_wasi_0_3_response_transmission_future_says_whether_the_client_got_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    for reuse in [&[][..], &["--max-instance-reuse-count", "8"][..]] {
        let server = serve(reuse, &service);
        // The guest prints its transmission future's value from a task that goes on after
        // the response: the instance must live until that task exited.
        ask_for_transmission_report(server.addr, 5, false, false);
        server.wait_for_log("response transmission: Ok(())");
        ask_for_transmission_report(server.addr, 5, true, false);
        server.wait_for_log(
            r#"response transmission: Err(ErrorCode::InternalError(Some("trailers failed")))"#,
        );
        // A client that goes away mid-body: hyper drops the body.
        ask_for_transmission_report(server.addr, 64 << 20, false, true);
        server.wait_for_log("response transmission: Err(ErrorCode::ConnectionTerminated)");
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
        assert_eq!(
            log.matches("response transmission: ").count(),
            3,
            "one report per response ({reuse:?}):\n{log}"
        );
    }
}

#[test]
fn a_wasi_0_3_guest_running_on_after_its_response_is_stopped_at_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    for reuse in [&[][..], &["--max-instance-reuse-count", "1000"][..]] {
        let args = [&["--request-timeout", "1"][..], reuse].concat();
        let server = serve(&args, &service);
        let answer = request_with(server.addr, "GET", "/linger", "", b"");
        assert_eq!(
            (answer.status, text(&answer.body)),
            (200, "lingering\n".into())
        );
        if reuse.is_empty() {
            // The instance of the request waits for its task, then is stopped.
            server.wait_for_log("the guest still ran after its response");
        }
        // Meanwhile (and after) the server answers.
        assert_eq!(request_with(server.addr, "GET", "/", "", b"").status, 200);
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
}

#[test]
fn the_request_limit_holds_across_the_server_threads() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let server = serve(
        &["--max-concurrent-requests", "1", "--request-timeout", "5"],
        &service,
    );
    let addr = server.addr;
    // One request holds the only slot until its timeout.
    let hold =
        move || std::thread::spawn(move || request_with(addr, "GET", "/hang", "", b"").status);
    let mut hanging = hold();
    // Once it holds the slot, every other connection, whichever thread's listener the
    // kernel gives it to, finds the limit reached (each request on a new connection).
    // (A probe can take the slot first; the held request then gets the 503 and goes again.)
    let start = std::time::Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the slot was never held"
        );
        if hanging.is_finished() {
            assert_eq!(hanging.join().unwrap(), 503);
            hanging = hold();
        }
        std::thread::sleep(Duration::from_millis(50));
        if request_with(addr, "GET", "/", "", b"").status == 503 && !hanging.is_finished() {
            break;
        }
    }
    let statuses: Vec<u16> = (0..8)
        .map(|_| request_with(addr, "GET", "/", "", b"").status)
        .collect();
    assert_eq!(statuses, [503; 8], "one limit for all threads");
    assert_eq!(hanging.join().unwrap(), 500, "the held request timed out");
    assert_eq!(request_with(addr, "GET", "/", "", b"").status, 200);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn serve_takes_a_number_of_server_threads() {
    let hello = weir_test_guests::workspace_root().join("examples/http-hello.wasm");
    for threads in ["1", "3"] {
        let server = serve(&["--threads", threads], &hello);
        // Several connections, whichever thread takes each.
        for _ in 0..6 {
            assert_eq!(request_with(server.addr, "GET", "/", "", b"").status, 200);
        }
        let tasks = format!("/proc/{}/task", server.child.id());
        let serving = std::fs::read_dir(tasks)
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("weir-serve-"))
            .count();
        assert_eq!(serving.to_string(), threads, "server threads");
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
    assert_serve_refuses(&["--threads", "0"], &hello, 2, "--threads");
}

#[test]
fn a_sigterm_right_after_the_banner_stops_the_server_gracefully() {
    let hello = weir_test_guests::workspace_root().join("examples/http-hello.wasm");
    for _ in 0..5 {
        // `terminate` sends SIGTERM as soon as the banner was read.
        let (status, log) = serve(&[], &hello).terminate();
        assert!(status.success(), "{status:?}: {log}");
        assert!(log.contains("weir serve: stopped"), "{log}");
    }
}

#[test]
fn a_reused_instance_idle_past_its_timeout_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let service = p3_service_file(dir.path());
    let count = |server: &Serving| {
        let answer = request_with(server.addr, "GET", "/count", "", b"");
        text(&answer.body).trim().parse::<u32>().unwrap()
    };
    // Kept for 0.5 s without a request: after 1.5 s the next request gets a new instance
    // (its count starts again). With 0, the instance is kept until it is used up.
    for (idle_timeout, count_after_a_pause) in [("0.5", 1), ("0", 3)] {
        let server = serve(
            &[
                "--max-instance-reuse-count",
                "100",
                "--threads",
                "1",
                "--idle-instance-timeout",
                idle_timeout,
            ],
            &service,
        );
        assert_eq!(count(&server), 1);
        assert_eq!(count(&server), 2, "reused while not idle for long");
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            count(&server),
            count_after_a_pause,
            "idle timeout {idle_timeout}"
        );
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
}

#[test]
fn serve_refuses_seconds_that_are_not_a_duration() {
    let hello = weir_test_guests::workspace_root().join("examples/http-hello.wasm");
    for flag in ["--request-timeout", "--idle-instance-timeout"] {
        for value in ["inf", "NaN", "1e300", "-1", "soon"] {
            let arg = format!("{flag}={value}");
            assert_serve_refuses(&[&arg], &hello, 2, "is not a number of seconds");
        }
    }
}
