//! Filesystem errors: the one place where OS errors become `error-code`s.

use std::io;

use rustix::io::Errno;

use crate::bindings::wasi::filesystem::types::ErrorCode;

/// A `wasi:filesystem` failure: an error code for the guest, or a trap.
pub type FsError = crate::error::GuestError<ErrorCode>;

impl From<ErrorCode> for FsError {
    fn from(code: ErrorCode) -> Self {
        FsError::Code(code)
    }
}

impl From<io::Error> for FsError {
    fn from(error: io::Error) -> Self {
        FsError::Code(error_code_from_io(&error))
    }
}

/// Maps an OS error to the closest `error-code`.
pub(crate) fn error_code_from_io(error: &io::Error) -> ErrorCode {
    if let Some(code) = error
        .raw_os_error()
        .and_then(|raw| error_code_from_errno(Errno::from_raw_os_error(raw)))
    {
        return code;
    }
    match error.kind() {
        io::ErrorKind::NotFound => ErrorCode::NoEntry,
        // cap-std reports an attempt to leave the sandbox as PermissionDenied without errno.
        io::ErrorKind::PermissionDenied => ErrorCode::NotPermitted,
        io::ErrorKind::AlreadyExists => ErrorCode::Exist,
        io::ErrorKind::InvalidInput => ErrorCode::Invalid,
        io::ErrorKind::Unsupported => ErrorCode::Unsupported,
        io::ErrorKind::OutOfMemory => ErrorCode::InsufficientMemory,
        _ => ErrorCode::Io,
    }
}

fn error_code_from_errno(errno: Errno) -> Option<ErrorCode> {
    Some(match errno {
        Errno::ACCESS => ErrorCode::Access,
        Errno::AGAIN => ErrorCode::WouldBlock,
        Errno::ALREADY => ErrorCode::Already,
        Errno::BADF => ErrorCode::BadDescriptor,
        Errno::BUSY => ErrorCode::Busy,
        Errno::DEADLK => ErrorCode::Deadlock,
        Errno::DQUOT => ErrorCode::Quota,
        Errno::EXIST => ErrorCode::Exist,
        Errno::FBIG => ErrorCode::FileTooLarge,
        Errno::ILSEQ => ErrorCode::IllegalByteSequence,
        Errno::INPROGRESS => ErrorCode::InProgress,
        Errno::INTR => ErrorCode::Interrupted,
        Errno::INVAL => ErrorCode::Invalid,
        Errno::IO => ErrorCode::Io,
        Errno::ISDIR => ErrorCode::IsDirectory,
        Errno::LOOP => ErrorCode::Loop,
        Errno::MLINK => ErrorCode::TooManyLinks,
        Errno::MSGSIZE => ErrorCode::MessageSize,
        Errno::NAMETOOLONG => ErrorCode::NameTooLong,
        Errno::NODEV => ErrorCode::NoDevice,
        Errno::NOENT => ErrorCode::NoEntry,
        Errno::NOLCK => ErrorCode::NoLock,
        Errno::NOMEM => ErrorCode::InsufficientMemory,
        Errno::NOSPC => ErrorCode::InsufficientSpace,
        Errno::NOTDIR => ErrorCode::NotDirectory,
        Errno::NOTEMPTY => ErrorCode::NotEmpty,
        Errno::NOTRECOVERABLE => ErrorCode::NotRecoverable,
        Errno::NOTSUP => ErrorCode::Unsupported,
        Errno::NOTTY => ErrorCode::NoTty,
        Errno::NXIO => ErrorCode::NoSuchDevice,
        Errno::OVERFLOW => ErrorCode::Overflow,
        Errno::PERM => ErrorCode::NotPermitted,
        Errno::PIPE => ErrorCode::Pipe,
        Errno::ROFS => ErrorCode::ReadOnly,
        Errno::SPIPE => ErrorCode::InvalidSeek,
        Errno::TXTBSY => ErrorCode::TextFileBusy,
        Errno::XDEV => ErrorCode::CrossDevice,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_maps_to_error_code() {
        let cases = [
            (Errno::NOENT, ErrorCode::NoEntry),
            (Errno::EXIST, ErrorCode::Exist),
            (Errno::NOTDIR, ErrorCode::NotDirectory),
            (Errno::ISDIR, ErrorCode::IsDirectory),
            (Errno::NOTEMPTY, ErrorCode::NotEmpty),
            (Errno::ROFS, ErrorCode::ReadOnly),
            (Errno::XDEV, ErrorCode::CrossDevice),
        ];
        for (errno, code) in cases {
            let error = io::Error::from_raw_os_error(errno.raw_os_error());
            assert_eq!(error_code_from_io(&error), code, "{errno:?}");
        }
    }

    #[test]
    fn sandbox_escape_is_not_permitted() {
        let error = io::Error::new(io::ErrorKind::PermissionDenied, "a path led outside");
        assert_eq!(error_code_from_io(&error), ErrorCode::NotPermitted);
    }
}
