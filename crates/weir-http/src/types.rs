//! Requests, responses, the response outparam and request options.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;
use wasmtime::component::Resource;

use crate::WasiHttpCtxView;
use crate::bindings::wasi::http::types::{
    ErrorCode, HostFutureIncomingResponse, HostIncomingRequest, HostIncomingResponse,
    HostOutgoingRequest, HostOutgoingResponse, HostRequestOptions, HostResponseOutparam, Method,
    Scheme, StatusCode,
};
use crate::body::{BodySide, HostBody, IncomingBodyResource, OutgoingBodyResource};
use crate::fields::FieldsResource;

/// What the guest answers through a `response-outparam`.
pub type GuestResponse = Result<http::Response<HostBody>, ErrorCode>;

pub(crate) fn method_to_wit(method: &http::Method) -> Method {
    match *method {
        http::Method::GET => Method::Get,
        http::Method::HEAD => Method::Head,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::DELETE => Method::Delete,
        http::Method::CONNECT => Method::Connect,
        http::Method::OPTIONS => Method::Options,
        http::Method::TRACE => Method::Trace,
        http::Method::PATCH => Method::Patch,
        ref other => Method::Other(other.as_str().to_string()),
    }
}

pub(crate) fn method_from_wit(method: &Method) -> Option<http::Method> {
    Some(match method {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Connect => http::Method::CONNECT,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Patch => http::Method::PATCH,
        Method::Other(name) => http::Method::from_bytes(name.as_bytes()).ok()?,
    })
}

fn content_length(fields: &FieldsResource) -> Option<u64> {
    let value = fields.values("content-length").next()?;
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The guest's `incoming-request`: a request the host received for the guest to handle.
pub struct IncomingRequestResource {
    method: http::Method,
    path_with_query: Option<String>,
    scheme: Option<Scheme>,
    authority: Option<String>,
    headers: FieldsResource,
    body: Option<IncomingBodyResource>,
}

impl IncomingRequestResource {
    /// Wraps a request hyper received over a plain (`http`) connection.
    pub fn new<B>(request: http::Request<B>) -> Self
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
        B::Error: Into<ErrorCode> + Send,
    {
        let (parts, body) = request.into_parts();
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            });
        IncomingRequestResource {
            method: parts.method,
            path_with_query: parts.uri.path_and_query().map(|p| p.as_str().to_string()),
            scheme: Some(Scheme::Http),
            authority,
            headers: FieldsResource::immutable_from(&parts.headers),
            body: Some(IncomingBodyResource::new(body)),
        }
    }
}

impl HostIncomingRequest for WasiHttpCtxView<'_> {
    fn method(&mut self, request: Resource<IncomingRequestResource>) -> wasmtime::Result<Method> {
        Ok(method_to_wit(&self.table.get(&request)?.method))
    }

    fn path_with_query(
        &mut self,
        request: Resource<IncomingRequestResource>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&request)?.path_with_query.clone())
    }

    fn scheme(
        &mut self,
        request: Resource<IncomingRequestResource>,
    ) -> wasmtime::Result<Option<Scheme>> {
        Ok(self.table.get(&request)?.scheme.clone())
    }

    fn authority(
        &mut self,
        request: Resource<IncomingRequestResource>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&request)?.authority.clone())
    }

    fn headers(
        &mut self,
        request: Resource<IncomingRequestResource>,
    ) -> wasmtime::Result<Resource<FieldsResource>> {
        let headers = self.table.get(&request)?.headers.frozen();
        Ok(self.table.push_child(headers, &request)?)
    }

    fn consume(
        &mut self,
        request: Resource<IncomingRequestResource>,
    ) -> wasmtime::Result<Result<Resource<IncomingBodyResource>, ()>> {
        let Some(body) = self.table.get_mut(&request)?.body.take() else {
            return Ok(Err(()));
        };
        Ok(Ok(self.table.push_child(body, &request)?))
    }

    fn drop(&mut self, request: Resource<IncomingRequestResource>) -> wasmtime::Result<()> {
        self.table.delete(request)?;
        Ok(())
    }
}

