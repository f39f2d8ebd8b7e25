//! Test handler for Weir's `wasi:http` tests; the request path picks what it does:
//!
//! - `/hello`: 200 `hello`.
//! - `/info`: 200, the request as text (method, scheme, authority, path, headers).
//! - `/trap`: traps. `/no-response`: returns without setting a response.
//! - `/sleep/MS`: waits MS milliseconds, then 200 `slept`.
//! - `/fields`: exercises `fields` validation and immutability; one line per check.
//! - `/consume-twice`: `incoming-request.consume` twice; says which calls succeeded.
//! - `/fetch`: makes an outgoing request described by `x-*` request headers (see
//!   [`Fetch::from_headers`]) and answers with the upstream response (status in
//!   `x-upstream-status`, body streamed, trailers forwarded) or 502 and the error.

#[path = "../../common.rs"]
mod common;

use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, HeaderError, IncomingBody, IncomingRequest, Method, OutgoingBody,
    OutgoingRequest, OutgoingResponse, RequestOptions, ResponseOutparam, Scheme,
};
use wasip2::io::streams::StreamError;

struct Probe;

impl wasip2::exports::http::incoming_handler::Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let route = path.split('?').next().unwrap_or("");
        match route {
            "/hello" => common::respond(out, 200, &[], b"hello"),
            "/info" => info(&request, out),
            "/trap" => panic!("probe: asked to trap"),
            "/no-response" => {}
            "/fields" => common::respond(out, 200, &[], fields_checks().as_bytes()),
            "/consume-twice" => {
                let first = request.consume().is_ok();
                let second = request.consume().is_ok();
                let text = format!("first: {first}, second: {second}");
                common::respond(out, 200, &[], text.as_bytes());
            }
            "/fetch" => fetch(request, out),
            _ => match route.strip_prefix("/sleep/").and_then(|ms| ms.parse::<u64>().ok()) {
                Some(ms) => {
                    wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                    common::respond(out, 200, &[], b"slept");
                }
                None => common::respond(out, 404, &[], b"no such probe route"),
            },
        }
    }
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}

fn info(request: &IncomingRequest, out: ResponseOutparam) {
    let scheme = match request.scheme() {
        Some(Scheme::Http) => "http".to_string(),
        Some(Scheme::Https) => "https".to_string(),
        Some(Scheme::Other(other)) => other,
        None => "-".to_string(),
    };
    let mut text = format!(
        "method: {}\nscheme: {scheme}\nauthority: {}\npath: {}\n",
        method_name(&request.method()),
        request.authority().unwrap_or_else(|| "-".into()),
        request.path_with_query().unwrap_or_else(|| "-".into()),
    );
    for (name, value) in request.headers().entries() {
        text.push_str(&format!("header {name}: {}\n", String::from_utf8_lossy(&value)));
    }
    common::respond(out, 200, &[], text.as_bytes());
}

fn outcome<T>(result: Result<T, HeaderError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(HeaderError::InvalidSyntax) => "invalid-syntax".into(),
        Err(HeaderError::Forbidden) => "forbidden".into(),
        Err(HeaderError::Immutable) => "immutable".into(),
    }
}

