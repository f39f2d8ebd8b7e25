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
/// its stderr is collected by a thread.
struct Serving {
    child: Child,
    addr: SocketAddr,
    stderr: std::thread::JoinHandle<String>,
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
    let stderr = std::thread::spawn(move || {
        let mut rest = first;
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    Serving {
        child,
        addr,
        stderr,
    }
}

impl Serving {
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = self.child.wait().unwrap();
        (status, self.stderr.join().unwrap())
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
        let out = weir()
            .args(["serve", "--addr", "127.0.0.1:0"])
            .arg(root.join(file))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{file}");
        assert!(
            text(&out.stderr).contains(needle),
            "{file}: {}",
            text(&out.stderr)
        );
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let out = weir()
        .args(["serve", "--addr", &taken])
        .arg(root.join("examples/http-hello.wasm"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("cannot listen on {taken}")),
        "{}",
        text(&out.stderr)
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
