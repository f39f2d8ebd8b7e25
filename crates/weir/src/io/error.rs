//! Stream errors and the `wasi:io/error.error` resource.

use std::fmt;

/// The `wasi:io/error.error` resource: an error behind `last-operation-failed`.
///
/// It keeps the original error so that interface-specific functions (for example
/// `wasi:filesystem/types.filesystem-error-code`) can recover an error code from it.
pub struct IoError(pub wasmtime::Error);

impl IoError {
    /// Wraps an operating-system error.
    pub fn from_io(error: std::io::Error) -> Self {
        IoError(wasmtime::Error::new(error))
    }

    /// The underlying `std::io::Error`, if this error came from the operating system.
    pub fn as_io(&self) -> Option<&std::io::Error> {
        self.0.downcast_ref::<std::io::Error>()
    }
}

impl fmt::Debug for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// What a stream operation can report.
///
/// The three cases map onto the WIT exactly: [`StreamError::Closed`] is `stream-error.closed`
/// (the stream will never produce or accept data again), [`StreamError::LastOperationFailed`]
/// is `stream-error.last-operation-failed(error)` (the stream is closed *because* of this
/// error), and [`StreamError::Trap`] aborts the guest.
#[derive(Debug)]
pub enum StreamError {
    /// The stream is closed; no error to report.
    Closed,
    /// The last operation failed; the stream is closed from now on.
    LastOperationFailed(wasmtime::Error),
    /// A contract violation or host failure that must trap the guest.
    Trap(wasmtime::Error),
}

/// Result of a stream operation.
pub type StreamResult<T> = Result<T, StreamError>;

impl StreamError {
    /// A `last-operation-failed` carrying an operating-system error, except that a broken
    /// pipe or a reset connection means the other side went away: that is `closed`.
    pub fn from_io(error: std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::BrokenPipe => StreamError::Closed,
            _ => StreamError::LastOperationFailed(wasmtime::Error::new(error)),
        }
    }

    /// A trap with the given message.
    pub fn trap(message: impl fmt::Display) -> Self {
        StreamError::Trap(wasmtime::format_err!("{message}"))
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Closed => write!(f, "stream closed"),
            StreamError::LastOperationFailed(e) => write!(f, "last operation failed: {e}"),
            StreamError::Trap(e) => write!(f, "trap: {e}"),
        }
    }
}

impl std::error::Error for StreamError {}

impl From<std::io::Error> for StreamError {
    fn from(error: std::io::Error) -> Self {
        StreamError::from_io(error)
    }
}

impl From<wasmtime::component::ResourceTableError> for StreamError {
    fn from(error: wasmtime::component::ResourceTableError) -> Self {
        StreamError::Trap(error.into())
    }
}

impl From<wasmtime::Error> for StreamError {
    fn from(error: wasmtime::Error) -> Self {
        StreamError::Trap(error)
    }
}
