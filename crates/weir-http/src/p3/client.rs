//! `wasi:http/client@0.3.0`: a guest's request sent through the same client as 0.2's
//! `outgoing-handler` (the policy's `http-request` rules, the connection pool, TLS,
//! `request-options` timeouts, the embedder's `RequestSender`), the response streamed back
//! as a host body.

use bytes::Bytes;
use http_body::{Body as _, Frame};
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::{Accessor, Resource, StreamReader};

use super::bindings::wasi::http::client;
use super::bindings::wasi::http::types::{
    DnsErrorPayload, ErrorCode, FieldSizePayload, Method, Scheme, TlsAlertReceivedPayload,
};
use super::body::{FRAME_QUEUE, GuestContents, GuestTrailers, HostBody, HostContents};
use super::types::{Body, Request, RequestOptions, Response};
use crate::bindings::wasi::http::types as v2;
use crate::body::Outgoing;
use crate::fields::FieldsResource;
use crate::{HasHttp, WasiHttpCtxView};

impl client::Host for WasiHttpCtxView<'_> {}

/// The 0.3 error code for a 0.2 one (the same variants).
pub(crate) fn code3(code: v2::ErrorCode) -> ErrorCode {
    macro_rules! same {
        ($($unit:ident),* ; $($wrapped:ident),*) => {
            match code {
                $(v2::ErrorCode::$unit => ErrorCode::$unit,)*
                $(v2::ErrorCode::$wrapped(value) => ErrorCode::$wrapped(value),)*
                v2::ErrorCode::DnsError(p) => ErrorCode::DnsError(DnsErrorPayload {
                    rcode: p.rcode,
                    info_code: p.info_code,
                }),
                v2::ErrorCode::TlsAlertReceived(p) => {
                    ErrorCode::TlsAlertReceived(TlsAlertReceivedPayload {
                        alert_id: p.alert_id,
                        alert_message: p.alert_message,
                    })
                }
                v2::ErrorCode::HttpRequestHeaderSize(p) => {
                    ErrorCode::HttpRequestHeaderSize(p.map(field_size3))
                }
                v2::ErrorCode::HttpRequestTrailerSize(p) => {
                    ErrorCode::HttpRequestTrailerSize(field_size3(p))
                }
                v2::ErrorCode::HttpResponseHeaderSize(p) => {
                    ErrorCode::HttpResponseHeaderSize(field_size3(p))
                }
                v2::ErrorCode::HttpResponseTrailerSize(p) => {
                    ErrorCode::HttpResponseTrailerSize(field_size3(p))
                }
            }
        };
    }
    same!(
        DnsTimeout, DestinationNotFound, DestinationUnavailable, DestinationIpProhibited,
        DestinationIpUnroutable, ConnectionRefused, ConnectionTerminated, ConnectionTimeout,
        ConnectionReadTimeout, ConnectionWriteTimeout, ConnectionLimitReached,
        TlsProtocolError, TlsCertificateError, HttpRequestDenied, HttpRequestLengthRequired,
        HttpRequestMethodInvalid, HttpRequestUriInvalid, HttpRequestUriTooLong,
        HttpResponseIncomplete, HttpResponseTimeout, HttpUpgradeFailed, HttpProtocolError,
        LoopDetected, ConfigurationError;
        HttpRequestBodySize, HttpRequestHeaderSectionSize, HttpRequestTrailerSectionSize,
        HttpResponseHeaderSectionSize, HttpResponseBodySize, HttpResponseTrailerSectionSize,
        HttpResponseTransferCoding, HttpResponseContentCoding, InternalError
    )
}

fn field_size3(p: v2::FieldSizePayload) -> FieldSizePayload {
    FieldSizePayload {
        field_name: p.field_name,
        field_size: p.field_size,
    }
}

