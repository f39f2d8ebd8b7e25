//! Operating-system specifics of the socket implementation (Linux): the one place where
//! socket errors become `wasi:sockets` error codes, and the few socket calls no safe crate
//! offers; writing stdout/stderr from the guest's thread without waiting. Also the crate's
//! only other `unsafe` call: loading precompiled native code.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use rustix::io::Errno;

use crate::bindings::wasi::sockets::network::ErrorCode;

/// Maps a socket error to the `error-code` the WIT documents for it.
pub(crate) fn socket_error_code(error: &io::Error) -> ErrorCode {
    let Some(raw) = error.raw_os_error() else {
        return match error.kind() {
            io::ErrorKind::WouldBlock => ErrorCode::WouldBlock,
            io::ErrorKind::PermissionDenied => ErrorCode::AccessDenied,
            io::ErrorKind::InvalidInput => ErrorCode::InvalidArgument,
            io::ErrorKind::OutOfMemory => ErrorCode::OutOfMemory,
            _ => ErrorCode::Unknown,
        };
    };
    match Errno::from_raw_os_error(raw) {
        Errno::ACCESS | Errno::PERM => ErrorCode::AccessDenied,
        Errno::AFNOSUPPORT | Errno::INVAL | Errno::DESTADDRREQ | Errno::ISCONN => {
            ErrorCode::InvalidArgument
        }
        Errno::NOTSUP | Errno::PROTONOSUPPORT | Errno::PROTOTYPE => ErrorCode::NotSupported,
        Errno::NOMEM | Errno::NOBUFS => ErrorCode::OutOfMemory,
        Errno::TIMEDOUT => ErrorCode::Timeout,
        Errno::ALREADY => ErrorCode::ConcurrencyConflict,
        Errno::AGAIN | Errno::INPROGRESS => ErrorCode::WouldBlock,
        Errno::NOTCONN => ErrorCode::InvalidState,
        Errno::MFILE | Errno::NFILE => ErrorCode::NewSocketLimit,
        Errno::ADDRNOTAVAIL => ErrorCode::AddressNotBindable,
        Errno::ADDRINUSE => ErrorCode::AddressInUse,
        Errno::HOSTUNREACH
        | Errno::HOSTDOWN
        | Errno::NETUNREACH
        | Errno::NETDOWN
        | Errno::NONET
        | Errno::NETRESET => ErrorCode::RemoteUnreachable,
        Errno::CONNREFUSED => ErrorCode::ConnectionRefused,
        Errno::CONNRESET => ErrorCode::ConnectionReset,
        Errno::CONNABORTED => ErrorCode::ConnectionAborted,
        Errno::MSGSIZE => ErrorCode::DatagramTooLarge,
        _ => ErrorCode::Unknown,
    }
}

/// Bytes waiting in the socket's send queue (`SIOCOUTQ`).
pub(crate) fn send_queue_bytes(socket: &impl AsFd) -> io::Result<usize> {
    let mut queued: libc::c_int = 0;
    // SAFETY: the descriptor is valid for the borrow, and SIOCOUTQ writes one c_int through
    // the pointer, which points at a live, writable c_int.
    let result = unsafe {
        libc::ioctl(
            socket.as_fd().as_raw_fd(),
            libc::TIOCOUTQ,
            &mut queued as *mut libc::c_int,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(queued).unwrap_or(0))
}

/// Restores the kernel's default path-MTU behaviour (fragment when needed, no DF bit), which
/// `quinn-udp` turns off for QUIC. A WASI guest's datagrams larger than the path MTU must be
/// fragmented, not refused.
pub(crate) fn allow_fragmentation(socket: &impl AsFd, ipv6: bool) -> io::Result<()> {
    let (level, name, value) = if ipv6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_WANT,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_WANT,
        )
    };
    // SAFETY: the descriptor is valid for the borrow; the option value is a c_int that lives
    // across the call and whose size is passed alongside.
    let result = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `connect(AF_UNSPEC)`: dissolves a UDP socket's association with its peer.
