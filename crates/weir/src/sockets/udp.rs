//! The UDP core of `wasi:sockets` (both ABIs: `crate::p2::sockets::udp`, `crate::p3::sockets`).
//!
//! Sends are batched into as few system calls as the kernel allows: consecutive datagrams to
//! the same destination with the same size go out as one UDP GSO (`UDP_SEGMENT`) send;
//! receives use `recvmmsg` with GRO (both through `quinn-udp`, which detects kernel support at
//! run time and falls back to one datagram per call). Receive buffers are allocated once per
//! stream and reused.

use std::collections::VecDeque;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::{
    NetworkPolicy, NetworkStats, NetworkUse, SocketError, SocketResult, SocketSlot, check_family,
    check_remote, enforce, from_socket_addr, is_ipv4, to_socket_addr,
};
use crate::bindings::wasi::sockets::network::{ErrorCode, IpAddressFamily};
use crate::bindings::wasi::sockets::udp::{IncomingDatagram, OutgoingDatagram};
use crate::io::Pollable;

/// The most datagrams one `check-send` permits (the kernel's GSO segment limit is 64).
pub const MAX_SEND_PERMIT: usize = 64;
/// Receive buffers per incoming stream; each holds one datagram, or several with GRO.
const RECEIVE_BUFFERS: usize = 8;
/// Size of one receive buffer: the largest UDP payload, or one GRO batch.
const RECEIVE_BUFFER_BYTES: usize = 65536;
/// Largest UDP payload over IPv4 and IPv6.
const MAX_PAYLOAD_V4: usize = 65507;
const MAX_PAYLOAD_V6: usize = 65527;
/// Largest datagram sent with GSO: above it, segmenting in the kernel costs more than
/// `sendmmsg` saves (measured on loopback; see docs/benchmarks.md).
const GSO_MAX_SEGMENT_BYTES: usize = 1024;
/// Size assumed for the next datagrams before the guest sent any.
const INITIAL_SIZE_ESTIMATE: usize = 1500;

/// State shared by a socket and its streams.
pub(crate) struct UdpShared {
    /// Registered with the reactor for readability only: write readiness is asked for only
    /// while a guest waits for a permit, because every send would otherwise wake the reactor
    /// (the kernel signals "writable" as each datagram leaves the send queue).
    pub(crate) socket: AsyncFd<std::net::UdpSocket>,
    pub(crate) family: IpAddressFamily,
    quinn: UdpSocketState,
    /// Bumped by each `stream` call: streams from earlier calls stop working.
    generation: AtomicU64,
    /// `SO_SNDBUF`, cached: it only changes through `set-send-buffer-size`.
    send_buffer_bytes: AtomicUsize,
    pub(crate) stats: Arc<NetworkStats>,
    _slot: SocketSlot,
}

impl UdpShared {
    pub(crate) fn max_payload(&self) -> usize {
        if is_ipv4(self.family) {
            MAX_PAYLOAD_V4
        } else {
            MAX_PAYLOAD_V6
        }
    }

    /// Where a datagram of `len` bytes goes from a socket connected to `connected` (if it
    /// is), asked for `requested`: the checks 0.2's and 0.3's `send` share, in the WIT's
    /// order (too large, a remote that does not match the connection or is missing, a bad
    /// remote, the policy's `udp-send` rules).
    pub(crate) fn send_destination(
        &self,
        policy: &NetworkPolicy,
        connected: Option<SocketAddr>,
        len: usize,
        requested: Option<SocketAddr>,
    ) -> SocketResult<SocketAddr> {
        if len > self.max_payload() {
            return Err(ErrorCode::DatagramTooLarge.into());
        }
        match (connected, requested) {
            (Some(remote), None) => Ok(remote),
            (Some(remote), Some(address)) if address == remote => Ok(remote),
            (Some(_), Some(_)) | (None, None) => Err(ErrorCode::InvalidArgument.into()),
            (None, Some(address)) => {
                check_remote(self.family, &address)?;
                enforce(policy, &self.stats, NetworkUse::UdpSend, address)?;
                Ok(address)
            }
        }
    }