fn method2(method: Method) -> v2::Method {
    match method {
        Method::Get => v2::Method::Get,
        Method::Head => v2::Method::Head,
        Method::Post => v2::Method::Post,
        Method::Put => v2::Method::Put,
        Method::Delete => v2::Method::Delete,
        Method::Connect => v2::Method::Connect,
        Method::Options => v2::Method::Options,
        Method::Trace => v2::Method::Trace,
        Method::Patch => v2::Method::Patch,
        Method::Other(name) => v2::Method::Other(name),
    }
}

fn scheme2(scheme: Scheme) -> v2::Scheme {
    match scheme {
        Scheme::Http => v2::Scheme::Http,
        Scheme::Https => v2::Scheme::Https,
        Scheme::Other(name) => v2::Scheme::Other(name),
    }
}

fn options2(options: RequestOptions) -> crate::types::RequestOptionsResource {
    let duration = |nanos: Option<u64>| nanos.map(std::time::Duration::from_nanos);
    crate::types::RequestOptionsResource {
        connect_timeout: duration(options.connect_timeout),
        first_byte_timeout: duration(options.first_byte_timeout),
        between_bytes_timeout: duration(options.between_bytes_timeout),
    }
}

type Transmitted = Option<oneshot::Sender<Result<(), ErrorCode>>>;

/// Resolves a request's transmission future: `handed_over` is the forwarder's outcome
/// (every frame and the end queued for hyper), `read` says whether hyper then took the
/// end from the queue. A body hyper dropped before its end (the connection failed, or
/// the response came and the connection closed) was not transmitted.
async fn report_transmission(
    handed_over: Result<(), ErrorCode>,
    body: mpsc::Sender<Outgoing>,
    read: oneshot::Receiver<()>,
    transmitted: Transmitted,
) {
    // A body whose end was never queued must fail for hyper, not keep it waiting.
    drop(body);
    let outcome = match handed_over {
        Ok(()) => read.await.map_err(|_| ErrorCode::ConnectionTerminated),
        Err(code) => Err(code),
    };
    if let Some(transmitted) = transmitted {
        let _ = transmitted.send(outcome);
    }
}

/// Forwards a request body's frames and then its trailers (or its error) to the 0.2
/// client's body channel, and resolves the request's transmission future when done. The
/// frames channel closes when the guest's stream ended: its only sender is the stream's
/// consumer.
async fn forward_body(
    mut frames: mpsc::Receiver<Result<Frame<Bytes>, ErrorCode>>,
    trailers: oneshot::Receiver<Result<Option<http::HeaderMap>, ErrorCode>>,
    body: mpsc::Sender<Outgoing>,
    read: oneshot::Receiver<()>,
    transmitted: Transmitted,
) {
    let outcome = loop {
        match frames.recv().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data()
                    && body.send(Outgoing::Data(data)).await.is_err()
                {
                    break Err(ErrorCode::ConnectionTerminated);
                }
            }
            Some(Err(code)) => break Err(code),
            None => break Ok(()),
        }
    };
    let outcome = match outcome {
        Ok(()) => match trailers.await {
            Ok(Ok(trailers)) => body
                .send(Outgoing::End(trailers))
                .await
                .map_err(|_| ErrorCode::ConnectionTerminated),
            // Dropping the channel unfinished makes hyper fail the request body.
            Ok(Err(code)) => Err(code),
            // The trailers never came: a guest dropping its writer without a value traps,
            // so only a store that went away gets here. The body is unfinished, and that
            // is what the outcome says (not a connection that ended).
            Err(_) => Err(ErrorCode::InternalError(Some(
                "the request's trailers future was dropped without a value".into(),
            ))),
        },
        Err(code) => Err(code),
    };
    report_transmission(outcome, body, read, transmitted).await;
}

