//! A WASI 0.3 HTTP service (`wasi:http/service`) for the tests and `examples/p3-http.wasm`:
//!
//! - `/`: a greeting;
//! - `/echo`: the request's body stream and trailers future handed back as the response's
//!   (nothing passes through guest memory), with the request's `content-type` and
//!   `trailer` headers;
//! - `/copy`: the body read into guest memory and written to a new response stream, 64 KiB
//!   at a time, with a trailer `x-copied` counting the bytes (announced in `trailer`);
//! - `/info`: the method, scheme, authority, path-with-query, `x-test` and `x-forwarded`
//!   headers the handler sees, one per line;
//! - `/fetch`: sends the request on through `wasi:http/client` (see [`fetch`]);
//! - `/fetch-report`: the same, then reads the whole response and answers with its status,
//!   body and trailers (or the send error) as text;
//! - `/send-bad-trailers`: sends `partial` to `x-target-authority` with trailers that
//!   resolve to an error, and answers with the send's and the transmission future's results;
//! - `/send-after-response`: the same, but a 16 MiB body (and trailers that succeed) is
//!   written only after the response arrived;
//! - `/drop-with-body`: builds a request and a response with contents streams and trailers
//!   futures, drops both, and answers with what writing to those streams and futures gives;
//! - `/trailers`: reads the body, then answers with its size and the request's trailers;
//! - `/bad-trailers`: some body, then a trailers future that resolves to an error;
//! - `/unsent`: builds a request, drops it unsent and answers with its transmission
//!   future's result;
//! - `/report-transmission`: answers with `x-body-bytes` bytes (default 5) and trailers
//!   that fail if `x-fail-trailers` is set, and prints the response's transmission
//!   future's result to stderr (`response transmission: ...`);
//! - `/linger`: answers, and goes on waiting for an hour after its response;
//! - `/count`: how many `/count` requests this instance answered, this one included;
//! - `/trap`: traps; `/hang`: never answers;
//! - `/error`: answers with `err(internal-error)`.

use wasip3::exports::http::handler::Guest;
use wasip3::http::types::{ErrorCode, Fields, Method, Request, RequestOptions, Response, Scheme};
use wasip3::wit_bindgen::StreamResult;
use wasip3::{wit_future, wit_stream};

struct Service;

/// `/count` requests this instance answered.
static COUNTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A response with `status`, `headers` and a body written from `text`.
fn text_response(text: String) -> Response {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .expect("valid headers");
    let (mut writer, contents) = wit_stream::new();
    let (_, trailers) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(contents), trailers);
    wasip3::spawn_local(async move {
        let _ = writer.write_all(text.into_bytes()).await;
    });
    response
}

fn scheme_name(scheme: Option<Scheme>) -> String {
    match scheme {
        None => "none".into(),
        Some(Scheme::Http) => "http".into(),
        Some(Scheme::Https) => "https".into(),
        Some(Scheme::Other(other)) => other,
    }
}

/// Sends the request on with `wasi:http/client`: to the authority in `x-target-authority`,
/// the path in `x-target-path` (none when absent), the same method, body and trailers (and
/// `trailer` header), plus a header `x-forwarded: weir`, with the timeouts of
/// `x-first-byte-timeout-ms` and `x-between-bytes-timeout-ms` if given; returns the
/// upstream's response or the send error.
async fn fetch(request: Request) -> Result<Response, ErrorCode> {
    let incoming = request.get_headers();
    let first = |name: &str| first_value(&incoming, name);
    let authority = first("x-target-authority");
    let path = first("x-target-path");
    let announced = first("trailer");
    let options = timeouts(
        first("x-first-byte-timeout-ms"),
        first("x-between-bytes-timeout-ms"),
    );
    drop(incoming);
    let method = request.get_method();
    let headers =
        Fields::from_list(&[("x-forwarded".to_string(), b"weir".to_vec())]).expect("valid headers");
    if let Some(announced) = announced {
        let _ = headers.append("trailer", announced.as_bytes());
    }
    let (_, result) = wit_future::new(|| Ok(()));
    let (contents, trailers) = Request::consume_body(request, result);
    let (outgoing, _sent) = Request::new(headers, Some(contents), trailers, options);
    let _ = outgoing.set_method(&method);
    let _ = outgoing.set_scheme(Some(&Scheme::Http));
    let _ = outgoing.set_authority(authority.as_deref());
    let _ = outgoing.set_path_with_query(path.as_deref());
    wasip3::http::client::send(outgoing).await
}

