//! `wasi:http/types@0.3.0`: fields (the 0.2 fields, with 0.3's error type), requests,
//! responses and request options, whose bodies are component-model streams.

use tokio::sync::oneshot;
use wasmtime::component::{Access, FutureReader, Resource, StreamReader};

use super::bindings::wasi::http::types::{
    self as v3, Duration, ErrorCode, FieldName, FieldValue, HeaderError, Method,
    RequestOptionsError, Scheme,
};
use super::body::{self, HostBody};
use crate::bindings::wasi::http::types::{HeaderError as HeaderError2, HostFields as _};
use crate::fields::FieldsResource;
use crate::{HasHttp, WasiHttpCtxView};

/// What a request's or a response's trailers future carries.
pub(crate) type TrailersFuture = FutureReader<Result<Option<Resource<FieldsResource>>, ErrorCode>>;

/// A request's or a response's body.
pub(crate) enum Body {
    /// Received by the host (an incoming request): streamed to the guest when it asks.
    Host(HostBody),
    /// Built by the guest: its contents stream and trailers future, as it passed them.
    Guest {
        contents: Option<StreamReader<u8>>,
        trailers: TrailersFuture,
    },
}

impl Body {
    /// Closes a guest's streams that nobody will read (a message dropped unsent), so that
    /// their writers learn the reader went away instead of waiting for it.
    pub(crate) fn close<U: 'static>(
        self,
        host: &mut Access<'_, U, HasHttp>,
    ) -> wasmtime::Result<()> {
        if let Body::Guest {
            contents,
            mut trailers,
        } = self
        {
            if let Some(mut contents) = contents {
                contents.close(&mut *host)?;
            }
            trailers.close(&mut *host)?;
        }
        Ok(())
    }
}

/// The guest's 0.3 `request`.
pub struct Request {
    pub(crate) method: Method,
    pub(crate) scheme: Option<Scheme>,
    pub(crate) authority: Option<String>,
    pub(crate) path_with_query: Option<String>,
    /// Read-only (`get-headers` hands out copies).
    pub(crate) headers: FieldsResource,
    pub(crate) options: Option<RequestOptions>,
    pub(crate) body: Body,
    /// Resolves the future `request.new` returned: dropped unsent, it reports that the
    /// request was never sent.
    pub(crate) transmitted: Option<oneshot::Sender<Result<(), ErrorCode>>>,
}

/// The guest's 0.3 `response`.
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: FieldsResource,
    pub(crate) body: Body,
    /// Resolves the future `response.new` returned, once the response was sent (or not).
    pub(crate) transmitted: Option<oneshot::Sender<Result<(), ErrorCode>>>,
}

/// The guest's 0.3 `request-options`: timeouts in nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct RequestOptions {
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) first_byte_timeout: Option<Duration>,
    pub(crate) between_bytes_timeout: Option<Duration>,
    /// Options read back from a request (`get-options`) are immutable.
    pub(crate) immutable: bool,
}

impl Request {
    /// A request received by the host: scheme `http`, the authority from the URI or the
    /// `Host` header, read-only headers, the body streamed when the guest asks.
    pub(crate) fn incoming(request: http::Request<HostBody>) -> Request {
        let (parts, body) = request.into_parts();
        let authority = parts.uri.authority().map(|a| a.to_string()).or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        });
        Request {
            method: method3(&parts.method),
            scheme: Some(match parts.uri.scheme_str() {
                Some("https") => Scheme::Https,
                _ => Scheme::Http,
            }),
            authority,
            path_with_query: Some(
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".to_string()),
            ),
            headers: FieldsResource::immutable_from(&parts.headers),
            options: None,
            body: Body::Host(body),
            transmitted: None,
        }
    }
}

