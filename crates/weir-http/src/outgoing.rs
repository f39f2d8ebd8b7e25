//! `wasi:http/outgoing-handler`: requests a guest sends, judged by the `http-request` rules of the
//! instance's network policy
//! first, then sent over HTTP/1.1 (`http` scheme) with the request's timeouts.
//!
//! `https` goes over rustls with the context's TLS configuration; connections are reused
//! through the context's [`ConnectionPool`].

use std::time::Duration;

use std::collections::HashMap;

use hyper::client::conn::http1::SendRequest;
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

/// Where an allowed outgoing request goes, and its timeouts (the guest's
/// `request-options`, or the defaults), for a [`RequestSender`].
#[derive(Clone, Debug)]
pub struct OutgoingTarget {
    /// The authority's host (a name, or an IP literal; IPv6 in brackets).
    pub host: String,
    pub port: u16,
    /// The scheme is `https`.
    pub https: bool,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub between_bytes_timeout: Option<Duration>,
}

/// A response body from a [`RequestSender`].
pub type SenderBody = http_body_util::combinators::BoxBody<bytes::Bytes, ErrorCode>;

/// The future of a [`RequestSender`]'s response.
pub type SenderFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<http::Response<SenderBody>, ErrorCode>> + Send>,
>;

/// An embedder's way to send the guest's outgoing requests itself (a proxy, a mock, its own
/// connection pool), set with [`crate::WasiHttpCtx::with_sender`].
///
/// Contract: it is called only for requests the policy allowed, on the guest's thread, and
/// must not block: do the work in the returned future, which runs on a task of the current
/// tokio runtime and is dropped if the guest drops its `future-incoming-response`. The
/// request's URI is the origin form (path and query); its `host` header is the authority.
/// Its body is the guest's, streamed as the guest writes it. An `Err` reaches the guest as
/// `future-incoming-response`'s error code.
pub trait RequestSender: Send + Sync + 'static {
    fn send(&self, request: http::Request<HostBody>, target: OutgoingTarget) -> SenderFuture;
}

/// Used when a request sets no timeout of its own.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) struct Prepared {
    request: http::Request<HostBody>,
    target: OutgoingTarget,
    /// Set for `https`.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

pub(crate) fn prepare(
    request: OutgoingRequestResource,
    options: Option<RequestOptionsResource>,
    tls_config: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<Prepared, ErrorCode> {
    let tls = match &request.scheme {
        None | Some(Scheme::Http) => None,
        Some(Scheme::Https) => Some(tls_config.clone()),
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
        _ if tls.is_some() => 443,
        _ => 80,
    };
    let host = authority.host().to_string();
    let method = method_from_wit(&request.method).ok_or(ErrorCode::HttpRequestMethodInvalid)?;
    let path = match request.path_with_query.as_deref() {
        None | Some("") => "/",
        Some(path) => path,
    };
    let path: http::uri::PathAndQuery =
        path.parse().map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    let mut built = http::Request::new(request.body.unwrap_or_else(HostBody::empty));
    *built.method_mut() = method;
    // HTTP/1.1 sends the origin form: the path, and the authority as `host`.
    *built.uri_mut() = http::Uri::from(path);
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
        target: OutgoingTarget {
            host,
            port,
            https: tls.is_some(),
            connect_timeout: options.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            first_byte_timeout: options
                .first_byte_timeout
                .unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT),
            between_bytes_timeout: options.between_bytes_timeout,
        },
        tls,
    })
}

