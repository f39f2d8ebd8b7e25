#![allow(dead_code)] // Each guest uses only some of these.

//! Helpers shared by the HTTP guests (included with `#[path]`, as each guest is its own cdylib).

use wasip2::http::types::{
    Fields, Headers, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse,
    ResponseOutparam, StatusCode,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Writes all of `bytes`, never more than the permit `check-write` just granted.
pub fn write_all(out: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let permit = out.check_write()?;
        if permit == 0 {
            out.subscribe().block();
            continue;
        }
        let n = bytes.len().min(usize::try_from(permit).unwrap_or(usize::MAX));
        out.write(&bytes[..n])?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Flushes and waits until the flush has completed.
pub fn flush(out: &OutputStream) -> Result<(), StreamError> {
    out.flush()?;
    loop {
        if out.check_write()? > 0 {
            return Ok(());
        }
        out.subscribe().block();
    }
}

/// Copies `input` to `out` until `input` ends; returns the bytes copied.
pub fn copy(input: &InputStream, out: &OutputStream) -> Result<u64, StreamError> {
    let mut copied = 0u64;
    loop {
        match input.blocking_read(64 * 1024) {
            Ok(chunk) => {
                write_all(out, &chunk)?;
                copied += chunk.len() as u64;
            }
            Err(StreamError::Closed) => return Ok(copied),
            Err(error) => return Err(error),
        }
    }
}

/// Headers from `(name, value)` pairs; panics (a trap) on a pair the host refuses, which
/// these guests never build.
pub fn headers(entries: &[(&str, &[u8])]) -> Headers {
    let list: Vec<(String, Vec<u8>)> = entries
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_vec()))
        .collect();
    Fields::from_list(&list).expect("guest-built headers are valid")
}

/// Sends a whole response: status, headers and body.
pub fn respond(out: ResponseOutparam, status: StatusCode, entries: &[(&str, &[u8])], body: &[u8]) {
    let response = OutgoingResponse::new(headers(entries));
    response
        .set_status_code(status)
        .expect("a valid status code");
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("the stream is taken once");
    let written = write_all(&stream, body).and_then(|()| flush(&stream));
    drop(stream);
    if written.is_ok() {
        let _ = OutgoingBody::finish(outgoing, None);
    }
}

/// Answers `request` with its own body, moved by `forward` from the request's stream to the
/// response's, and the request's `content-type`; the body is finished if `forward` succeeds.
pub fn echo(
    request: IncomingRequest,
    out: ResponseOutparam,
    forward: impl FnOnce(&InputStream, &OutputStream) -> Result<(), StreamError>,
) {
    let headers = Fields::new();
    for value in request.headers().get("content-type") {
        let _ = headers.append("content-type", &value);
    }
    let response = OutgoingResponse::new(headers);
    let outgoing = response.body().expect("the body is taken once");
    ResponseOutparam::set(out, Ok(response));

    let incoming = request.consume().expect("the body is taken once");
    let input = incoming.stream().expect("the stream is taken once");
    let output = outgoing.write().expect("the stream is taken once");
    let forwarded = forward(&input, &output);
    drop(input);
    drop(output);
    drop(IncomingBody::finish(incoming));
    if forwarded.is_ok() {
        let _ = OutgoingBody::finish(outgoing, None);
    }
}