fn fields_checks() -> String {
    let list = |name: &str, value: &[u8]| Fields::from_list(&[(name.to_string(), value.to_vec())]);
    let mut lines = vec![
        format!("from-list bad name: {}", outcome(list("bad name", b"v"))),
        format!("from-list empty name: {}", outcome(list("", b"v"))),
        format!("from-list bad value: {}", outcome(list("x-a", b"bad\nvalue"))),
        format!("from-list forbidden: {}", outcome(list("Connection", b"close"))),
        format!("from-list host: {}", outcome(list("host", b"example.com"))),
        format!("from-list ok: {}", outcome(list("X-Mixed-Case", b"v"))),
    ];
    let fields = Fields::new();
    lines.push(format!("append: {}", outcome(fields.append("X-Multi", b"1"))));
    lines.push(format!("append again: {}", outcome(fields.append("x-multi", b"2"))));
    lines.push(format!("append forbidden: {}", outcome(fields.append("transfer-encoding", b"chunked"))));
    lines.push(format!("set bad value: {}", outcome(fields.set("x-a", &[b"ok".to_vec(), b"\r".to_vec()]))));
    let values: Vec<String> = fields
        .get("X-MULTI")
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    lines.push(format!("get case-insensitive: {}", values.join(",")));
    lines.push(format!("has: {}", fields.has("x-multi")));
    let names: Vec<String> = fields.entries().into_iter().map(|(n, _)| n).collect();
    lines.push(format!("entries keep case: {}", names.join(",")));
    lines.push(format!("delete: {}", outcome(fields.delete("x-multi"))));
    lines.push(format!("has after delete: {}", fields.has("x-multi")));

    let request = OutgoingRequest::new(Fields::new());
    let frozen = request.headers();
    lines.push(format!("request headers append: {}", outcome(frozen.append("x-a", b"1"))));
    lines.push(format!("request headers set: {}", outcome(frozen.set("x-a", &[b"1".to_vec()]))));
    lines.push(format!("request headers delete: {}", outcome(frozen.delete("x-a"))));
    let copy = frozen.clone();
    lines.push(format!("clone is mutable: {}", outcome(copy.append("x-a", b"1"))));
    lines.push(format!("set-method bad: {}", request.set_method(&Method::Other("bad method".into())).is_ok()));
    lines.push(format!("set-authority bad: {}", request.set_authority(Some("a b")).is_ok()));
    lines.push(format!("set-path bad: {}", request.set_path_with_query(Some("/a b")).is_ok()));
    lines.push(format!("set-scheme bad: {}", request.set_scheme(Some(&Scheme::Other("a b".into()))).is_ok()));
    let response = OutgoingResponse::new(Fields::new());
    lines.push(format!("status 99: {}", response.set_status_code(99).is_ok()));
    lines.push(format!("status 1000: {}", response.set_status_code(1000).is_ok()));
    lines.push(format!("status 204: {}", response.set_status_code(204).is_ok()));
    lines.push(format!("body once: {}", response.body().is_ok()));
    lines.push(format!("body twice: {}", response.body().is_ok()));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// An outgoing request described by the incoming request's `x-*` headers.
struct Fetch {
    /// `x-url`: `scheme://authority/path?query` (required).
    url: String,
    /// `x-method`: the method (default GET).
    method: Method,
    /// `x-send`: send this many pattern bytes as the body.
    send: Option<u64>,
    /// `x-forward-body`: stream the incoming request's body as the outgoing body.
    forward_body: bool,
    /// `x-content-length`: declare this content-length on the outgoing request.
    content_length: Option<String>,
    /// `x-trailer`: `name=value`, sent as a trailer of the outgoing body.
    trailer: Option<(String, String)>,
    /// `x-header`: `name=value`, sent as a header of the outgoing request.
    header: Option<(String, String)>,
    connect_timeout_ms: Option<u64>,
    first_byte_timeout_ms: Option<u64>,
    between_bytes_timeout_ms: Option<u64>,
}

impl Fetch {
    fn from_headers(headers: &Fields) -> Fetch {
        let one = |name: &str| {
            headers
                .get(name)
                .first()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let pair = |name: &str| {
            one(name).and_then(|v| v.split_once('=').map(|(a, b)| (a.to_string(), b.to_string())))
        };
        let number = |name: &str| one(name).and_then(|v| v.parse::<u64>().ok());
        let method = match one("x-method").as_deref() {
            None | Some("GET") => Method::Get,
            Some("POST") => Method::Post,
            Some("PUT") => Method::Put,
            Some("HEAD") => Method::Head,
            Some(other) => Method::Other(other.to_string()),
        };
        Fetch {
            url: one("x-url").unwrap_or_default(),
            method,
            send: number("x-send"),
            forward_body: one("x-forward-body").is_some(),
            content_length: one("x-content-length"),
            trailer: pair("x-trailer"),
            header: pair("x-header"),
            connect_timeout_ms: number("x-connect-timeout-ms"),
            first_byte_timeout_ms: number("x-first-byte-timeout-ms"),
            between_bytes_timeout_ms: number("x-between-bytes-timeout-ms"),
        }
    }
}

fn fail(out: ResponseOutparam, what: &str, detail: String) {
    common::respond(out, 502, &[], format!("{what}: {detail}\n").as_bytes());
}

fn stream_failure(error: StreamError) -> String {
    match error {
        StreamError::Closed => "closed".into(),
        StreamError::LastOperationFailed(error) => {
            match wasip2::http::types::http_error_code(&error) {
                Some(code) => format!("{code:?}"),
                None => error.to_debug_string(),
            }
        }
    }
}

fn fetch(request: IncomingRequest, out: ResponseOutparam) {
    let spec = Fetch::from_headers(&request.headers());
    let (scheme, rest) = match spec.url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_string(), rest.to_string()),
        None => return fail(out, "bad x-url", spec.url.clone()),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (rest[..at].to_string(), rest[at..].to_string()),
        None => (rest.clone(), "/".to_string()),
    };
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(length) = &spec.content_length {
        entries.push(("content-length".into(), length.as_bytes().to_vec()));
    }
    if let Some((name, value)) = &spec.header {
        entries.push((name.clone(), value.as_bytes().to_vec()));
    }
    let headers = match Fields::from_list(&entries) {
        Ok(headers) => headers,
        Err(error) => return fail(out, "headers", outcome::<()>(Err(error))),
    };
    let outgoing = OutgoingRequest::new(headers);
    let scheme = match scheme.as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    if outgoing.set_scheme(Some(&scheme)).is_err() {
        return fail(out, "set-scheme", "refused".into());
    }
    if outgoing.set_authority(Some(&authority)).is_err() {
        return fail(out, "set-authority", "refused".into());
    }
    if outgoing.set_path_with_query(Some(&path)).is_err() {
        return fail(out, "set-path-with-query", "refused".into());
    }
    if outgoing.set_method(&spec.method).is_err() {
        return fail(out, "set-method", "refused".into());
    }
    let options = RequestOptions::new();
    let ms = |ms: u64| Duration::from_millis(ms).as_nanos() as u64;
    if let Some(t) = spec.connect_timeout_ms {
        let _ = options.set_connect_timeout(Some(ms(t)));
    }
    if let Some(t) = spec.first_byte_timeout_ms {
        let _ = options.set_first_byte_timeout(Some(ms(t)));
    }
    if let Some(t) = spec.between_bytes_timeout_ms {
        let _ = options.set_between_bytes_timeout(Some(ms(t)));
    }
    let body = outgoing.body().expect("the body is taken once");
    let pending = match outgoing_handler::handle(outgoing, Some(options)) {
        Ok(pending) => pending,
        Err(code) => return fail(out, "handle", format!("{code:?}")),
    };

    // The body goes out while the response is awaited.
    let stream = body.write().expect("the stream is taken once");
    let written = if spec.forward_body {
        let incoming = request.consume().expect("the body is taken once");
        let input = incoming.stream().expect("the stream is taken once");
        let copied = common::copy(&input, &stream).map(|_| ());
        drop(input);
        drop(IncomingBody::finish(incoming));
        copied
    } else if let Some(count) = spec.send {
        // A whole number of periods, so that the pattern runs on across writes.
        let pattern: Vec<u8> = (0..251 * 261).map(|i| (i % 251) as u8).collect();
        let mut left = count;
        let mut result = Ok(());
        while left > 0 && result.is_ok() {
            let n = left.min(pattern.len() as u64) as usize;
            result = common::write_all(&stream, &pattern[..n]);
            left -= n as u64;
        }
        result
    } else {
        Ok(())
    };
    let written = written.and_then(|()| common::flush(&stream));
    drop(stream);
    if let Err(error) = written {
        drop(body);
        return fail(out, "body-write", stream_failure(error));
    }
    let trailers = spec.trailer.as_ref().map(|(name, value)| {
        common::headers(&[(name.as_str(), value.as_bytes())])
    });
    if let Err(code) = OutgoingBody::finish(body, trailers) {
        return fail(out, "body-finish", format!("{code:?}"));
    }

    // `get` is `none` until the response is ready (`/slow-head`'s is not, at once).
    let at_once = pending.get();
    let ready_at_once = at_once.is_some();
    let answer = match at_once {
        Some(answer) => Some(answer),
        None => {
            pending.subscribe().block();
            pending.get()
        }
    };
    let upstream = match answer {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return fail(out, "response", format!("{code:?}")),
        Some(Err(())) => return fail(out, "response", "taken twice".into()),
        None => return fail(out, "response", "not ready after its pollable".into()),
    };
    // The response has been taken: `get` is now `some(err)`.
    let taken_again = matches!(pending.get(), Some(Err(())));
    let status = upstream.status();
    let headers = Fields::new();
    let _ = headers.append("x-get-ready-at-once", ready_at_once.to_string().as_bytes());
    let _ = headers.append("x-get-again-is-err", taken_again.to_string().as_bytes());
    let _ = headers.append("x-upstream-status", status.to_string().as_bytes());
    for (name, value) in upstream.headers().entries() {
        if name.to_ascii_lowercase().starts_with("x-") || name.eq_ignore_ascii_case("content-type") {
            let _ = headers.append(&name, &value);
        }
    }
    let response = OutgoingResponse::new(headers);
    let outgoing_body = response.body().expect("the body is taken once");
    let upstream_body = upstream.consume().expect("the body is taken once");
    let input = upstream_body.stream().expect("the stream is taken once");
    let output = outgoing_body.write().expect("the stream is taken once");
    ResponseOutparam::set(out, Ok(response));
    let copied = common::copy(&input, &output).and_then(|_| common::flush(&output));
    drop(input);
    drop(output);
    let future = IncomingBody::finish(upstream_body);
    future.subscribe().block();
    let trailers = match future.get() {
        Some(Ok(Ok(Some(trailers)))) => Some(trailers.clone()),
        _ => None,
    };
    match copied {
        Ok(()) => {
            let _ = OutgoingBody::finish(outgoing_body, trailers);
        }
        // The response has started: dropping the body without finishing it tells the
        // client the body was cut short.
        Err(_error) => drop(outgoing_body),
    }
}


wasip2::http::proxy::export!(Probe);
