//! `wasi:http/types.error-code` as a Rust error, and its mapping from the real causes.

use crate::bindings::wasi::http::types::ErrorCode;

/// An [`ErrorCode`] carried as a Rust error: through `wasi:io` streams (so that
/// `http-error-code` can recover it from a stream's `error`) and through hyper bodies.
#[derive(Debug)]
pub struct HttpError(pub ErrorCode);

impl HttpError {
    /// A body stream's `last-operation-failed` carrying `code`, for `http-error-code`.
    pub fn stream_error(code: ErrorCode) -> weir::io::StreamError {
        weir::io::StreamError::LastOperationFailed(wasmtime::Error::new(HttpError(code)))
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP error: {:?}", self.0)
    }
}

impl std::error::Error for HttpError {}

/// `internal-error` with a message.
pub fn internal(message: &str) -> ErrorCode {
    ErrorCode::InternalError(Some(message.to_string()))
}

impl From<hyper::Error> for ErrorCode {
    fn from(error: hyper::Error) -> Self {
        if let Some(HttpError(code)) =
            std::error::Error::source(&error).and_then(|source| source.downcast_ref::<HttpError>())
        {
            return code.clone();
        }
        if error.is_timeout() {
            return ErrorCode::ConnectionReadTimeout;
        }
        if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
            return ErrorCode::ConnectionTerminated;
        }
        if error.is_parse() {
            return ErrorCode::HttpProtocolError;
        }
        internal(&error.to_string())
    }
}

impl From<HttpError> for ErrorCode {
    fn from(error: HttpError) -> Self {
        error.0
    }
}

/// For bodies that cannot fail (`http_body_util::Full`, `Empty`), so that an embedder can
/// pass them to [`crate::server::handle`] as they are.
impl From<std::convert::Infallible> for ErrorCode {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