pub(crate) fn disconnect(socket: &impl AsFd) -> io::Result<()> {
    match rustix::net::connect_unspec(socket) {
        Ok(()) => Ok(()),
        // Linux reports EAFNOSUPPORT on some kernels although the disconnect happened.
        Err(Errno::AFNOSUPPORT) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// Sends datagrams with `sendmmsg`, 256 at a time: `(payload, destination)`, where `None`
/// sends to the connected peer. Returns how many were sent; an error only when none was.
pub(crate) fn send_many(
    socket: &impl AsFd,
    datagrams: &[(&[u8], Option<std::net::SocketAddr>)],
) -> io::Result<usize> {
    use rustix::net::addr::SocketAddrArg;
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags};
    let mut sent = 0;
    for chunk in datagrams.chunks(256) {
        let addresses: Vec<Option<rustix::net::SocketAddrAny>> = chunk
            .iter()
            .map(|(_, to)| to.as_ref().map(|a| a.as_any()))
            .collect();
        let iovs: Vec<[io::IoSlice<'_>; 1]> = chunk
            .iter()
            .map(|(data, _)| [io::IoSlice::new(data)])
            .collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> =
            chunk.iter().map(|_| Default::default()).collect();
        let mut messages: Vec<MMsgHdr<'_>> = iovs
            .iter()
            .zip(controls.iter_mut())
            .zip(&addresses)
            .map(|((iov, control), address)| match address {
                Some(address) => MMsgHdr::new_with_addr(address, iov, control),
                None => MMsgHdr::new(iov, control),
            })
            .collect();
        let n = loop {
            match rustix::net::sendmmsg(socket, &mut messages, SendFlags::DONTWAIT) {
                Ok(n) => break n,
                Err(Errno::INTR) => continue,
                Err(_) if sent > 0 => return Ok(sent),
                Err(errno) => return Err(errno.into()),
            }
        };
        sent += n;
        if n < chunk.len() {
            break;
        }
    }
    Ok(sent)
}

/// Registers a shared socket with the current tokio reactor for `interest`.
pub(crate) fn register_shared(
    socket: std::sync::Arc<socket2::Socket>,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<std::sync::Arc<socket2::Socket>>> {
    // SAFETY: the `AsyncFd` holds a strong reference to the socket, so the descriptor stays
    // open and unchanged for as long as it is registered; a `Socket` never changes its
    // descriptor.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(socket, interest) }
        .map_err(|error| error.into_parts().1)
}

/// Registers a socket with the current tokio reactor for `interest`.
pub(crate) fn register<S: std::os::fd::AsRawFd + Into<std::os::fd::OwnedFd>>(
    socket: S,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<S>> {
    // SAFETY: the socket owns its descriptor (it converts into an `OwnedFd`), which stays
    // open and unchanged for as long as the `AsyncFd` owns the socket; Weir never swaps the
    // inner socket.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(socket, interest) }
        .map_err(|error| error.into_parts().1)
}

/// The buffer size a guest sees for the kernel's `SO_RCVBUF`/`SO_SNDBUF` figure: Linux
/// stores (and reports) twice the size asked for, the extra half being its bookkeeping
/// overhead, so halving gives back what was set (as wasmtime reports it too).
pub(crate) fn guest_buffer_size(kernel: usize) -> usize {
    if cfg!(target_os = "linux") {
        kernel / 2
    } else {
        kernel
    }
}

/// One `recv` of at most `len` bytes into `buffer`'s spare capacity (no zero-filling first).
pub(crate) fn receive_into(
    socket: &socket2::Socket,
    buffer: &mut bytes::BytesMut,
    len: usize,
) -> io::Result<usize> {
    buffer.reserve(len);
    let start = buffer.len();
    let spare = &mut buffer.spare_capacity_mut()[..len];
    let n = socket.recv(spare)?;
    // SAFETY: `recv` initialised the first `n` bytes of the spare capacity (it returns how
    // many it wrote, at most `len`), so the buffer's first `start + n` bytes are initialised.
    unsafe { buffer.set_len(start + n.min(len)) };
    Ok(n)
}

/// glibc's "no address of the requested family" code, which the `libc` crate does not export.
const EAI_ADDRFAMILY: libc::c_int = -9;

/// Maps a `getaddrinfo` failure (`EAI_*`, with `errno` for `EAI_SYSTEM`) to the error code
/// the WIT documents for it.
fn resolver_error_code(status: libc::c_int, errno: io::Error) -> ErrorCode {
    match status {
        libc::EAI_NONAME | libc::EAI_NODATA | EAI_ADDRFAMILY => ErrorCode::NameUnresolvable,
        libc::EAI_AGAIN => ErrorCode::TemporaryResolverFailure,
        libc::EAI_MEMORY => ErrorCode::OutOfMemory,
        libc::EAI_SYSTEM => socket_error_code(&errno),
        _ => ErrorCode::PermanentResolverFailure,
    }
}

/// Resolves `name` with the system resolver (`getaddrinfo`), blocking. Errors are the WIT's
/// `resolve-next-address` codes.
pub(crate) fn resolve_host(name: &str) -> Result<Vec<std::net::IpAddr>, ErrorCode> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let Ok(c_name) = std::ffi::CString::new(name) else {
        return Err(ErrorCode::InvalidArgument);
    };
    // SAFETY: an all-zero `addrinfo` is a valid "no hints" value; the fields set below are
    // plain integers.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `c_name` is a NUL-terminated string and `hints` a valid addrinfo, both alive
    // across the call; `list` receives a list that is freed below with `freeaddrinfo`.
    let status = unsafe { libc::getaddrinfo(c_name.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if status != 0 {
        return Err(resolver_error_code(status, io::Error::last_os_error()));
    }
    let mut addresses = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a non-null node of the list getaddrinfo returned, not yet freed.
        let info = unsafe { &*entry };
        if !info.ai_addr.is_null() {
            if info.ai_family == libc::AF_INET {
                // SAFETY: for AF_INET entries `ai_addr` points at a `sockaddr_in`.
                let sin = unsafe { &*(info.ai_addr as *const libc::sockaddr_in) };
                addresses.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            } else if info.ai_family == libc::AF_INET6 {
                // SAFETY: for AF_INET6 entries `ai_addr` points at a `sockaddr_in6`.
                let sin6 = unsafe { &*(info.ai_addr as *const libc::sockaddr_in6) };
                addresses.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        entry = info.ai_next;
    }
    // SAFETY: `list` came from a successful getaddrinfo and is freed exactly once; no
    // reference into it outlives this point.
    unsafe { libc::freeaddrinfo(list) };
    Ok(addresses)
}

/// How stdout or stderr can be written from the guest's own thread without ever waiting:
/// the host's descriptor as it is (regular files and devices other than terminals: the
/// kernel completes those writes without waiting for a reader), a second open file
/// description of the same pipe or FIFO made non-blocking (`/proc/self/fd/N` opened anew, so
/// the descriptor the process shares with others keeps its flags), or `send` with
/// `MSG_DONTWAIT` on a socket. `None` (a terminal, no `/proc`, anything else): only the
/// writer thread writes.
pub(crate) enum DirectWriter {
    /// Write to the host's descriptor itself.
    Plain,
    /// A non-blocking open file description of the same pipe.
    Reopened(std::os::fd::OwnedFd),
    /// `send(MSG_DONTWAIT)` on the host's socket.
    Socket,
}

impl DirectWriter {
    /// Inspects the host's `fd`.
    pub(crate) fn for_fd(fd: std::os::fd::BorrowedFd<'_>) -> Option<DirectWriter> {
        use rustix::fs::FileType;
        if rustix::termios::isatty(fd) {
            return None;
        }
        let stat = rustix::fs::fstat(fd).ok()?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile | FileType::CharacterDevice => Some(DirectWriter::Plain),
            FileType::Socket => Some(DirectWriter::Socket),
            FileType::Fifo => {
                let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
                let reopened = rustix::fs::open(
                    path,
                    rustix::fs::OFlags::WRONLY
                        | rustix::fs::OFlags::NONBLOCK
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .ok()?;
                // Only if it is the very same pipe (not whatever the path now names).
                let again = rustix::fs::fstat(&reopened).ok()?;
                (again.st_dev == stat.st_dev && again.st_ino == stat.st_ino)
                    .then_some(DirectWriter::Reopened(reopened))
            }
            _ => None,
        }
    }

    /// Writes what `fd` takes now without waiting: the number of bytes written, 0 if it
    /// would have to wait.
    pub(crate) fn try_write(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        bytes: &[u8],
    ) -> io::Result<usize> {
        loop {
            let result = match self {
                DirectWriter::Plain => rustix::io::write(fd, bytes),
                DirectWriter::Reopened(pipe) => rustix::io::write(pipe, bytes),
                DirectWriter::Socket => rustix::net::send(
                    fd,
                    bytes,
                    rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
                ),
            };
            match result {
                Ok(n) => return Ok(n),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(0),
                Err(errno) => return Err(errno.into()),
            }
        }
    }
}

/// Loads a module Wasmtime precompiled (`Module::serialize`, `wasmtime compile`).
pub(crate) fn deserialize_module(
    engine: &wasmtime::Engine,
    bytes: &[u8],
) -> wasmtime::Result<wasmtime::Module> {
    // SAFETY: the caller loads only bytes the user marked as trusted precompiled code
    // (`--allow-precompiled`); Wasmtime checks the header, version and engine configuration,
    // and trusts the machine code itself, which is what the user vouched for.
    unsafe { wasmtime::Module::deserialize(engine, bytes) }
}

/// Loads a component Wasmtime precompiled (`Component::serialize`, `wasmtime compile`).
pub(crate) fn deserialize_component(
    engine: &wasmtime::Engine,
    bytes: &[u8],
) -> wasmtime::Result<wasmtime::component::Component> {
    // SAFETY: as in `deserialize_module`: only bytes the user marked as trusted.
    unsafe { wasmtime::component::Component::deserialize(engine, bytes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolver_errors_map_as_the_wit_documents() {
        let errno = || io::Error::from_raw_os_error(Errno::NOMEM.raw_os_error());
        for (status, code) in [
            (libc::EAI_NONAME, ErrorCode::NameUnresolvable),
            (libc::EAI_NODATA, ErrorCode::NameUnresolvable),
            (EAI_ADDRFAMILY, ErrorCode::NameUnresolvable),
            (libc::EAI_AGAIN, ErrorCode::TemporaryResolverFailure),
            (libc::EAI_FAIL, ErrorCode::PermanentResolverFailure),
            (libc::EAI_MEMORY, ErrorCode::OutOfMemory),
            (libc::EAI_SYSTEM, ErrorCode::OutOfMemory),
        ] {
            assert_eq!(resolver_error_code(status, errno()), code, "{status}");
        }
    }

    #[test]
    fn typical_errors_map_as_the_wit_documents() {
        let cases = [
            (Errno::AFNOSUPPORT, ErrorCode::InvalidArgument),
            (Errno::DESTADDRREQ, ErrorCode::InvalidArgument),
            (Errno::ISCONN, ErrorCode::InvalidArgument),
            (Errno::ADDRINUSE, ErrorCode::AddressInUse),
            (Errno::ADDRNOTAVAIL, ErrorCode::AddressNotBindable),
            (Errno::HOSTUNREACH, ErrorCode::RemoteUnreachable),
            (Errno::NETUNREACH, ErrorCode::RemoteUnreachable),
            (Errno::NONET, ErrorCode::RemoteUnreachable),
            (Errno::CONNREFUSED, ErrorCode::ConnectionRefused),
            (Errno::MSGSIZE, ErrorCode::DatagramTooLarge),
            (Errno::MFILE, ErrorCode::NewSocketLimit),
        ];
        for (errno, code) in cases {
            let error = io::Error::from_raw_os_error(errno.raw_os_error());
            assert_eq!(socket_error_code(&error), code, "{errno:?}");
        }
    }
}