/// The first value of header `name`, as text.
fn first_value(fields: &Fields, name: &str) -> Option<String> {
    fields
        .get(name)
        .into_iter()
        .next()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Request options with the given timeouts (milliseconds, as text), if any is given.
fn timeouts(first_byte: Option<String>, between_bytes: Option<String>) -> Option<RequestOptions> {
    if first_byte.is_none() && between_bytes.is_none() {
        return None;
    }
    let nanos = |ms: Option<String>| {
        ms.and_then(|ms| ms.parse::<u64>().ok())
            .map(|ms| ms * 1_000_000)
    };
    let options = RequestOptions::new();
    let _ = options.set_first_byte_timeout(nanos(first_byte));
    let _ = options.set_between_bytes_timeout(nanos(between_bytes));
    Some(options)
}

/// The text of a trailers future's value.
fn trailers_text(trailers: Result<Option<Fields>, ErrorCode>) -> String {
    match trailers {
        Ok(Some(fields)) => fields
            .copy_all()
            .into_iter()
            .map(|(name, value)| format!("{name}={}", String::from_utf8_lossy(&value)))
            .collect::<Vec<_>>()
            .join(","),
        Ok(None) => "none".into(),
        Err(code) => format!("{code:?}"),
    }
}

/// Reads a whole stream into memory.
async fn read_all(mut input: wasip3::wit_bindgen::StreamReader<u8>) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        let (status, chunk) = input.read(Vec::with_capacity(64 * 1024)).await;
        bytes.extend_from_slice(&chunk);
        if !matches!(status, StreamResult::Complete(_)) {
            return bytes;
        }
    }
}

/// `/fetch-report`: what the client received, as text.
async fn fetch_report(request: Request) -> String {
    let response = match fetch(request).await {
        Ok(response) => response,
        Err(code) => return format!("send failed: {code:?}\n"),
    };
    let status = response.get_status_code();
    let (_, result) = wit_future::new(|| Ok(()));
    let (contents, trailers) = Response::consume_body(response, result);
    let body = read_all(contents).await;
    let trailers = trailers_text(trailers.await);
    format!(
        "status {status}; body {}; trailers {trailers}\n",
        String::from_utf8_lossy(&body)
    )
}

/// `/send-bad-trailers`: a request whose trailers fail after its body was written; or,
/// with `late` (`/send-after-response`), whose body (16 MiB, more than the sockets
/// buffer) is written only once the response arrived, with trailers that succeed.
async fn send_upload(request: Request, late: bool) -> String {
    let authority = first_value(&request.get_headers(), "x-target-authority");
    let (mut writer, contents) = wit_stream::new();
    let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
    let headers =
        Fields::from_list(&[("trailer".to_string(), b"x-sum".to_vec())]).expect("valid headers");
    let (outgoing, sent) = Request::new(headers, Some(contents), trailers, None);
    let _ = outgoing.set_method(&Method::Post);
    let _ = outgoing.set_scheme(Some(&Scheme::Http));
    let _ = outgoing.set_authority(authority.as_deref());
    let _ = outgoing.set_path_with_query(Some("/upload"));
    let upload = async move {
        let body = if late {
            vec![b'x'; 16 << 20]
        } else {
            b"partial".to_vec()
        };
        let _ = writer.write_all(body).await;
        drop(writer);
        let trailers = if late {
            Ok(None)
        } else {
            Err(ErrorCode::InternalError(Some("trailers failed".into())))
        };
        let _ = trailers_writer.write(trailers).await;
    };
    let response = if late {
        let response = wasip3::http::client::send(outgoing).await;
        upload.await;
        response
    } else {
        wasip3::spawn_local(upload);
        wasip3::http::client::send(outgoing).await
    };
    let send = match response {
        Ok(response) => format!("response {}", response.get_status_code()),
        Err(code) => format!("{code:?}"),
    };
    format!("send: {send}; transmission: {:?}\n", sent.await)
}