/// Forwards a host body (one the guest received and now sends on) to the client's channel.
async fn forward_host_body(
    mut source: HostBody,
    body: mpsc::Sender<Outgoing>,
    read: oneshot::Receiver<()>,
    transmitted: Transmitted,
) {
    let outcome = loop {
        match std::future::poll_fn(|cx| std::pin::Pin::new(&mut source).poll_frame(cx)).await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if body.send(Outgoing::Data(data)).await.is_err() {
                        break Err(ErrorCode::ConnectionTerminated);
                    }
                }
                Err(frame) => {
                    break body
                        .send(Outgoing::End(frame.into_trailers().ok()))
                        .await
                        .map_err(|_| ErrorCode::ConnectionTerminated);
                }
            },
            Some(Err(code)) => break Err(code),
            None => {
                break body
                    .send(Outgoing::End(None))
                    .await
                    .map_err(|_| ErrorCode::ConnectionTerminated);
            }
        }
    };
    report_transmission(outcome, body, read, transmitted).await;
}

impl<U: 'static> client::HostWithStore<U> for HasHttp {
    async fn send(
        accessor: &Accessor<U, Self>,
        request: Resource<Request>,
    ) -> wasmtime::Result<Result<Resource<Response>, ErrorCode>> {
        let started = accessor.with(|mut access| -> wasmtime::Result<Result<_, ErrorCode>> {
            let getter = access.getter();
            let mut request = access.get().table.delete(request)?;
            let transmitted = request.transmitted.take();
            let (body, body_out) = mpsc::channel(FRAME_QUEUE);
            let (read, read_out) = oneshot::channel();
            // Whether the request may carry bytes: a GET without any goes without body
            // framing.
            let may_have_body = match request.body {
                Body::Guest { contents, trailers } => {
                    // A body the guest received and passes on unread may be known empty.
                    let (contents, may_have_body) =
                        match contents.map(|c| c.try_into::<HostContents>(&mut access)) {
                            Some(Ok(received)) => {
                                let may_have_data = received.may_have_data();
                                (
                                    Some(StreamReader::new(&mut access, received)?),
                                    may_have_data,
                                )
                            }
                            Some(Err(contents)) => (Some(contents), true),
                            None => (None, false),
                        };
                    let (frames, frames_out) = mpsc::channel(FRAME_QUEUE);
                    let (trailers_in, trailers_out) = oneshot::channel();
                    match contents {
                        Some(contents) => {
                            contents.pipe(&mut access, GuestContents::new(frames, None))?
                        }
                        None => drop(frames),
                    }
                    trailers.pipe(&mut access, GuestTrailers::new(trailers_in, getter, None))?;
                    weir::spawn(forward_body(
                        frames_out,
                        trailers_out,
                        body,
                        read_out,
                        transmitted,
                    ));
                    may_have_body
                }
                Body::Host(source) => {
                    let may_have_body = !source.is_end_stream();
                    weir::spawn(forward_host_body(source, body, read_out, transmitted));
                    may_have_body
                }
            };
            let outgoing = crate::types::OutgoingRequestResource::from_parts(
                method2(request.method),
                request.scheme.map(scheme2),
                request.authority,
                request.path_with_query,
                request.headers,
                crate::body::HostBody::from_channel(body_out, may_have_body, read),
            );
            let view = access.get();
            let prepared = match crate::outgoing::prepare(
                outgoing,
                request.options.map(options2),
                &view.ctx.tls,
            ) {
                Ok(prepared) => prepared,
                Err(code) => return Ok(Err(code3(code))),
            };
            Ok(crate::outgoing::dispatch(view.ctx, prepared).map_err(code3))
        })?;
        let response = match started {
            Ok(response) => response,
            Err(code) => return Ok(Err(code)),
        };
        let response = match response.await {
            Ok(response) => response,
            Err(code) => return Ok(Err(code3(code))),
        };
        let (parts, body) = response.into_parts();
        use http_body_util::BodyExt;
        let response = Response {
            status: parts.status.as_u16(),
            headers: FieldsResource::immutable_from(&parts.headers),
            body: Body::Host(body.map_err(code3).boxed()),
            transmitted: None,
        };
        Ok(Ok(
            accessor.with(|mut access| access.get().table.push(response))?
        ))
    }
}