fn dns_error(rcode: &str) -> ErrorCode {
    ErrorCode::DnsError(crate::bindings::wasi::http::types::DnsErrorPayload {
        rcode: Some(rcode.into()),
        info_code: None,
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

/// Idle HTTP/1.1 connections of outgoing requests, by scheme, host and port, reused by
/// later requests (at most [`MAX_IDLE_PER_ORIGIN`] kept per origin). Each
/// [`crate::WasiHttpCtx`] has its own; share one among contexts with
/// [`crate::WasiHttpCtx::with_connection_pool`] (only among contexts with the same TLS
/// configuration: a pooled `https` connection was verified with the configuration of the
/// request that opened it). The policy decides every request before the pool is used.
#[derive(Default)]
pub struct ConnectionPool {
    idle: std::sync::Mutex<HashMap<Origin, Vec<SendRequest<HostBody>>>>,
}

/// The most connections kept per origin.
pub const MAX_IDLE_PER_ORIGIN: usize = 32;

type Origin = (bool, String, u16);

impl ConnectionPool {
    /// An empty pool.
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::default()
    }

    /// A connection to `origin` ready for a request, if one is idle.
    fn take(&self, origin: &Origin) -> Option<SendRequest<HostBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let connections = idle.get_mut(origin)?;
        let mut busy = Vec::new();
        let mut found = None;
        while let Some(connection) = connections.pop() {
            if connection.is_closed() {
                continue;
            }
            if connection.is_ready() {
                found = Some(connection);
                break;
            }
            // Still delivering its last response's body.
            busy.push(connection);
        }
        connections.extend(busy);
        found
    }

    /// Keeps `connection` for later requests to `origin`.
    fn put(&self, origin: Origin, connection: SendRequest<HostBody>) {
        if connection.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let connections = idle.entry(origin).or_default();
        connections.retain(|c| !c.is_closed());
        if connections.len() < MAX_IDLE_PER_ORIGIN {
            connections.push(connection);
        }
    }

    /// Connections kept, idle or busy (for tests and metrics).
    pub fn connections(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.values()
            .map(|list| list.iter().filter(|c| !c.is_closed()).count())
            .sum()
    }
}

/// Opens a connection: name lookup, TCP connect and (for `https`) the TLS handshake,
/// within `connect_timeout` each.
async fn connect(
    host: &str,
    port: u16,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
) -> Result<SendRequest<HostBody>, ErrorCode> {
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<std::net::SocketAddr> =
        tokio::time::timeout(connect_timeout, tokio::net::lookup_host((bare_host, port)))
            .await
            .map_err(|_| ErrorCode::DnsTimeout)?
            .map_err(|_| dns_error("address not available"))?
            .collect();
    if addresses.is_empty() {
        return Err(dns_error("no addresses"));
    }
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(&addresses[..]))
        .await
        .map_err(|_| ErrorCode::ConnectionTimeout)?
        .map_err(|e| connect_error(&e))?;
    let _ = stream.set_nodelay(true);
    match tls {
        None => handshake(stream).await,
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(bare_host.to_string())
                .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
            let connect = tokio_rustls::TlsConnector::from(config).connect(name, stream);
            let stream = tokio::time::timeout(connect_timeout, connect)
                .await
                .map_err(|_| ErrorCode::ConnectionTimeout)?
                .map_err(|e| tls_error(&e))?;
            handshake(stream).await
        }
    }
}

async fn send(
    prepared: Prepared,
    pool: std::sync::Arc<ConnectionPool>,
) -> Result<http::Response<SenderBody>, ErrorCode> {
    let Prepared {
        request,
        target:
            OutgoingTarget {
                host,
                port,
                connect_timeout,
                first_byte_timeout,
                between_bytes_timeout,
                ..
            },
        tls,
    } = prepared;
    let origin: Origin = (tls.is_some(), host.to_ascii_lowercase(), port);
    let (response, connection) = 'sent: {
        let mut request = request;
        // A pooled connection the server has closed meanwhile hands the request back
        // unsent; it then goes on a new connection.
        if let Some(mut pooled) = pool.take(&origin) {
            match tokio::time::timeout(first_byte_timeout, pooled.try_send_request(request)).await {
                Err(_) => return Err(ErrorCode::ConnectionReadTimeout),
                Ok(Ok(response)) => break 'sent (response, pooled),
                Ok(Err(mut error)) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(ErrorCode::from(error.into_error())),
                },
            }
        }
        let mut fresh = connect(&host, port, tls, connect_timeout).await?;
        let response = tokio::time::timeout(first_byte_timeout, fresh.send_request(request))
            .await
            .map_err(|_| ErrorCode::ConnectionReadTimeout)?
            .map_err(ErrorCode::from)?;
        (response, fresh)
    };
    pool.put(origin, connection);
    use http_body_util::BodyExt;
    Ok(response.map(|body| {
        let body = body.map_err(response_body_error);
        match between_bytes_timeout {
            Some(limit) => BetweenBytes::new(body, limit).boxed(),
            None => body.boxed(),
        }
    }))
}