/// The guest's `outgoing-response`.
pub struct OutgoingResponseResource {
    status: StatusCode,
    headers: FieldsResource,
    body: Option<HostBody>,
    body_taken: bool,
}

impl HostOutgoingResponse for WasiHttpCtxView<'_> {
    fn new(
        &mut self,
        headers: Resource<FieldsResource>,
    ) -> wasmtime::Result<Resource<OutgoingResponseResource>> {
        let headers = self.table.delete(headers)?;
        Ok(self.table.push(OutgoingResponseResource {
            status: 200,
            headers,
            body: None,
            body_taken: false,
        })?)
    }

    fn status_code(
        &mut self,
        response: Resource<OutgoingResponseResource>,
    ) -> wasmtime::Result<StatusCode> {
        Ok(self.table.get(&response)?.status)
    }

    fn set_status_code(
        &mut self,
        response: Resource<OutgoingResponseResource>,
        status: StatusCode,
    ) -> wasmtime::Result<Result<(), ()>> {
        if http::StatusCode::from_u16(status).is_err() {
            return Ok(Err(()));
        }
        self.table.get_mut(&response)?.status = status;
        Ok(Ok(()))
    }

    fn headers(
        &mut self,
        response: Resource<OutgoingResponseResource>,
    ) -> wasmtime::Result<Resource<FieldsResource>> {
        let headers = self.table.get(&response)?.headers.frozen();
        Ok(self.table.push_child(headers, &response)?)
    }

    fn body(
        &mut self,
        response: Resource<OutgoingResponseResource>,
    ) -> wasmtime::Result<Result<Resource<OutgoingBodyResource>, ()>> {
        let entry = self.table.get_mut(&response)?;
        if entry.body_taken {
            return Ok(Err(()));
        }
        entry.body_taken = true;
        let (body, host_body) =
            OutgoingBodyResource::new(content_length(&entry.headers), BodySide::Response);
        entry.body = Some(host_body);
        Ok(Ok(self.table.push(body)?))
    }

    fn drop(&mut self, response: Resource<OutgoingResponseResource>) -> wasmtime::Result<()> {
        self.table.delete(response)?;
        Ok(())
    }
}

/// The guest's `response-outparam`: where the host waits for the guest's answer.
pub struct ResponseOutparamResource {
    sender: oneshot::Sender<GuestResponse>,
}

impl ResponseOutparamResource {
    /// An outparam and the receiver of what the guest sets (dropped unset: the guest
    /// never answered).
    pub fn new() -> (Self, oneshot::Receiver<GuestResponse>) {
        let (sender, receiver) = oneshot::channel();
        (ResponseOutparamResource { sender }, receiver)
    }
}

impl HostResponseOutparam for WasiHttpCtxView<'_> {
    fn send_informational(
        &mut self,
        _outparam: Resource<ResponseOutparamResource>,
        status: u16,
        headers: Resource<FieldsResource>,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.table.delete(headers)?;
        if !(100..200).contains(&status) {
            return Ok(Err(ErrorCode::HttpProtocolError));
        }
        // hyper's server API has no way to send a 1xx before the final response.
        Ok(Err(ErrorCode::InternalError(Some(
            "informational responses are not supported".into(),
        ))))
    }

    fn set(
        &mut self,
        outparam: Resource<ResponseOutparamResource>,
        response: Result<Resource<OutgoingResponseResource>, ErrorCode>,
    ) -> wasmtime::Result<()> {
        let outparam = self.table.delete(outparam)?;
        let answer = match response {
            Ok(response) => {
                let response = self.table.delete(response)?;
                let mut built = http::Response::new(response.body.unwrap_or_else(HostBody::empty));
                *built.status_mut() = http::StatusCode::from_u16(response.status)
                    .map_err(|_| wasmtime::format_err!("status checked when set"))?;
                *built.headers_mut() = response.headers.to_header_map();
                Ok(built)
            }
            Err(code) => Err(code),
        };
        // The client may have gone away already.
        let _ = outparam.sender.send(answer);
        Ok(())
    }

    fn drop(&mut self, outparam: Resource<ResponseOutparamResource>) -> wasmtime::Result<()> {
        self.table.delete(outparam)?;
        Ok(())
    }
}

