//! `wasi:http/outgoing-handler`: requests a guest sends, judged by the `http-request` rules of the
//! instance's network policy
//! first, then sent over HTTP/1.1 (`http` scheme) with the request's timeouts.
//!
//! Not provided yet: `https` (returns `internal-error`, see the README's status table) and
//! connection reuse (each request opens its own connection).

use std::time::Duration;

use tokio::net::TcpStream;
use wasmtime::component::Resource;

use crate::WasiHttpCtxView;
use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{ErrorCode, Scheme};
use crate::body::{HostBody, IncomingBodyResource};
use crate::error::internal;
use crate::fields::{FORBIDDEN_HEADERS, FieldsResource};
use crate::types::{
    FutureIncomingResponseResource, IncomingResponseResource, OutgoingRequestResource,
    RequestOptionsResource, method_from_wit,
};

/// Used when a request sets no timeout of its own.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(600);

struct Prepared {
    request: http::Request<HostBody>,
    host: String,
    port: u16,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    between_bytes_timeout: Option<Duration>,
}

fn prepare(
    request: OutgoingRequestResource,
    options: Option<RequestOptionsResource>,
) -> Result<Prepared, ErrorCode> {
    let scheme = match &request.scheme {
        None | Some(Scheme::Http) => http::uri::Scheme::HTTP,
        Some(Scheme::Https) => {
            return Err(internal("https requests are not supported yet"));
        }
        Some(Scheme::Other(other)) => {
            return Err(ErrorCode::HttpProtocolError).inspect_err(|_| {
                tracing::debug!("outgoing request with unsupported scheme `{other}`")
            });
        }
    };
    let authority = request
        .authority
        .as_deref()
        .ok_or(ErrorCode::HttpRequestUriInvalid)?;
    let authority: http::uri::Authority = authority
        .parse()
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    // A port that is not a u16 (`:99999`, `:`) is an invalid URI, not port 80.
    let port = match authority.as_str().rsplit_once(':') {
        Some((_, port)) if !authority.as_str().ends_with(']') => port
            .parse::<u16>()
            .map_err(|_| ErrorCode::HttpRequestUriInvalid)?,
        _ => 80,
    };
    let host = authority.host().to_string();
    let method = method_from_wit(&request.method).ok_or(ErrorCode::HttpRequestMethodInvalid)?;
    let path = request.path_with_query.as_deref().unwrap_or("/");
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(authority.clone())
        .path_and_query(if path.is_empty() { "/" } else { path })
        .build()
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    let mut built = http::Request::new(request.body.unwrap_or_else(HostBody::empty));
    *built.method_mut() = method;
    // HTTP/1.1 sends the origin form: the path, and the authority as `host`.
    *built.uri_mut() = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    let mut headers = request.headers.to_header_map();
    for forbidden in FORBIDDEN_HEADERS {
        headers.remove(*forbidden);
    }
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_str(authority.as_str())
            .map_err(|_| ErrorCode::HttpRequestUriInvalid)?,
    );
    // HTTP/1.1 sends these methods without a body unless one is declared: declare it when
    // the guest has written one, otherwise hold the guest to an empty body.
    let bodiless_by_default = matches!(
        *built.method(),
        http::Method::GET | http::Method::HEAD | http::Method::CONNECT
    );
    if bodiless_by_default
        && !headers.contains_key(http::header::CONTENT_LENGTH)
        && built.body().has_body_or_declare_empty()
    {
        headers.insert(
            http::header::TRANSFER_ENCODING,
            http::HeaderValue::from_static("chunked"),
        );
    }
    // The guest can read response trailers: say so, or HTTP/1.1 servers must not send them.
    if !headers.contains_key(http::header::TE) {
        headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    }
    *built.headers_mut() = headers;
    let options = options.unwrap_or_default();
    Ok(Prepared {
        request: built,
        host,
        port,
        connect_timeout: options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        first_byte_timeout: options
            .first_byte_timeout
            .unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT),
        between_bytes_timeout: options.between_bytes_timeout,
    })
}