fn method3(method: &http::Method) -> Method {
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

fn header_error3(error: HeaderError2) -> HeaderError {
    match error {
        HeaderError2::InvalidSyntax => HeaderError::InvalidSyntax,
        HeaderError2::Forbidden => HeaderError::Forbidden,
        HeaderError2::Immutable => HeaderError::Immutable,
    }
}

/// A transmission future: resolves with what `outcome` receives, or (sender dropped) with
/// the error of a message that was never sent.
fn transmission_future<U: 'static>(
    host: &mut Access<'_, U, HasHttp>,
    outcome: oneshot::Receiver<Result<(), ErrorCode>>,
) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
    FutureReader::new(host, async move {
        Ok::<_, wasmtime::Error>(outcome.await.unwrap_or_else(|_| {
            Err(ErrorCode::InternalError(Some(
                "the message was never sent".to_string(),
            )))
        }))
    })
}

impl v3::Host for WasiHttpCtxView<'_> {}

/// 0.3's fields are 0.2's (same resource, checks and size limit), with 0.3's error type.
impl v3::HostFields for WasiHttpCtxView<'_> {
    fn new(&mut self) -> wasmtime::Result<Resource<FieldsResource>> {
        crate::bindings::wasi::http::types::HostFields::new(self)
    }

    fn from_list(
        &mut self,
        entries: Vec<(FieldName, FieldValue)>,
    ) -> wasmtime::Result<Result<Resource<FieldsResource>, HeaderError>> {
        Ok(
            crate::bindings::wasi::http::types::HostFields::from_list(self, entries)?
                .map_err(header_error3),
        )
    }

    fn get(
        &mut self,
        fields: Resource<FieldsResource>,
        name: FieldName,
    ) -> wasmtime::Result<Vec<FieldValue>> {
        crate::bindings::wasi::http::types::HostFields::get(self, fields, name)
    }

    fn has(&mut self, fields: Resource<FieldsResource>, name: FieldName) -> wasmtime::Result<bool> {
        crate::bindings::wasi::http::types::HostFields::has(self, fields, name)
    }

    fn set(
        &mut self,
        fields: Resource<FieldsResource>,
        name: FieldName,
        value: Vec<FieldValue>,
    ) -> wasmtime::Result<Result<(), HeaderError>> {
        Ok(
            crate::bindings::wasi::http::types::HostFields::set(self, fields, name, value)?
                .map_err(header_error3),
        )
    }

    fn delete(
        &mut self,
        fields: Resource<FieldsResource>,
        name: FieldName,
    ) -> wasmtime::Result<Result<(), HeaderError>> {
        Ok(
            crate::bindings::wasi::http::types::HostFields::delete(self, fields, name)?
                .map_err(header_error3),
        )
    }

    fn get_and_delete(
        &mut self,
        fields: Resource<FieldsResource>,
        name: FieldName,
    ) -> wasmtime::Result<Result<Vec<FieldValue>, HeaderError>> {
        let borrowed = Resource::new_borrow(fields.rep());
        let values =
            crate::bindings::wasi::http::types::HostFields::get(self, borrowed, name.clone())?;
        Ok(
            crate::bindings::wasi::http::types::HostFields::delete(self, fields, name)?
                .map(|()| values)
                .map_err(header_error3),
        )
    }

    fn append(
        &mut self,
        fields: Resource<FieldsResource>,
        name: FieldName,
        value: FieldValue,
    ) -> wasmtime::Result<Result<(), HeaderError>> {
        Ok(
            crate::bindings::wasi::http::types::HostFields::append(self, fields, name, value)?
                .map_err(header_error3),
        )
    }

    fn copy_all(
        &mut self,
        fields: Resource<FieldsResource>,
    ) -> wasmtime::Result<Vec<(FieldName, FieldValue)>> {
        self.entries(fields)
    }

    fn clone(
        &mut self,
        fields: Resource<FieldsResource>,
    ) -> wasmtime::Result<Resource<FieldsResource>> {
        crate::bindings::wasi::http::types::HostFields::clone(self, fields)
    }

    fn drop(&mut self, fields: Resource<FieldsResource>) -> wasmtime::Result<()> {
        crate::bindings::wasi::http::types::HostFields::drop(self, fields)
    }
}

fn valid_method(method: &Method) -> bool {
    match method {
        Method::Other(name) => http::Method::from_bytes(name.as_bytes()).is_ok(),
        _ => true,
    }
}