/// The guest's `outgoing-request`.
pub struct OutgoingRequestResource {
    pub(crate) method: Method,
    pub(crate) path_with_query: Option<String>,
    pub(crate) scheme: Option<Scheme>,
    pub(crate) authority: Option<String>,
    pub(crate) headers: FieldsResource,
    pub(crate) body: Option<HostBody>,
    body_taken: bool,
}

impl OutgoingRequestResource {
    /// A request built from another ABI's parts (a WASI 0.3 `client.send`), to be sent the
    /// same way as a 0.2 one.
    pub(crate) fn from_parts(
        method: Method,
        scheme: Option<Scheme>,
        authority: Option<String>,
        path_with_query: Option<String>,
        headers: FieldsResource,
        body: HostBody,
    ) -> Self {
        OutgoingRequestResource {
            method,
            path_with_query,
            scheme,
            authority,
            headers,
            body: Some(body),
            body_taken: true,
        }
    }
}

fn valid_scheme(scheme: &Scheme) -> bool {
    match scheme {
        Scheme::Http | Scheme::Https => true,
        Scheme::Other(name) => http::uri::Scheme::try_from(name.as_str()).is_ok(),
    }
}

impl HostOutgoingRequest for WasiHttpCtxView<'_> {
    fn new(
        &mut self,
        headers: Resource<FieldsResource>,
    ) -> wasmtime::Result<Resource<OutgoingRequestResource>> {
        let headers = self.table.delete(headers)?;
        Ok(self.table.push(OutgoingRequestResource {
            method: Method::Get,
            path_with_query: None,
            scheme: None,
            authority: None,
            headers,
            body: None,
            body_taken: false,
        })?)
    }

    fn body(
        &mut self,
        request: Resource<OutgoingRequestResource>,
    ) -> wasmtime::Result<Result<Resource<OutgoingBodyResource>, ()>> {
        let entry = self.table.get_mut(&request)?;
        if entry.body_taken {
            return Ok(Err(()));
        }
        entry.body_taken = true;
        let (body, host_body) =
            OutgoingBodyResource::new(content_length(&entry.headers), BodySide::Request);
        entry.body = Some(host_body);
        Ok(Ok(self.table.push(body)?))
    }

    fn method(&mut self, request: Resource<OutgoingRequestResource>) -> wasmtime::Result<Method> {
        Ok(self.table.get(&request)?.method.clone())
    }

    fn set_method(
        &mut self,
        request: Resource<OutgoingRequestResource>,
        method: Method,
    ) -> wasmtime::Result<Result<(), ()>> {
        if method_from_wit(&method).is_none() {
            return Ok(Err(()));
        }
        self.table.get_mut(&request)?.method = method;
        Ok(Ok(()))
    }

    fn path_with_query(
        &mut self,
        request: Resource<OutgoingRequestResource>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&request)?.path_with_query.clone())
    }

    fn set_path_with_query(
        &mut self,
        request: Resource<OutgoingRequestResource>,
        path_with_query: Option<String>,
    ) -> wasmtime::Result<Result<(), ()>> {
        if !valid_path_with_query(&path_with_query) {
            return Ok(Err(()));
        }
        self.table.get_mut(&request)?.path_with_query = path_with_query;
        Ok(Ok(()))
    }

    fn scheme(
        &mut self,
        request: Resource<OutgoingRequestResource>,
    ) -> wasmtime::Result<Option<Scheme>> {
        Ok(self.table.get(&request)?.scheme.clone())
    }

    fn set_scheme(
        &mut self,
        request: Resource<OutgoingRequestResource>,
        scheme: Option<Scheme>,
    ) -> wasmtime::Result<Result<(), ()>> {
        if scheme.as_ref().is_some_and(|s| !valid_scheme(s)) {
            return Ok(Err(()));
        }
        self.table.get_mut(&request)?.scheme = scheme;
        Ok(Ok(()))
    }

    fn authority(
        &mut self,
        request: Resource<OutgoingRequestResource>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&request)?.authority.clone())
    }

    fn set_authority(
        &mut self,
        request: Resource<OutgoingRequestResource>,
        authority: Option<String>,
    ) -> wasmtime::Result<Result<(), ()>> {
        if !valid_authority(&authority) {
            return Ok(Err(()));
        }
        self.table.get_mut(&request)?.authority = authority;
        Ok(Ok(()))
    }

    fn headers(
        &mut self,
        request: Resource<OutgoingRequestResource>,
    ) -> wasmtime::Result<Resource<FieldsResource>> {
        let headers = self.table.get(&request)?.headers.frozen();
        Ok(self.table.push_child(headers, &request)?)
    }

    fn drop(&mut self, request: Resource<OutgoingRequestResource>) -> wasmtime::Result<()> {
        self.table.delete(request)?;
        Ok(())
    }
}