/// `/drop-with-body`: dropping a request or response closes the streams and futures it
/// was given, so their writers learn the reader is gone.
async fn drop_with_body() -> String {
    let (mut request_writer, request_contents) = wit_stream::new::<u8>();
    let (request_trailers_writer, request_trailers) = wit_future::new(|| Ok(None));
    let (request, _) = Request::new(
        Fields::new(),
        Some(request_contents),
        request_trailers,
        None,
    );
    drop(request);
    let (mut response_writer, response_contents) = wit_stream::new::<u8>();
    let (response_trailers_writer, response_trailers) = wit_future::new(|| Ok(None));
    let (response, _) = Response::new(Fields::new(), Some(response_contents), response_trailers);
    drop(response);
    let request_left = request_writer.write_all(b"data".to_vec()).await.len();
    let request_trailers = request_trailers_writer.write(Ok(None)).await.is_ok();
    let response_left = response_writer.write_all(b"data".to_vec()).await.len();
    let response_trailers = response_trailers_writer.write(Ok(None)).await.is_ok();
    format!(
        "request: {request_left} bytes unwritten, trailers taken {request_trailers}; \
         response: {response_left} bytes unwritten, trailers taken {response_trailers}\n"
    )
}

impl Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        match path.split('?').next().unwrap_or("") {
            "/" => Ok(text_response("Hello from a WASI 0.3 service\n".into())),
            "/count" => {
                let count = COUNTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                Ok(text_response(format!("{count}\n")))
            }
            "/info" => {
                let headers = request.get_headers();
                let tests: Vec<String> = headers
                    .get("x-test")
                    .into_iter()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .collect();
                let forwarded: Vec<String> = headers
                    .get("x-forwarded")
                    .into_iter()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .collect();
                let text = format!(
                    "method: {:?}\nscheme: {}\nauthority: {}\npath-with-query: {}\nx-test: {}\nx-forwarded: {}\n",
                    request.get_method(),
                    scheme_name(request.get_scheme()),
                    request.get_authority().unwrap_or_else(|| "none".into()),
                    path,
                    tests.join(","),
                    forwarded.join(","),
                );
                Ok(text_response(text))
            }
            "/echo" => {
                let request_headers = request.get_headers();
                let headers = Fields::new();
                for name in ["content-type", "trailer"] {
                    for value in request_headers.get(name) {
                        let _ = headers.append(name, &value);
                    }
                }
                drop(request_headers);
                let (_, result) = wit_future::new(|| Ok(()));
                let (contents, trailers) = Request::consume_body(request, result);
                let (response, _sent) = Response::new(headers, Some(contents), trailers);
                Ok(response)
            }
            "/copy" => {
                let (_, result) = wit_future::new(|| Ok(()));
                let (mut input, request_trailers) = Request::consume_body(request, result);
                let (mut writer, contents) = wit_stream::new();
                let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
                // HTTP/1.1 servers send only the trailers a response announces.
                let headers = Fields::from_list(&[("trailer".to_string(), b"x-copied".to_vec())])
                    .expect("valid headers");
                let (response, _sent) = Response::new(headers, Some(contents), trailers);
                wasip3::spawn_local(async move {
                    let mut copied = 0usize;
                    loop {
                        let (status, chunk) = input.read(Vec::with_capacity(64 * 1024)).await;
                        copied += chunk.len();
                        if !chunk.is_empty() && !writer.write_all(chunk).await.is_empty() {
                            break;
                        }
                        if !matches!(status, StreamResult::Complete(_)) {
                            break;
                        }
                    }
                    drop(input);
                    drop(writer);
                    let _ = request_trailers.await;
                    let fields = Fields::from_list(&[(
                        "x-copied".to_string(),
                        copied.to_string().into_bytes(),
                    )])
                    .expect("valid trailer");
                    let _ = trailers_writer.write(Ok(Some(fields))).await;
                });
                Ok(response)
            }
            "/fetch" => match fetch(request).await {
                Ok(response) => Ok(response),
                Err(code) => {
                    let response = text_response(format!("send failed: {code:?}\n"));
                    let _ = response.set_status_code(502);
                    Ok(response)
                }
            },
            "/fetch-report" => Ok(text_response(fetch_report(request).await)),
            "/send-bad-trailers" => Ok(text_response(send_upload(request, false).await)),
            "/send-after-response" => Ok(text_response(send_upload(request, true).await)),
            "/drop-with-body" => Ok(text_response(drop_with_body().await)),
            "/trailers" => {
                // Reads the body to its end, then reports its size and trailers.
                let (_, result) = wit_future::new(|| Ok(()));
                let (mut input, trailers) = Request::consume_body(request, result);
                let mut size = 0usize;
                loop {
                    let (status, chunk) = input.read(Vec::with_capacity(64 * 1024)).await;
                    size += chunk.len();
                    if !matches!(status, StreamResult::Complete(_)) {
                        break;
                    }
                }
                drop(input);
                let trailers = trailers_text(trailers.await);
                Ok(text_response(format!("body {size}; trailers {trailers}\n")))
            }
            "/bad-trailers" => {
                // Some body, then trailers that resolve to an error: the message must not
                // look complete to the client.
                let (mut writer, contents) = wit_stream::new();
                let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
                let (response, _sent) = Response::new(Fields::new(), Some(contents), trailers);
                wasip3::spawn_local(async move {
                    let _ = writer.write_all(b"partial".to_vec()).await;
                    drop(writer);
                    let failed = ErrorCode::InternalError(Some("trailers failed".into()));
                    let _ = trailers_writer.write(Err(failed)).await;
                });
                Ok(response)
            }
            "/unsent" => {
                // A request built and dropped without being sent: its future says so.
                let (_, trailers) = wit_future::new(|| Ok(None));
                let (request, sent) = Request::new(Fields::new(), None, trailers, None);
                drop(request);
                Ok(text_response(format!("{:?}\n", sent.await)))
            }
            "/report-transmission" => {
                let headers = request.get_headers();
                let size = first_value(&headers, "x-body-bytes")
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(5);
                let fail_trailers = first_value(&headers, "x-fail-trailers").is_some();
                let (mut writer, contents) = wit_stream::new();
                let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
                let (response, sent) = Response::new(Fields::new(), Some(contents), trailers);
                wasip3::spawn_local(async move {
                    let mut left = size;
                    while left > 0 {
                        let n = left.min(64 * 1024);
                        if !writer.write_all(vec![b't'; n]).await.is_empty() {
                            break;
                        }
                        left -= n;
                    }
                    drop(writer);
                    let trailers = match fail_trailers {
                        true => Err(ErrorCode::InternalError(Some("trailers failed".into()))),
                        false => Ok(None),
                    };
                    let _ = trailers_writer.write(trailers).await;
                });
                wasip3::spawn_local(async move {
                    eprintln!("response transmission: {:?}", sent.await);
                });
                Ok(response)
            }
            "/linger" => {
                wasip3::spawn_local(async {
                    wasip3::clocks::monotonic_clock::wait_for(3_600_000_000_000).await;
                });
                Ok(text_response("lingering\n".into()))
            }
            "/trap" => panic!("the /trap handler traps"),
            "/hang" => {
                wasip3::clocks::monotonic_clock::wait_for(3_600_000_000_000).await;
                Ok(text_response("too late\n".into()))
            }
            "/error" => Err(ErrorCode::InternalError(Some("the /error handler".into()))),
            _ => {
                let response = text_response("not found\n".into());
                let _ = response.set_status_code(404);
                Ok(response)
            }
        }
    }
}

wasip3::http::service::export!(Service);