fn valid_scheme(scheme: &Option<Scheme>) -> bool {
    match scheme {
        Some(Scheme::Other(name)) => http::uri::Scheme::try_from(name.as_str()).is_ok(),
        _ => true,
    }
}

impl v3::HostRequest for WasiHttpCtxView<'_> {
    fn get_method(&mut self, request: Resource<Request>) -> wasmtime::Result<Method> {
        Ok(self.table.get(&request)?.method.clone())
    }

    fn set_method(
        &mut self,
        request: Resource<Request>,
        method: Method,
    ) -> wasmtime::Result<Result<(), ()>> {
        if !valid_method(&method) {
            return Ok(Err(()));
        }
        self.table.get_mut(&request)?.method = method;
        Ok(Ok(()))
    }

    fn get_path_with_query(
        &mut self,
        request: Resource<Request>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&request)?.path_with_query.clone())
    }

    fn set_path_with_query(
        &mut self,
        request: Resource<Request>,
        path_with_query: Option<String>,
    ) -> wasmtime::Result<Result<(), ()>> {
        if !crate::types::valid_path_with_query(&path_with_query) {
            return Ok(Err(()));
        }
        self.table.get_mut(&request)?.path_with_query = path_with_query;
        Ok(Ok(()))
    }

    fn get_scheme(&mut self, request: Resource<Request>) -> wasmtime::Result<Option<Scheme>> {
        Ok(self.table.get(&request)?.scheme.clone())
    }

    fn set_scheme(
        &mut self,
        request: Resource<Request>,
        scheme: Option<Scheme>,
    ) -> wasmtime::Result<Result<(), ()>> {
        if !valid_scheme(&scheme) {
            return Ok(Err(()));
        }
        self.table.get_mut(&request)?.scheme = scheme;
        Ok(Ok(()))
    }

    fn get_authority(&mut self, request: Resource<Request>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&request)?.authority.clone())
    }

    fn set_authority(
        &mut self,
        request: Resource<Request>,
        authority: Option<String>,
    ) -> wasmtime::Result<Result<(), ()>> {
        if !crate::types::valid_authority(&authority) {
            return Ok(Err(()));
        }
        self.table.get_mut(&request)?.authority = authority;
        Ok(Ok(()))
    }

    fn get_options(
        &mut self,
        request: Resource<Request>,
    ) -> wasmtime::Result<Option<Resource<RequestOptions>>> {
        let Some(options) = self.table.get(&request)?.options.clone() else {
            return Ok(None);
        };
        let options = RequestOptions {
            immutable: true,
            ..options
        };
        Ok(Some(self.table.push(options)?))
    }

    fn get_headers(
        &mut self,
        request: Resource<Request>,
    ) -> wasmtime::Result<Resource<FieldsResource>> {
        let headers = self.table.get(&request)?.headers.frozen();
        Ok(self.table.push(headers)?)
    }
}

impl<U: 'static> v3::HostRequestWithStore<U> for HasHttp {
    fn drop(mut host: Access<'_, U, Self>, request: Resource<Request>) -> wasmtime::Result<()> {
        let request = host.get().table.delete(request)?;
        request.body.close(&mut host)
    }

    fn new(
        mut host: Access<'_, U, Self>,
        headers: Resource<FieldsResource>,
        contents: Option<StreamReader<u8>>,
        trailers: TrailersFuture,
        options: Option<Resource<RequestOptions>>,
    ) -> wasmtime::Result<(Resource<Request>, FutureReader<Result<(), ErrorCode>>)> {
        let (sender, receiver) = oneshot::channel();
        let request = {
            let view = host.get();
            let headers = view.table.delete(headers)?.frozen();
            let options = options.map(|o| view.table.delete(o)).transpose()?;
            let request = Request {
                method: Method::Get,
                scheme: None,
                authority: None,
                path_with_query: None,
                headers,
                options,
                body: Body::Guest { contents, trailers },
                transmitted: Some(sender),
            };
            view.table.push(request)?
        };
        Ok((request, transmission_future(&mut host, receiver)?))
    }

    fn consume_body(
        mut host: Access<'_, U, Self>,
        request: Resource<Request>,
        mut res: FutureReader<Result<(), ErrorCode>>,
    ) -> wasmtime::Result<(StreamReader<u8>, TrailersFuture)> {
        let request = host.get().table.delete(request)?;
        // The host has no use for the guest's processing result of a request body.
        res.close(&mut host)?;
        body::into_guest_stream(&mut host, request.body)
    }
}