/// The guest's `request-options`: timeouts for an outgoing request.
#[derive(Default)]
pub struct RequestOptionsResource {
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) first_byte_timeout: Option<Duration>,
    pub(crate) between_bytes_timeout: Option<Duration>,
}

type Nanos = u64;

impl HostRequestOptions for WasiHttpCtxView<'_> {
    fn new(&mut self) -> wasmtime::Result<Resource<RequestOptionsResource>> {
        Ok(self.table.push(RequestOptionsResource::default())?)
    }

    fn connect_timeout(
        &mut self,
        options: Resource<RequestOptionsResource>,
    ) -> wasmtime::Result<Option<Nanos>> {
        Ok(nanos(self.table.get(&options)?.connect_timeout))
    }

    fn set_connect_timeout(
        &mut self,
        options: Resource<RequestOptionsResource>,
        duration: Option<Nanos>,
    ) -> wasmtime::Result<Result<(), ()>> {
        self.table.get_mut(&options)?.connect_timeout = duration.map(Duration::from_nanos);
        Ok(Ok(()))
    }

    fn first_byte_timeout(
        &mut self,
        options: Resource<RequestOptionsResource>,
    ) -> wasmtime::Result<Option<Nanos>> {
        Ok(nanos(self.table.get(&options)?.first_byte_timeout))
    }

    fn set_first_byte_timeout(
        &mut self,
        options: Resource<RequestOptionsResource>,
        duration: Option<Nanos>,
    ) -> wasmtime::Result<Result<(), ()>> {
        self.table.get_mut(&options)?.first_byte_timeout = duration.map(Duration::from_nanos);
        Ok(Ok(()))
    }

    fn between_bytes_timeout(
        &mut self,
        options: Resource<RequestOptionsResource>,
    ) -> wasmtime::Result<Option<Nanos>> {
        Ok(nanos(self.table.get(&options)?.between_bytes_timeout))
    }

    fn set_between_bytes_timeout(
        &mut self,
        options: Resource<RequestOptionsResource>,
        duration: Option<Nanos>,
    ) -> wasmtime::Result<Result<(), ()>> {
        self.table.get_mut(&options)?.between_bytes_timeout = duration.map(Duration::from_nanos);
        Ok(Ok(()))
    }

    fn drop(&mut self, options: Resource<RequestOptionsResource>) -> wasmtime::Result<()> {
        self.table.delete(options)?;
        Ok(())
    }
}

