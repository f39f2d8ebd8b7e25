//! Errors of host functions whose WIT result carries an interface's `error-code`.

use std::fmt;

/// Either an `error-code` for the guest (`C` is the interface's enum) or a trap.
#[derive(Debug)]
pub enum GuestError<C> {
    /// Returned to the guest as `error-code`.
    Code(C),
    /// Traps the guest (an invalid handle, a contract violation).
    Trap(wasmtime::Error),
}

impl<C> GuestError<C> {
    /// The value for the guest, or the trap.
    pub(crate) fn into_guest(self) -> wasmtime::Result<C> {
        match self {
            GuestError::Code(code) => Ok(code),
            GuestError::Trap(error) => Err(error),
        }
    }
}

impl<C: fmt::Debug> fmt::Display for GuestError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestError::Code(code) => write!(f, "{code:?}"),
            GuestError::Trap(error) => write!(f, "{error}"),
        }
    }
}

impl<C: fmt::Debug> std::error::Error for GuestError<C> {}

impl<C> From<wasmtime::component::ResourceTableError> for GuestError<C> {
    fn from(error: wasmtime::component::ResourceTableError) -> Self {
        GuestError::Trap(error.into())
    }
}

impl<C> From<wasmtime::Error> for GuestError<C> {
    fn from(error: wasmtime::Error) -> Self {
        GuestError::Trap(error)
    }
}