impl v3::HostResponse for WasiHttpCtxView<'_> {
    fn get_status_code(&mut self, response: Resource<Response>) -> wasmtime::Result<u16> {
        Ok(self.table.get(&response)?.status)
    }

    fn set_status_code(
        &mut self,
        response: Resource<Response>,
        status: u16,
    ) -> wasmtime::Result<Result<(), ()>> {
        if http::StatusCode::from_u16(status).is_err() {
            return Ok(Err(()));
        }
        self.table.get_mut(&response)?.status = status;
        Ok(Ok(()))
    }

    fn get_headers(
        &mut self,
        response: Resource<Response>,
    ) -> wasmtime::Result<Resource<FieldsResource>> {
        let headers = self.table.get(&response)?.headers.frozen();
        Ok(self.table.push(headers)?)
    }
}

impl<U: 'static> v3::HostResponseWithStore<U> for HasHttp {
    fn drop(mut host: Access<'_, U, Self>, response: Resource<Response>) -> wasmtime::Result<()> {
        let response = host.get().table.delete(response)?;
        response.body.close(&mut host)
    }

    fn new(
        mut host: Access<'_, U, Self>,
        headers: Resource<FieldsResource>,
        contents: Option<StreamReader<u8>>,
        trailers: TrailersFuture,
    ) -> wasmtime::Result<(Resource<Response>, FutureReader<Result<(), ErrorCode>>)> {
        let (sender, receiver) = oneshot::channel();
        let response = {
            let view = host.get();
            let headers = view.table.delete(headers)?.frozen();
            view.table.push(Response {
                status: 200,
                headers,
                body: Body::Guest { contents, trailers },
                transmitted: Some(sender),
            })?
        };
        Ok((response, transmission_future(&mut host, receiver)?))
    }

    fn consume_body(
        mut host: Access<'_, U, Self>,
        response: Resource<Response>,
        mut res: FutureReader<Result<(), ErrorCode>>,
    ) -> wasmtime::Result<(StreamReader<u8>, TrailersFuture)> {
        let response = host.get().table.delete(response)?;
        res.close(&mut host)?;
        body::into_guest_stream(&mut host, response.body)
    }
}

macro_rules! option_accessors {
    ($($get:ident, $set:ident, $field:ident;)*) => {
        $(
            fn $get(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<Option<Duration>> {
                Ok(self.table.get(&options)?.$field)
            }

            fn $set(
                &mut self,
                options: Resource<RequestOptions>,
                duration: Option<Duration>,
            ) -> wasmtime::Result<Result<(), RequestOptionsError>> {
                let options = self.table.get_mut(&options)?;
                if options.immutable {
                    return Ok(Err(RequestOptionsError::Immutable));
                }
                options.$field = duration;
                Ok(Ok(()))
            }
        )*
    };
}

impl v3::HostRequestOptions for WasiHttpCtxView<'_> {
    fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
        Ok(self.table.push(RequestOptions::default())?)
    }

    option_accessors! {
        get_connect_timeout, set_connect_timeout, connect_timeout;
        get_first_byte_timeout, set_first_byte_timeout, first_byte_timeout;
        get_between_bytes_timeout, set_between_bytes_timeout, between_bytes_timeout;
    }

    fn clone(
        &mut self,
        options: Resource<RequestOptions>,
    ) -> wasmtime::Result<Resource<RequestOptions>> {
        let copy = RequestOptions {
            immutable: false,
            ..self.table.get(&options)?.clone()
        };
        Ok(self.table.push(copy)?)
    }

    fn drop(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<()> {
        self.table.delete(options)?;
        Ok(())
    }
}

/// Bytes in one body frame handed to hyper.
pub(crate) const MAX_FRAME: usize = 64 * 1024;
