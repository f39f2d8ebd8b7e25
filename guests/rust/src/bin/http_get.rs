//! `http_get URL`: a command that fetches URL with `wasi:http/outgoing-handler` and prints
//! the status line, then the body. A failure prints its `error-code` to stderr and exits 1.
use std::io::Write;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

fn fail(what: &str, detail: impl std::fmt::Debug) -> ! {
    eprintln!("http_get: {what}: {detail:?}");
    std::process::exit(1);
}

fn main() {
    let url = std::env::args().nth(1).unwrap_or_else(|| fail("usage", "http_get URL"));
    let (scheme, rest) = url.split_once("://").unwrap_or_else(|| fail("bad URL", &url));
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    request.set_scheme(Some(&scheme)).unwrap_or_else(|()| fail("set-scheme", ()));
    request.set_authority(Some(authority)).unwrap_or_else(|()| fail("set-authority", ()));
    request.set_path_with_query(Some(path)).unwrap_or_else(|()| fail("set-path", ()));
    request.set_method(&Method::Get).unwrap_or_else(|()| fail("set-method", ()));
    let body = request.body().unwrap_or_else(|()| fail("body", ()));
    OutgoingBody::finish(body, None).unwrap_or_else(|code| fail("finish", code));

    let pending = outgoing_handler::handle(request, None).unwrap_or_else(|code| fail("handle", code));
    let response = loop {
        match pending.get() {
            Some(result) => break result,
            None => pending.subscribe().block(),
        }
    };
    let response = match response {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => fail("response", code),
        Err(()) => fail("response", "taken twice"),
    };
    println!("status {}", response.status());
    let body = response.consume().unwrap_or_else(|()| fail("consume", ()));
    let input = body.stream().unwrap_or_else(|()| fail("stream", ()));
    let mut stdout = std::io::stdout();
    loop {
        match input.blocking_read(64 * 1024) {
            Ok(chunk) => stdout.write_all(&chunk).unwrap_or_else(|e| fail("stdout", e)),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => fail("body", error.to_debug_string()),
        }
    }
    drop(input);
    drop(IncomingBody::finish(body));
    stdout.flush().unwrap_or_else(|e| fail("stdout", e));
}