fn nanos(duration: Option<Duration>) -> Option<Nanos> {
    duration.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The guest's `incoming-response`: the answer to an outgoing request.
pub struct IncomingResponseResource {
    pub(crate) status: StatusCode,
    pub(crate) headers: FieldsResource,
    pub(crate) body: Option<IncomingBodyResource>,
}

impl HostIncomingResponse for WasiHttpCtxView<'_> {
    fn status(
        &mut self,
        response: Resource<IncomingResponseResource>,
    ) -> wasmtime::Result<StatusCode> {
        Ok(self.table.get(&response)?.status)
    }

    fn headers(
        &mut self,
        response: Resource<IncomingResponseResource>,
    ) -> wasmtime::Result<Resource<FieldsResource>> {
        let headers = self.table.get(&response)?.headers.frozen();
        Ok(self.table.push_child(headers, &response)?)
    }

    fn consume(
        &mut self,
        response: Resource<IncomingResponseResource>,
    ) -> wasmtime::Result<Result<Resource<IncomingBodyResource>, ()>> {
        let Some(body) = self.table.get_mut(&response)?.body.take() else {
            return Ok(Err(()));
        };
        Ok(Ok(self.table.push_child(body, &response)?))
    }

    fn drop(&mut self, response: Resource<IncomingResponseResource>) -> wasmtime::Result<()> {
        self.table.delete(response)?;
        Ok(())
    }
}

/// The guest's `future-incoming-response`.
pub enum FutureIncomingResponseResource {
    Waiting(RequestTask),
    Ready(Result<IncomingResponseResource, ErrorCode>),
    Taken,
}

/// The task sending an outgoing request; dropping it (the guest dropped the future)
/// cancels the request.
pub struct RequestTask(
    pub(crate) tokio::task::JoinHandle<Result<IncomingResponseResource, ErrorCode>>,
);

impl Drop for RequestTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait::async_trait]
impl weir::io::Pollable for FutureIncomingResponseResource {
    async fn ready(&mut self) {
        if let FutureIncomingResponseResource::Waiting(task) = self {
            let result = (&mut task.0)
                .await
                .unwrap_or_else(|_| Err(crate::error::internal("the request's task failed")));
            *self = FutureIncomingResponseResource::Ready(result);
        }
    }
}

impl HostFutureIncomingResponse for WasiHttpCtxView<'_> {
    fn subscribe(
        &mut self,
        future: Resource<FutureIncomingResponseResource>,
    ) -> wasmtime::Result<Resource<weir::io::PollableResource>> {
        weir::io::subscribe(self.table, &future)
    }

    #[allow(clippy::type_complexity)]
    fn get(
        &mut self,
        future: Resource<FutureIncomingResponseResource>,
    ) -> wasmtime::Result<Option<Result<Result<Resource<IncomingResponseResource>, ErrorCode>, ()>>>
    {
        let state = self.table.get_mut(&future)?;
        if let FutureIncomingResponseResource::Waiting(task) = state {
            if !task.0.is_finished() {
                return Ok(None);
            }
            // Finished: polling it once returns its result.
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            let result = match std::pin::Pin::new(&mut task.0).poll(&mut cx) {
                std::task::Poll::Ready(result) => result
                    .unwrap_or_else(|_| Err(crate::error::internal("the request's task failed"))),
                std::task::Poll::Pending => return Ok(None),
            };
            *state = FutureIncomingResponseResource::Ready(result);
        }
        match std::mem::replace(state, FutureIncomingResponseResource::Taken) {
            FutureIncomingResponseResource::Ready(Ok(response)) => {
                Ok(Some(Ok(Ok(self.table.push(response)?))))
            }
            FutureIncomingResponseResource::Ready(Err(code)) => Ok(Some(Ok(Err(code)))),
            _ => Ok(Some(Err(()))),
        }
    }

    fn drop(&mut self, future: Resource<FutureIncomingResponseResource>) -> wasmtime::Result<()> {
        self.table.delete(future)?;
        Ok(())
    }
}

/// Whether a request may have `path` as its `path-with-query` (0.2 and 0.3 check alike).
pub(crate) fn valid_path_with_query(path: &Option<String>) -> bool {
    path.as_ref()
        .is_none_or(|path| http::uri::PathAndQuery::try_from(path.as_str()).is_ok())
}

/// Whether a request may have `authority` as its authority (0.2 and 0.3 check alike).
pub(crate) fn valid_authority(authority: &Option<String>) -> bool {
    authority
        .as_ref()
        .is_none_or(|authority| http::uri::Authority::try_from(authority.as_str()).is_ok())
}