/// The error code of a response body that failed: `HTTP-response-incomplete` when the
/// connection ended before the body did (hyper reports an unexpected end of file).
fn response_body_error(error: hyper::Error) -> ErrorCode {
    let mut source = std::error::Error::source(&error);
    let mut ended_early = error.is_incomplete_message();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            ended_early |= io.kind() == std::io::ErrorKind::UnexpectedEof;
        }
        source = cause.source();
    }
    if ended_early {
        ErrorCode::HttpResponseIncomplete
    } else {
        ErrorCode::from(error)
    }
}

/// Checks a prepared request against the context's `http-request` rules, then starts
/// sending it (Weir's client, or the embedder's [`RequestSender`]); both ABIs send through
/// here.
pub(crate) fn dispatch(
    ctx: &crate::WasiHttpCtx,
    prepared: Prepared,
) -> Result<SenderFuture, ErrorCode> {
    match ctx
        .policy
        .check_http_request(&prepared.target.host, prepared.target.port)
    {
        weir::sockets::Decision::Allowed(_) => {}
        weir::sockets::Decision::Denied(rule) => {
            tracing::warn!(
                target: "weir::policy",
                "denied http-request to {}:{} ({})",
                prepared.target.host,
                prepared.target.port,
                rule.map_or("no rule allows it".to_string(), |rule| rule.to_string())
            );
            return Err(ErrorCode::HttpRequestDenied);
        }
    }
    Ok(match &ctx.sender {
        None => Box::pin(send(prepared, ctx.pool.clone())),
        Some(sender) => sender.send(prepared.request, prepared.target),
    })
}

async fn handshake<S>(stream: S) -> Result<SendRequest<HostBody>, ErrorCode>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(ErrorCode::from)?;
    weir::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!("outgoing HTTP connection ended: {error}");
        }
    });
    Ok(sender)
}

/// The WIT's TLS error codes from a failed handshake.
fn tls_error(error: &std::io::Error) -> ErrorCode {
    use crate::bindings::wasi::http::types::TlsAlertReceivedPayload;
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_))
        | Some(rustls::Error::NoCertificatesPresented) => ErrorCode::TlsCertificateError,
        Some(rustls::Error::AlertReceived(alert)) => {
            ErrorCode::TlsAlertReceived(TlsAlertReceivedPayload {
                alert_id: Some(u8::from(*alert)),
                alert_message: Some(format!("{alert:?}")),
            })
        }
        Some(_) => ErrorCode::TlsProtocolError,
        None => connect_error(error),
    }
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
        let prepared = match prepare(request, options, &self.ctx.tls) {
            Ok(prepared) => prepared,
            Err(code) => return Ok(Err(code)),
        };
        let response = match dispatch(self.ctx, prepared) {
            Ok(response) => response,
            Err(code) => return Ok(Err(code)),
        };
        let task = weir::spawn(async move {
            let (parts, body) = response.await?.into_parts();
            Ok(IncomingResponseResource {
                status: parts.status.as_u16(),
                headers: FieldsResource::immutable_from(&parts.headers),
                body: Some(IncomingBodyResource::new(body)),
            })
        });
        Ok(Ok(self.table.push(
            FutureIncomingResponseResource::Waiting(crate::types::RequestTask(task)),
        )?))
    }
}