fn connect_error(error: &std::io::Error) -> ErrorCode {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => ErrorCode::ConnectionRefused,
        ErrorKind::TimedOut => ErrorCode::ConnectionTimeout,
        ErrorKind::NetworkUnreachable | ErrorKind::HostUnreachable => {
            ErrorCode::DestinationUnavailable
        }
        _ => internal(&format!("connecting: {error}")),
    }
}

async fn send(prepared: Prepared) -> Result<IncomingResponseResource, ErrorCode> {
    let Prepared {
        request,
        host,
        port,
        connect_timeout,
        first_byte_timeout,
        between_bytes_timeout,
    } = prepared;
    let target = (host.trim_start_matches('[').trim_end_matches(']'), port);
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host(target)
        .await
        .map_err(|_| {
            ErrorCode::DnsError(crate::bindings::wasi::http::types::DnsErrorPayload {
                rcode: Some("address not available".into()),
                info_code: None,
            })
        })?
        .collect();
    if addresses.is_empty() {
        return Err(ErrorCode::DnsError(
            crate::bindings::wasi::http::types::DnsErrorPayload {
                rcode: Some("no addresses".into()),
                info_code: None,
            },
        ));
    }
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&addresses[..]))
        .await
        .map_err(|_| ErrorCode::ConnectionTimeout)?
        .map_err(|e| connect_error(&e))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(ErrorCode::from)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!("outgoing HTTP connection ended: {error}");
        }
    });
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| ErrorCode::ConnectionReadTimeout)?
        .map_err(ErrorCode::from)?;
    let (parts, body) = response.into_parts();
    let body = match between_bytes_timeout {
        Some(limit) => IncomingBodyResource::new(BetweenBytes::new(body, limit)),
        None => IncomingBodyResource::new(body),
    };
    Ok(IncomingResponseResource {
        status: parts.status.as_u16(),
        headers: FieldsResource::immutable_from(&parts.headers),
        body: Some(body),
    })
}

/// A body that fails with `connection-read-timeout` when no frame arrives within `limit`.
struct BetweenBytes<B> {
    inner: B,
    limit: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<B> BetweenBytes<B> {
    fn new(inner: B, limit: Duration) -> Self {
        BetweenBytes {
            inner,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<B> http_body::Body for BetweenBytes<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<ErrorCode> + Send,
{
    type Data = bytes::Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, ErrorCode>>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let limit = self.limit;
                self.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::now() + limit);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(ErrorCode::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl outgoing_handler::Host for WasiHttpCtxView<'_> {
    fn handle(
        &mut self,
        request: Resource<OutgoingRequestResource>,
        options: Option<Resource<RequestOptionsResource>>,
    ) -> wasmtime::Result<Result<Resource<FutureIncomingResponseResource>, ErrorCode>> {
        let request = self.table.delete(request)?;
        let options = match options {
            Some(options) => Some(self.table.delete(options)?),
            None => None,
        };
        let prepared = match prepare(request, options) {
            Ok(prepared) => prepared,
            Err(code) => return Ok(Err(code)),
        };
        match self
            .ctx
            .policy
            .check_http_request(&prepared.host, prepared.port)
        {
            weir::sockets::Decision::Allowed(_) => {}
            weir::sockets::Decision::Denied(rule) => {
                tracing::warn!(
                    target: "weir::policy",
                    "denied http-request to {}:{} ({})",
                    prepared.host,
                    prepared.port,
                    rule.map_or("no rule allows it".to_string(), |rule| rule.to_string())
                );
                return Ok(Err(ErrorCode::HttpRequestDenied));
            }
        }
        let task = tokio::spawn(send(prepared));
        Ok(Ok(self.table.push(
            FutureIncomingResponseResource::Waiting(crate::types::RequestTask(task)),
        )?))
    }
}