    /// Sends `contents` (one datagram, or equal-size segments with GSO) to `destination`.
    pub(crate) fn transmit(
        &self,
        destination: SocketAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> std::io::Result<()> {
        let transmit = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        self.quinn
            .try_send(UdpSockRef::from(self.socket.get_ref()), &transmit)
    }

    /// Waits until the socket grants a send permit, registering for write readiness only
    /// for the duration of the wait.
    pub(crate) async fn wait_for_send_permit(&self, size_estimate: usize) {
        if !matches!(self.send_permit(size_estimate), Ok(0)) {
            return;
        }
        let Ok(duplicate) = self.socket.get_ref().try_clone() else {
            return;
        };
        let Ok(writable) = crate::sys::register(duplicate, Interest::WRITABLE) else {
            return;
        };
        loop {
            let Ok(mut guard) = writable.writable().await else {
                return;
            };
            if !matches!(self.send_permit(size_estimate), Ok(0)) {
                return;
            }
            guard.clear_ready();
        }
    }

    /// Datagrams the socket can take now, from its free send-buffer space (`SIOCOUTQ`
    /// against `SO_SNDBUF`). Linux reports a UDP socket writable while less than half of its
    /// send buffer is in use; the permit follows the same rule, so that `ok(0)` and the
    /// pollable agree.
    fn send_permit(&self, size_estimate: usize) -> SocketResult<usize> {
        let capacity = self.send_buffer_bytes.load(Ordering::Relaxed);
        let queued = crate::sys::send_queue_bytes(self.socket.get_ref())?;
        Ok(permit_for(capacity, queued, size_estimate))
    }

    pub(crate) fn refresh_send_buffer_bytes(&self) -> std::io::Result<()> {
        let bytes = socket2::SockRef::from(self.socket.get_ref()).send_buffer_size()?;
        self.send_buffer_bytes.store(bytes, Ordering::Relaxed);
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UdpState {
    Unbound,
    BindStarted,
    Bound,
    Connected(SocketAddr),
}

/// The guest's `udp-socket` resource.
pub struct UdpSocket {
    pub(crate) shared: Arc<UdpShared>,
    pub(crate) state: UdpState,
    /// The policy of the network the socket was bound on.
    pub(crate) policy: Option<Arc<NetworkPolicy>>,
    /// The address given to `start-bind`, with the port the kernel picked.
    bound_address: Option<SocketAddr>,
}

impl UdpSocket {
    pub(crate) fn new(
        family: IpAddressFamily,
        stats: Arc<NetworkStats>,
        slot: SocketSlot,
    ) -> SocketResult<Self> {
        let socket = super::new_socket(family, socket2::Type::DGRAM, socket2::Protocol::UDP)?;
        let quinn = UdpSocketState::new(UdpSockRef::from(&socket))?;
        crate::sys::allow_fragmentation(&socket, !is_ipv4(family))?;
        let send_buffer_bytes = AtomicUsize::new(socket.send_buffer_size()?);
        let std_socket: std::net::UdpSocket = socket.into();
        let socket =
            crate::sync::with_reactor(|| crate::sys::register(std_socket, Interest::READABLE))?;
        Ok(UdpSocket {
            shared: Arc::new(UdpShared {
                socket,
                family,
                quinn,
                generation: AtomicU64::new(0),
                send_buffer_bytes,
                stats,
                _slot: slot,
            }),
            state: UdpState::Unbound,
            policy: None,
            bound_address: None,
        })
    }

    /// Binds the socket (unbound, as the caller checked) to `address` under `policy`, which
    /// the socket keeps for its later sends and receives. The state is the caller's to set.
    pub(crate) fn bind_to(
        &mut self,
        policy: Arc<NetworkPolicy>,
        stats: &NetworkStats,
        address: SocketAddr,
    ) -> SocketResult<()> {
        check_family(self.shared.family, &address)?;
        enforce(&policy, stats, NetworkUse::UdpBind, address)?;
        socket2::SockRef::from(self.shared.socket.get_ref()).bind(&address.into())?;
        let port = self.shared.socket.get_ref().local_addr()?.port();
        self.bound_address = Some(SocketAddr::new(address.ip(), port));
        self.policy = Some(policy);
        Ok(())
    }

    /// Connects a bound socket to `remote`, or disconnects it (`None`), after the checks
    /// `stream` and 0.3's `connect` share; returns the new stream generation.
    pub(crate) fn reassociate(&mut self, remote: Option<SocketAddr>) -> SocketResult<u64> {
        let policy = self.policy()?.clone();
        if let Some(remote) = &remote {
            check_remote(self.shared.family, remote)?;
            enforce(&policy, &self.shared.stats, NetworkUse::UdpSend, *remote)?;
        }
        if let UdpState::Connected(_) = self.state {
            crate::sys::disconnect(self.shared.socket.get_ref())?;
            self.state = UdpState::Bound;
            // Linux releases an implicitly chosen port on disconnect; WASI keeps the socket
            // bound, so bind it to the same address again.
            if let Some(bound) = self.bound_address
                && self.shared.socket.get_ref().local_addr()?.port() == 0
            {
                socket2::SockRef::from(self.shared.socket.get_ref()).bind(&bound.into())?;
            }
        }
        if let Some(remote) = remote {
            socket2::SockRef::from(self.shared.socket.get_ref()).connect(&remote.into())?;
            self.state = UdpState::Connected(remote);
        }
        Ok(self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// The remote address the socket is connected to, if it is.
    pub(crate) fn connected(&self) -> Option<SocketAddr> {
        match self.state {
            UdpState::Connected(remote) => Some(remote),
            _ => None,
        }
    }

    /// The current stream generation (bumped by each association change).
    pub(crate) fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// A receiver of the datagrams of the current association (generation `generation`).
    pub(crate) fn incoming(&self, generation: u64) -> SocketResult<IncomingDatagramStream> {
        Ok(IncomingDatagramStream {
            shared: self.shared.clone(),
            generation,
            remote: self.connected(),
            policy: self.policy()?.clone(),
            pending: VecDeque::new(),
            buffers: Vec::new(),
        })
    }

    /// The sending side of association `generation` (with `remote`, if connected).
    pub(crate) fn outgoing(
        &self,
        generation: u64,
        remote: Option<SocketAddr>,
    ) -> SocketResult<OutgoingDatagramStream> {
        Ok(OutgoingDatagramStream {
            shared: self.shared.clone(),
            generation,
            remote,
            policy: self.policy()?.clone(),
            permit: None,
            size_estimate: INITIAL_SIZE_ESTIMATE,
            batch: Vec::new(),
        })
    }

    fn policy(&self) -> SocketResult<&Arc<NetworkPolicy>> {
        self.policy
            .as_ref()
            .ok_or(SocketError::Code(ErrorCode::InvalidState))
    }
}

#[async_trait::async_trait]
impl Pollable for UdpSocket {
    // Binding completes within `start-bind`: nothing to wait for.
    async fn ready(&mut self) {}
}

/// The guest's `incoming-datagram-stream` resource.
pub struct IncomingDatagramStream {
    shared: Arc<UdpShared>,
    generation: u64,
    remote: Option<SocketAddr>,
    policy: Arc<NetworkPolicy>,
    /// Datagrams received (e.g. in one GRO batch) beyond what the guest asked for.
    pending: VecDeque<IncomingDatagram>,
    /// Receive buffers, allocated on first use and reused.
    buffers: Vec<u8>,
}

/// The guest's `outgoing-datagram-stream` resource.
pub struct OutgoingDatagramStream {
    shared: Arc<UdpShared>,
    generation: u64,
    remote: Option<SocketAddr>,
    policy: Arc<NetworkPolicy>,
    /// The grant of the last `check-send`, consumed by `send`.
    permit: Option<usize>,
    size_estimate: usize,
    /// Reused staging buffer for GSO batches.
    batch: Vec<u8>,
}

fn is_current(shared: &UdpShared, generation: u64) -> bool {
    shared.generation.load(Ordering::Acquire) == generation
}

fn require_current(shared: &UdpShared, generation: u64) -> SocketResult<()> {
    if is_current(shared, generation) {
        Ok(())
    } else {
        // Superseded by a later `stream` call: only the newest pair is operational.
        Err(ErrorCode::InvalidState.into())
    }
}

#[async_trait::async_trait]
impl Pollable for IncomingDatagramStream {
    async fn ready(&mut self) {
        if !self.pending.is_empty() || !is_current(&self.shared, self.generation) {
            return;
        }
        let _ = self.shared.socket.readable().await;
    }
}

#[async_trait::async_trait]
impl Pollable for OutgoingDatagramStream {
    async fn ready(&mut self) {
        if !is_current(&self.shared, self.generation) {
            return;
        }
        self.shared.wait_for_send_permit(self.size_estimate).await;
    }
}

impl IncomingDatagramStream {
    pub(crate) fn receive(&mut self, max_results: u64) -> SocketResult<Vec<IncomingDatagram>> {
        require_current(&self.shared, self.generation)?;
        let max = usize::try_from(max_results).unwrap_or(usize::MAX).min(1024);
        let mut results = Vec::new();
        while results.len() < max {
            if let Some(datagram) = self.pending.pop_front() {
                results.push(datagram);
                continue;
            }
            match self.receive_batch() {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) if results.is_empty() => return Err(error.into()),
                // Report what arrived; the error surfaces on the next call if it persists.
                Err(_) => break,
            }
        }
        Ok(results)
    }

    /// One `recvmmsg`: moves what arrived into `pending`. Returns how many messages were read.
    fn receive_batch(&mut self) -> std::io::Result<usize> {
        if self.buffers.is_empty() {
            self.buffers = vec![0u8; RECEIVE_BUFFERS * RECEIVE_BUFFER_BYTES];
        }
        let mut metas = [RecvMeta::default(); RECEIVE_BUFFERS];
        let shared = &self.shared;
        let messages = {
            let mut slices: Vec<IoSliceMut<'_>> = self
                .buffers
                .chunks_mut(RECEIVE_BUFFER_BYTES)
                .map(IoSliceMut::new)
                .collect();
            // Straight to the kernel: tokio's cached readiness may lag behind the socket.
            let result = shared.quinn.recv(
                UdpSockRef::from(shared.socket.get_ref()),
                &mut slices,
                &mut metas,
            );
            if matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
                // A non-blocking receive does not report an ICMP error (connection refused,
                // unreachable) pending on a connected socket; `SO_ERROR` does.
                if self.remote.is_some()
                    && let Some(error) =
                        socket2::SockRef::from(shared.socket.get_ref()).take_error()?
                {
                    return Err(error);
                }
                super::clear_read_readiness(&shared.socket);
            }
            result?
        };
        for (meta, buffer) in metas
            .iter()
            .zip(self.buffers.chunks(RECEIVE_BUFFER_BYTES))
            .take(messages)
        {
            let source = meta.addr;
            if let Some(remote) = self.remote {
                // Datagrams queued before `stream` connected the socket may come from others.
                if remote.ip() != source.ip() || remote.port() != source.port() {
                    continue;
                }
            }
            for segment in segments(&buffer[..meta.len.min(buffer.len())], meta.stride) {
                if enforce(&self.policy, &shared.stats, NetworkUse::UdpReceive, source).is_err() {
                    continue;
                }
                NetworkStats::add(&shared.stats.udp_datagrams_received, 1);
                NetworkStats::add(&shared.stats.udp_bytes_received, segment.len() as u64);
                self.pending.push_back(IncomingDatagram {
                    data: segment.to_vec(),
                    remote_address: from_socket_addr(source),
                });
            }
        }
        Ok(messages)
    }
}

impl OutgoingDatagramStream {
    pub(crate) fn check_send(&mut self) -> SocketResult<u64> {
        self.permit = None;
        require_current(&self.shared, self.generation)?;
        let permit = self.shared.send_permit(self.size_estimate)?;
        self.permit = Some(permit);
        Ok(permit as u64)
    }

    /// Where datagram `d` goes, after the checks the WIT lists for `send`.
    fn destination(&self, datagram: &OutgoingDatagram) -> SocketResult<SocketAddr> {
        self.shared.send_destination(
            &self.policy,
            self.remote,
            datagram.data.len(),
            datagram.remote_address.map(to_socket_addr),
        )
    }

    pub(crate) fn send(&mut self, datagrams: Vec<OutgoingDatagram>) -> SocketResult<u64> {
        let permit = self.permit.take().ok_or_else(|| {
            SocketError::Trap(wasmtime::format_err!(
                "wasi:sockets/udp.outgoing-datagram-stream.send: not preceded by check-send \
                 (unpermitted: argument exceeds permitted size)"
            ))
        })?;
        if datagrams.len() > permit {
            return Err(SocketError::Trap(wasmtime::format_err!(
                "wasi:sockets/udp.outgoing-datagram-stream.send: {} datagrams exceed the {permit} \
                 permitted by check-send (unpermitted: argument exceeds permitted size)",
                datagrams.len()
            )));
        }
        require_current(&self.shared, self.generation)?;
        if let Some(largest) = datagrams.iter().map(|d| d.data.len()).max() {
            self.size_estimate = largest.max(1);
        }
        // Validate in order up to the first datagram the WIT says to refuse.
        let mut destinations = Vec::with_capacity(datagrams.len());
        let mut refused = None;
        for datagram in &datagrams {
            match self.destination(datagram) {
                Ok(destination) => destinations.push(destination),
                Err(error) => {
                    refused = Some(error);
                    break;
                }
            }
        }
        let (sent, error) = self.send_valid(&datagrams[..destinations.len()], &destinations);
        NetworkStats::add(&self.shared.stats.udp_datagrams_sent, sent as u64);
        let bytes: usize = datagrams[..sent].iter().map(|d| d.data.len()).sum();
        NetworkStats::add(&self.shared.stats.udp_bytes_sent, bytes as u64);
        if sent < destinations.len() {
            return match error {
                Some(error) if error.kind() != std::io::ErrorKind::WouldBlock => {
                    finish(sent, error.into())
                }
                _ => Ok(sent as u64),
            };
        }
        match refused {
            Some(error) => finish(sent, error),
            None => Ok(sent as u64),
        }
    }

    /// Sends already validated datagrams in as few system calls as possible: GSO for runs
    /// to one destination with one size, `sendmmsg` for the rest. Returns how many were sent
    /// and the error that stopped it, if any.
    fn send_valid(
        &mut self,
        datagrams: &[OutgoingDatagram],
        destinations: &[SocketAddr],
    ) -> (usize, Option<std::io::Error>) {
        let max_segments = self.shared.quinn.max_gso_segments().max(1);
        let mut sent = 0;
        while sent < datagrams.len() {
            let size = datagrams[sent].data.len();
            let run = gso_run(&datagrams[sent..], &destinations[sent..], max_segments);
            if run >= 2 && size <= GSO_MAX_SEGMENT_BYTES {
                self.batch.clear();
                for datagram in &datagrams[sent..sent + run] {
                    self.batch.extend_from_slice(&datagram.data);
                }
                match self
                    .shared
                    .transmit(destinations[sent], &self.batch, Some(size))
                {
                    Ok(()) => {
                        sent += run;
                        continue;
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                        return (sent, Some(error));
                    }
                    // GSO refused the batch (unsupported, or one datagram is at fault):
                    // `sendmmsg` below finds the exact count.
                    Err(_) => {}
                }
            }
            // Up to the next GSO run (or the end), one `sendmmsg`.
            let mut end = sent + run.max(1);
            while end < datagrams.len()
                && gso_run(&datagrams[end..], &destinations[end..], max_segments) < 2
            {
                end += 1;
            }
            let batch: Vec<(&[u8], Option<SocketAddr>)> = datagrams[sent..end]
                .iter()
                .zip(&destinations[sent..end])
                // A connected socket sends without an address: no route lookup per datagram.
                .map(|(d, to)| {
                    (
                        d.data.as_slice(),
                        if self.remote.is_some() {
                            None
                        } else {
                            Some(*to)
                        },
                    )
                })
                .collect();
            match crate::sys::send_many(self.shared.socket.get_ref(), &batch) {
                Ok(n) => {
                    sent += n;
                    if n < batch.len() {
                        return (sent, None);
                    }
                }
                Err(error) => return (sent, Some(error)),
            }
        }
        (sent, None)
    }
}

/// The datagrams in one received buffer: GRO coalesces same-size datagrams into one buffer
/// of `stride`-byte segments. An empty buffer is one empty datagram (a zero-length datagram
/// is a datagram, and must reach the guest), not zero of them.
fn segments(buffer: &[u8], stride: usize) -> impl Iterator<Item = &[u8]> {
    let empty = buffer.is_empty().then_some(buffer);
    buffer.chunks(stride.max(1)).chain(empty)
}

/// How many datagrams from the start of `datagrams` one GSO send can carry: same
/// destination, same size, except that the last may be shorter.
fn gso_run(
    datagrams: &[OutgoingDatagram],
    destinations: &[SocketAddr],
    max_segments: usize,
) -> usize {
    let Some(first) = datagrams.first() else {
        return 0;
    };
    let size = first.data.len();
    if size == 0 {
        return 1;
    }
    let mut run = 1;
    while run < datagrams.len() && run < max_segments && destinations[run] == destinations[0] {
        let len = datagrams[run].data.len();
        if len == size {
            run += 1;
        } else {
            if len < size && len > 0 {
                run += 1;
            }
            break;
        }
    }
    run
}

/// The `check-send` grant for a send buffer of `capacity` bytes holding `queued` bytes:
/// 0 while at least half is in use (when Linux stops reporting the socket writable), else
/// as many datagrams of `size_estimate` bytes as fit, at least 1 and at most
/// [`MAX_SEND_PERMIT`].
fn permit_for(capacity: usize, queued: usize, size_estimate: usize) -> usize {
    if queued.saturating_mul(2) >= capacity {
        return 0;
    }
    ((capacity - queued) / size_estimate.max(1)).clamp(1, MAX_SEND_PERMIT)
}

/// "If at least one datagram has been sent successfully, this function never returns an
/// error."
fn finish(sent: usize, error: SocketError) -> SocketResult<u64> {
    match error {
        SocketError::Trap(error) => Err(SocketError::Trap(error)),
        code if sent == 0 => Err(code),
        _ => Ok(sent as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_buffers_split_into_datagrams_and_an_empty_one_is_one_datagram() {
        let lengths = |buffer: &[u8], stride| -> Vec<usize> {
            segments(buffer, stride).map(<[u8]>::len).collect()
        };
        assert_eq!(lengths(&[], 0), vec![0]);
        assert_eq!(lengths(&[], 1400), vec![0]);
        assert_eq!(lengths(&[1; 10], 10), vec![10]);
        assert_eq!(lengths(&[1; 25], 10), vec![10, 10, 5]);
    }

    #[test]
    fn permit_follows_the_free_send_buffer() {
        assert_eq!(permit_for(212_992, 0, 1500), MAX_SEND_PERMIT, "capped");
        assert_eq!(permit_for(212_992, 0, 65_507), 3);
        assert_eq!(permit_for(100_000, 40_000, 30_000), 2);
        // Writable but less free space than one datagram: still 1, as the kernel accepts it.
        assert_eq!(permit_for(100_000, 49_999, 65_507), 1);
        // Half full or more: 0, and the guest waits on the pollable.
        assert_eq!(permit_for(100_000, 50_000, 64), 0);
        assert_eq!(permit_for(100_000, 100_000, 64), 0);
        assert_eq!(permit_for(0, 0, 64), 0);
    }

    #[test]
    fn gso_runs_share_destination_and_size() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let d = |len: usize| OutgoingDatagram {
            data: vec![0; len],
            remote_address: None,
        };
        let list = [d(10), d(10), d(10), d(5), d(10)];
        assert_eq!(
            gso_run(&list, &[a; 5], 64),
            4,
            "the last of a run may be shorter"
        );
        assert_eq!(
            gso_run(&list, &[a, a, b, a, a], 64),
            2,
            "destination changes"
        );
        assert_eq!(gso_run(&list, &[a; 5], 2), 2, "segment limit");
        assert_eq!(
            gso_run(&[d(5), d(10)], &[a; 2], 64),
            1,
            "a longer one ends the run"
        );
        assert_eq!(
            gso_run(&[d(0), d(0)], &[a; 2], 64),
            1,
            "empty datagrams go alone"
        );
    }
}
