//! The TCP core of `wasi:sockets` (both ABIs: `crate::p2::sockets::tcp`, `crate::p3::sockets`).
//!
//! A connection's streams are Weir streams, so the `check-write` permit contract holds on the
//! network too. The permit is the free space of the socket's send buffer (`SO_SNDBUF` minus
//! `SIOCOUTQ`, at most [`MAX_WRITE_PERMIT`]), and `write` hands the bytes straight to the
//! kernel. Should the kernel take fewer (the estimate is not exact), the rest is kept and
//! written by a background task as the socket drains, and `check-write` grants nothing until
//! it is gone: host memory per connection stays bounded by one permit, however fast the guest
//! writes and however slowly the peer reads. `shutdown(send)` sends its FIN only after those
//! bytes, so no accepted byte is lost.

use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use socket2::{Protocol, SockRef, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use super::{
    Buffer, NetworkPolicy, NetworkStats, NetworkUse, SocketError, SocketResult, SocketSlot,
    SocketsCtx, check_family, check_unicast, check_unicast_remote, enforce, get_buffer_size,
    hop_limit, set_buffer_size, set_hop_limit,
};
use crate::bindings::wasi::sockets::network::{ErrorCode, IpAddressFamily};
use crate::io::{InputStream, OutputStream, Pollable, SliceWriter, StreamError, StreamResult};

/// The largest `check-write` permit of a TCP output stream.
pub const MAX_WRITE_PERMIT: usize = 1 << 20;
/// The permit granted when the kernel reports the socket writable but the free-space
/// estimate is 0.
const MIN_WRITE_PERMIT: usize = 4096;
/// How long unsent bytes of a dropped output stream may wait for an unresponsive peer
/// (`TCP_USER_TIMEOUT`) before the connection is given up.
const ABANDONED_WRITE_TIMEOUT_MS: u32 = 30_000;
/// The listen backlog used until the guest sets one.
const DEFAULT_LISTEN_BACKLOG: u32 = 128;
/// The most bytes one `read` asks the kernel for.
const MAX_READ_CHUNK: usize = 256 * 1024;
/// Linux's limits for `TCP_KEEPIDLE`/`TCP_KEEPINTVL` (seconds) and `TCP_KEEPCNT`.
const MAX_KEEPALIVE_SECONDS: u64 = 32_767;
const MAX_KEEPALIVE_COUNT: u32 = 127;

/// Every instance's background writers together, for [`background_writes_done`].
static ALL_BACKGROUND_WRITERS: std::sync::LazyLock<BackgroundWriters> =
    std::sync::LazyLock::new(BackgroundWriters::default);

/// Waits until every TCP background writer of every instance in the process has delivered
/// (or failed to deliver) the bytes it holds: bytes a guest wrote but the kernel had not
/// taken yet when the guest moved on.
///
/// [`crate::command::run_async`] already waits for its own instance's writers (see
/// [`crate::WasiCtx::tcp_background_writers`]); this is for embedders that call guest
/// exports themselves and want one wait before shutting down the tokio runtime (dropping a
/// runtime cancels its tasks, and with them any bytes still unsent).
///
/// ```no_run
/// # async fn after_guests_ran() {
/// weir::sockets::tcp::background_writes_done().await;
/// # }
/// ```
pub async fn background_writes_done() {
    ALL_BACKGROUND_WRITERS.done().await
}

/// The TCP background writers of one instance: tasks still sending bytes the guest wrote
/// that the kernel had not taken yet.
///
/// They run while the instance's [`crate::WasiCtx`] lives; dropping the context cancels
/// those still running (their bytes are lost, and their descriptors closed), so that a
/// dropped instance leaves nothing behind. [`crate::command::run_async`] and
/// [`crate::command::run_sync`] wait for them, up to the context's delivery limit
/// ([`crate::WasiCtxBuilder::tcp_delivery_limit`]), before returning.
///
/// ```no_run
/// # async fn after_a_call(wasi: &weir::WasiCtx) {
/// let writers = wasi.tcp_background_writers();
/// if tokio::time::timeout(std::time::Duration::from_secs(5), writers.done()).await.is_err() {
///     writers.cancel(); // give up on a peer that does not read
/// }
/// # }
/// ```
#[derive(Clone, Default)]
pub struct BackgroundWriters(Arc<WriterCount>);

#[derive(Default)]
struct WriterCount {
    running: AtomicUsize,
    /// Signalled whenever a writer finishes.
    finished: Notify,
    cancelled: AtomicBool,
    /// Signalled by [`BackgroundWriters::cancel`].
    cancel: Notify,
}

impl std::fmt::Debug for BackgroundWriters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundWriters")
            .field("running", &self.running())
            .finish()
    }
}

impl BackgroundWriters {
    /// How many writers are running.
    pub fn running(&self) -> usize {
        self.0.running.load(Ordering::Acquire)
    }

    /// Waits until no writer is running.
    pub async fn done(&self) {
        crate::io::wait_until(&self.0.finished, || (self.running() == 0).then_some(())).await
    }

    /// Stops the running writers and every later one: their unsent bytes are dropped and
    /// the next operation on their stream reports `last-operation-failed`.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::Release);
        self.0.cancel.notify_waiters();
    }

    /// Resolves once [`Self::cancel`] has been called.
    async fn cancelled(&self) {
        let cancelled = || self.0.cancelled.load(Ordering::Acquire).then_some(());
        crate::io::wait_until(&self.0.cancel, cancelled).await
    }

    fn started(&self) {
        self.0.running.fetch_add(1, Ordering::AcqRel);
    }

    fn stopped(&self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
        self.0.finished.notify_waiters();
    }

    /// Waits for the writers up to `limit`, then cancels those still running (with a
    /// `tracing` warning).
    pub async fn deliver_within(&self, limit: Duration) {
        if tokio::time::timeout(limit, self.done()).await.is_err() {
            tracing::warn!(
                target: "weir::tcp",
                running = self.running(),
                "gave up delivering unsent TCP bytes after {limit:?}"
            );
            self.cancel();
        }
    }
}

/// A running background writer, counted in its instance's [`BackgroundWriters`] and in
/// [`ALL_BACKGROUND_WRITERS`]. Dropping it (the task finished, was cancelled, or was dropped
/// with its runtime) settles the writer state and wakes waiters.
struct DrainRunning {
    shared: Arc<TcpShared>,
    /// The writer ran to its end (set under the writer lock); otherwise it was cancelled.
    finished: bool,
}

impl DrainRunning {
    fn start(shared: Arc<TcpShared>) -> DrainRunning {
        shared.writers.started();
        ALL_BACKGROUND_WRITERS.started();
        DrainRunning {
            shared,
            finished: false,
        }
    }
}

impl Drop for DrainRunning {
    fn drop(&mut self) {
        let shared = &self.shared;
        if !self.finished {
            // Cancelled before it finished: the bytes it held cannot be delivered.
            let mut writer = shared.writer();
            writer.draining = false;
            writer.unsent.clear();
            writer.error = Some(io::Error::other(
                "unsent bytes were dropped: the instance or the runtime stopped first",
            ));
        }
        shared.writer_idle.notify_waiters();
        shared.writers.stopped();
        ALL_BACKGROUND_WRITERS.stopped();
    }
}

/// The socket descriptor and what its socket resource and streams share.
pub(crate) struct TcpShared {
    socket: Arc<Socket>,
    /// The reactor registration, made once the socket connects, listens or is accepted. Not
    /// earlier: an unconnected socket reports a hang-up, which tokio keeps as permanent
    /// "closed" readiness, and every wait would then return at once.
    readiness: OnceLock<AsyncFd<Arc<Socket>>>,
    pub(crate) family: IpAddressFamily,
    writer: Mutex<WriterState>,
    /// Signalled when the background writer finished with the unsent bytes.
    writer_idle: Notify,
    /// `shutdown(receive)` was called: the input stream is closed.
    receive_closed: AtomicBool,
    stats: Arc<NetworkStats>,
    /// The instance's background writers, which this socket's writer joins.
    writers: BackgroundWriters,
    _slot: SocketSlot,
}

#[derive(Default)]
struct WriterState {
    /// Bytes accepted from the guest that the kernel has not taken yet, oldest first; at
    /// most one `check-write` permit.
    unsent: BytesMut,
    /// A background writer is sending `unsent`.
    draining: bool,
    /// `shutdown(send)` was called: no more writes; the FIN follows the unsent bytes.
    send_closed: bool,
    /// A failure of the background writer, reported by the next stream operation.
    error: Option<io::Error>,
    /// A failure was reported: the output stream is closed.
    failed: bool,
}

/// `send` without `SIGPIPE` (a write to a reset connection must be an error, not a signal
/// that kills the embedding process).
fn send_no_signal(socket: &Socket, bytes: &[u8]) -> io::Result<usize> {
    socket.send_with_flags(bytes, libc::MSG_NOSIGNAL)
}

impl TcpShared {
    fn new(
        socket: Socket,
        family: IpAddressFamily,
        stats: Arc<NetworkStats>,
        writers: BackgroundWriters,
        slot: SocketSlot,
    ) -> io::Result<Arc<TcpShared>> {
        socket.set_nonblocking(true)?;
        Ok(Arc::new(TcpShared {
            socket: Arc::new(socket),
            readiness: OnceLock::new(),
            family,
            writer: Mutex::new(WriterState::default()),
            writer_idle: Notify::new(),
            receive_closed: AtomicBool::new(false),
            stats,
            writers,
            _slot: slot,
        }))
    }

    /// Registers the socket with the reactor (once): call after `connect`, `listen` or
    /// `accept`.
    fn register(&self) -> io::Result<()> {
        if self.readiness.get().is_none() {
            let registration = crate::sync::with_reactor(|| {
                crate::sys::register_shared(
                    self.socket.clone(),
                    Interest::READABLE | Interest::WRITABLE,
                )
            })?;
            // Only the resource's own thread registers, so the cell is still empty.
            let _ = self.readiness.set(registration);
        }
        Ok(())
    }

    fn sock(&self) -> SockRef<'_> {
        SockRef::from(&*self.socket)
    }

    fn writer(&self) -> MutexGuard<'_, WriterState> {
        // A panic while holding this lock cannot leave the state inconsistent (plain
        // assignments), so a poisoned lock is still usable.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Which of `events` (plus errors and hang-ups, which `poll` always reports) the
    /// descriptor has pending right now: a `poll` with no timeout. Empty when none.
    fn poll_now(&self, events: rustix::event::PollFlags) -> rustix::event::PollFlags {
        let mut fds = [rustix::event::PollFd::new(&*self.socket, events)];
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(n) if n > 0 => fds[0].revents(),
            _ => rustix::event::PollFlags::empty(),
        }
    }

    /// Waits until `poll_now(events)` reports something, and returns what it reported. The kernel is asked first and after each wake-up
    /// (the reactor's readiness can lag behind or run ahead of the socket); readiness found
    /// stale is cleared through its guard, which cannot lose a newer event, so a wait
    /// neither spins nor misses a wake-up. I/O calls go straight to the socket for the same
    /// reason. Fails if the socket is not registered or the reactor is gone.
    async fn wait_for(
        &self,
        interest: Interest,
        events: rustix::event::PollFlags,
    ) -> io::Result<rustix::event::PollFlags> {
        let registration = self
            .readiness
            .get()
            .ok_or_else(|| io::Error::other("socket not registered with the reactor"))?;
        loop {
            let fired = self.poll_now(events);
            if !fired.is_empty() {
                return Ok(fired);
            }
            let mut guard = registration.ready(interest).await?;
            let fired = self.poll_now(events);
            if !fired.is_empty() {
                return Ok(fired);
            }
            guard.clear_ready();
        }
    }

    /// Takes `bytes` from the guest: straight to the kernel, or, while earlier bytes are
    /// still unsent (or the kernel takes only part), into the unsent buffer that a
    /// background writer drains in order.
    fn write(self: &Arc<Self>, bytes: &[u8]) -> io::Result<()> {
        let mut writer = self.writer();
        let sent = if writer.unsent.is_empty() {
            match send_no_signal(&self.socket, bytes) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            }
        } else {
            0
        };
        if sent < bytes.len() {
            writer.unsent.extend_from_slice(&bytes[sent..]);
            NetworkStats::add(&self.stats.tcp_bytes_deferred, (bytes.len() - sent) as u64);
            if !writer.draining {
                writer.draining = true;
                // Spawned without the lock: a runtime that is shutting down drops the task
                // at once, and its cleanup takes the lock.
                drop(writer);
                let running = DrainRunning::start(self.clone());
                let shared = self.clone();
                crate::sync::spawn(async move {
                    let writers = shared.writers.clone();
                    tokio::select! {
                        () = shared.drain_unsent(running) => {}
                        // Dropping the drain settles its state through `running`.
                        () = writers.cancelled() => {}
                    }
                });
            }
        }
        Ok(())
    }

    /// The background writer: writes the unsent bytes as the socket drains, then sends the
    /// FIN if `shutdown(send)` came meanwhile. `running` ends the writer's bookkeeping when
    /// the task ends, however it ends (a runtime shutting down drops it mid-way).
    async fn drain_unsent(self: Arc<Self>, mut running: DrainRunning) {
        use rustix::event::PollFlags;
        loop {
            let events = PollFlags::OUT | PollFlags::ERR | PollFlags::HUP;
            let waited = self.wait_for(Interest::WRITABLE, events).await;
            let refused = {
                let mut writer = self.writer();
                match waited.and_then(|_| send_no_signal(&self.socket, &writer.unsent)) {
                    Ok(n) => {
                        writer.unsent.advance(n);
                        if writer.unsent.is_empty() {
                            // Under the same lock as the emptiness check: a write arriving
                            // after this sees no writer running and starts a new one.
                            self.finish_drain(&mut writer);
                            running.finished = true;
                            return;
                        }
                        false
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                    Err(error) => {
                        writer.unsent.clear();
                        writer.error = Some(error);
                        self.finish_drain(&mut writer);
                        running.finished = true;
                        return;
                    }
                }
            };
            if refused {
                // Writable by `poll` yet refused (memory pressure): wait for the next
                // writability event instead of retrying at once.
                self.wait_for_next_event(Interest::WRITABLE).await;
            }
        }
    }

    /// Ends a drain: no writer runs any more, and the FIN goes out if it was asked for.
    fn finish_drain(&self, writer: &mut WriterState) {
        writer.draining = false;
        if writer.send_closed && writer.error.is_none() {
            let _ = self.sock().shutdown(Shutdown::Write);
        }
    }

    /// Waits for the reactor's next event of `interest`, ignoring readiness already seen.
    async fn wait_for_next_event(&self, interest: Interest) {
        let Some(registration) = self.readiness.get() else {
            return;
        };
        if let Ok(mut stale) = registration.ready(interest).await {
            stale.clear_ready();
        }
        let _ = registration.ready(interest).await;
    }

    /// Free send-buffer space, the output stream's permit. `SIOCOUTQ` counts payload bytes
    /// and `SO_SNDBUF` includes bookkeeping, so the two can disagree near the limit: when the
    /// estimate says full but the kernel says writable, the kernel wins with
    /// [`MIN_WRITE_PERMIT`].
    fn write_permit(&self) -> io::Result<usize> {
        let capacity = self.sock().send_buffer_size()?;
        let queued = crate::sys::send_queue_bytes(&*self.socket)?;
        let free = capacity.saturating_sub(queued).min(MAX_WRITE_PERMIT);
        let out = rustix::event::PollFlags::OUT;
        if free == 0 && self.poll_now(out).contains(out) {
            return Ok(MIN_WRITE_PERMIT);
        }
        Ok(free)
    }
}

impl TcpShared {
    /// Sends what the kernel takes of `bytes` now, without waiting or keeping any (0: the
    /// send buffer is full). For a sender that can wait for room with the bytes still in
    /// its own hands (a WASI 0.3 `send` stream, whose bytes stay in guest memory), so the
    /// host holds nothing. Counted as sent once the kernel took them.
    pub(crate) fn try_send(&self, bytes: &[u8]) -> io::Result<usize> {
        if !self.writer().unsent.is_empty() {
            return Ok(0);
        }
        match send_no_signal(&self.socket, bytes) {
            Ok(n) => {
                NetworkStats::add(&self.stats.tcp_bytes_sent, n as u64);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Waits until the socket has room to send, or reports an error or hang-up (which the
    /// next send then returns).
    pub(crate) async fn writable(&self) -> io::Result<()> {
        use rustix::event::PollFlags;
        let events = PollFlags::OUT | PollFlags::ERR | PollFlags::HUP;
        self.wait_for(Interest::WRITABLE, events).await.map(drop)
    }

    /// `shutdown(receive)`: the input stream ends.
    pub(crate) fn shutdown_receive(&self) -> SocketResult<()> {
        self.receive_closed.store(true, Ordering::Release);
        shutdown_ignoring_disconnect(self.sock(), Shutdown::Read)
    }

    /// `shutdown(send)`: no more writes; the FIN follows any bytes still unsent (the
    /// background writer sends it after them).
    pub(crate) fn shutdown_send(&self) -> SocketResult<()> {
        let mut writer = self.writer();
        writer.send_closed = true;
        if writer.unsent.is_empty() {
            drop(writer);
            shutdown_ignoring_disconnect(self.sock(), Shutdown::Write)?;
        }
        Ok(())
    }
}

/// The WIT's socket states (`closed` covers a failed connect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TcpState {
    Unbound,
    BindStarted,
    Bound,
    ListenStarted,
    Listening,
    Connecting,
    /// `finish-connect` succeeded, or the socket came from `accept`.
    Connected,
    Closed,
}

/// The guest's `tcp-socket` resource.
pub struct TcpSocket {
    pub(crate) shared: Arc<TcpShared>,
    pub(crate) state: TcpState,
    /// The policy of the network the socket was bound or connected on.
    policy: Option<Arc<NetworkPolicy>>,
    listen_backlog: u32,
}

impl TcpSocket {
    fn sock(&self) -> SockRef<'_> {
        self.shared.sock()
    }

    /// The socket's network must be the one the policy came from, when already attached.
    fn attach(&mut self, policy: &Arc<NetworkPolicy>) -> SocketResult<()> {
        match &self.policy {
            Some(existing) if !Arc::ptr_eq(existing, policy) => {
                Err(ErrorCode::InvalidArgument.into())
            }
            _ => {
                self.policy = Some(policy.clone());
                Ok(())
            }
        }
    }

    pub(crate) fn require_connected(&self) -> SocketResult<()> {
        if self.state == TcpState::Connected {
            Ok(())
        } else {
            Err(ErrorCode::InvalidState.into())
        }
    }

    pub(crate) fn streams(&self) -> (TcpInputStream, TcpOutputStream) {
        (self.input_stream(), self.output_stream())
    }

    /// The connection's receiving side as a Weir stream.
    pub(crate) fn input_stream(&self) -> TcpInputStream {
        TcpInputStream {
            shared: self.shared.clone(),
            failed: false,
            wait_error: None,
        }
    }

    /// The connection's sending side as a Weir stream.
    pub(crate) fn output_stream(&self) -> TcpOutputStream {
        TcpOutputStream {
            shared: self.shared.clone(),
            slice_writer: Arc::new(TcpSliceWriter(self.shared.clone())),
        }
    }
}

/// A listening socket's accepting side.
pub(crate) struct Acceptor {
    shared: Arc<TcpShared>,
    policy: Arc<NetworkPolicy>,
}

impl Acceptor {
    /// Accepts one pending connection (`would-block` when none is pending). Connections
    /// from peers the policy denies are closed and skipped.
    pub(crate) fn accept(&self, limit: &TcpLimit) -> SocketResult<TcpSocket> {
        let shared = &self.shared;
        // The slot comes first: at the limit, connections stay queued instead of being
        // accepted and dropped.
        let slot = SocketSlot::take(&limit.open, limit.max)?;
        let (connection, peer) = loop {
            let (connection, peer) = shared.socket.accept()?;
            let Some(peer) = peer.as_socket() else {
                continue;
            };
            // A refused peer is disconnected; the guest only sees connections it may accept.
            if enforce(&self.policy, &shared.stats, NetworkUse::TcpAccept, peer).is_ok() {
                break (connection, peer);
            }
        };
        tracing::trace!(target: "weir::tcp", %peer, "accepted");
        let accepted = TcpShared::new(
            connection,
            shared.family,
            shared.stats.clone(),
            shared.writers.clone(),
            slot,
        )?;
        accepted.register()?;
        NetworkStats::add(&accepted.stats.tcp_connections, 1);
        Ok(TcpSocket {
            shared: accepted,
            state: TcpState::Connected,
            policy: Some(self.policy.clone()),
            // A connected socket never listens; the value only answers the setter's state check.
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
        })
    }

    /// Waits until a connection is pending (or the socket reports an error).
    pub(crate) async fn ready(&self) {
        TcpSocket::wait_for_connection(&self.shared).await
    }
}

/// An instance's TCP socket limit: its open-socket count and maximum.
pub(crate) struct TcpLimit {
    open: Arc<AtomicUsize>,
    max: usize,
}

impl TcpLimit {
    pub(crate) fn of(sockets: &SocketsCtx) -> TcpLimit {
        TcpLimit {
            open: sockets.open_tcp_sockets.clone(),
            max: sockets.config.max_tcp_sockets,
        }
    }
}

/// The socket operations both ABIs share: each is the WIT's checks, the policy and the
/// system call, leaving the ABI only its own state steps (0.2's `start-*`/`finish-*` pairs)
/// and its resource types.
impl TcpSocket {
    /// A new unbound socket, if the instance may use TCP and is under its socket limit.
    pub(crate) fn create(sockets: &SocketsCtx, family: IpAddressFamily) -> SocketResult<TcpSocket> {
        if !sockets.config.tcp {
            return Err(ErrorCode::AccessDenied.into());
        }
        let slot = SocketSlot::take(&sockets.open_tcp_sockets, sockets.config.max_tcp_sockets)?;
        let socket = super::new_socket(family, Type::STREAM, Protocol::TCP)?;
        let shared = TcpShared::new(
            socket,
            family,
            sockets.stats.clone(),
            sockets.background_writers.clone(),
            slot,
        )?;
        Ok(TcpSocket {
            shared,
            state: TcpState::Unbound,
            policy: None,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
        })
    }

    /// Binds an unbound socket to `address` under `policy`; the caller sets the new state.
    pub(crate) fn bind(
        &mut self,
        policy: &Arc<NetworkPolicy>,
        stats: &NetworkStats,
        address: std::net::SocketAddr,
    ) -> SocketResult<()> {
        match self.state {
            TcpState::Unbound => {}
            TcpState::BindStarted => return Err(ErrorCode::ConcurrencyConflict.into()),
            _ => return Err(ErrorCode::InvalidState.into()),
        }
        check_family(self.shared.family, &address)?;
        check_unicast(&address)?;
        enforce(policy, stats, NetworkUse::TcpBind, address)?;
        // The WIT asks that a recent TIME_WAIT on the address not block the bind.
        self.sock().set_reuse_address(address.port() != 0)?;
        self.sock().bind(&address.into())?;
        self.attach(policy)?;
        Ok(())
    }

    /// Starts connecting to `remote`: the socket is `Connecting` until
    /// [`connect_settled`](Self::connect_settled), then [`finish_connect`](Self::finish_connect).
    pub(crate) fn start_connect(
        &mut self,
        policy: &Arc<NetworkPolicy>,
        stats: &NetworkStats,
        remote: std::net::SocketAddr,
    ) -> SocketResult<()> {
        match self.state {
            TcpState::Unbound | TcpState::Bound => {}
            TcpState::BindStarted | TcpState::ListenStarted | TcpState::Connecting => {
                return Err(ErrorCode::ConcurrencyConflict.into());
            }
            _ => return Err(ErrorCode::InvalidState.into()),
        }
        check_unicast_remote(self.shared.family, &remote)?;
        self.attach(policy)?;
        enforce(policy, stats, NetworkUse::TcpConnect, remote)?;
        match self.sock().connect(&remote.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) => {}
            Err(e) => {
                self.state = TcpState::Closed;
                return Err(connect_error(e));
            }
        }
        self.shared.register()?;
        self.state = TcpState::Connecting;
        Ok(())
    }

    /// Whether a connect in progress has succeeded or failed (without waiting).
    pub(crate) fn connect_settled(&self) -> bool {
        use rustix::event::PollFlags;
        !self
            .shared
            .poll_now(PollFlags::OUT | PollFlags::ERR | PollFlags::HUP)
            .is_empty()
    }

    /// Waits until a listening socket has a connection to accept (or an error).
    pub(crate) async fn wait_for_connection(shared: &TcpShared) {
        use rustix::event::PollFlags;
        let _ = shared
            .wait_for(Interest::READABLE, PollFlags::IN | PollFlags::ERR)
            .await;
    }

    /// Waits until a connect in progress settles.
    pub(crate) async fn wait_for_connect(shared: &TcpShared) {
        use rustix::event::PollFlags;
        let events = PollFlags::OUT | PollFlags::ERR | PollFlags::HUP;
        // A failed wait (reactor gone) leaves the error for `finish_connect`.
        let _ = shared.wait_for(Interest::WRITABLE, events).await;
    }

    /// Ends a settled connect: `Connected`, or `Closed` with the connect's error.
    pub(crate) fn finish_connect(&mut self) -> SocketResult<()> {
        if let Some(error) = self.sock().take_error()? {
            self.state = TcpState::Closed;
            return Err(connect_error(error));
        }
        if let Err(error) = self.sock().peer_addr() {
            self.state = TcpState::Closed;
            return Err(connect_error(error));
        }
        self.state = TcpState::Connected;
        NetworkStats::add(&self.shared.stats.tcp_connections, 1);
        Ok(())
    }

    /// Starts listening on a bound socket; the caller sets the new state.
    pub(crate) fn listen(&mut self, stats: &NetworkStats) -> SocketResult<()> {
        match self.state {
            TcpState::Bound => {}
            TcpState::BindStarted | TcpState::ListenStarted | TcpState::Connecting => {
                return Err(ErrorCode::ConcurrencyConflict.into());
            }
            _ => return Err(ErrorCode::InvalidState.into()),
        }
        let local = self
            .sock()
            .local_addr()?
            .as_socket()
            .ok_or(ErrorCode::InvalidState)?;
        let policy = self.policy.clone().ok_or(ErrorCode::InvalidState)?;
        enforce(&policy, stats, NetworkUse::TcpListen, local)?;
        let backlog = i32::try_from(self.listen_backlog).unwrap_or(i32::MAX);
        self.sock().listen(backlog)?;
        self.shared.register()?;
        Ok(())
    }

    /// Accepts one pending connection of a listening socket (`would-block` when none is
    /// pending).
    pub(crate) fn accept(&self, limit: &TcpLimit) -> SocketResult<TcpSocket> {
        self.acceptor()?.accept(limit)
    }

    /// What accepting needs, detached from the listening socket's resource (a WASI 0.3
    /// listen stream accepts while the guest owns the socket).
    pub(crate) fn acceptor(&self) -> SocketResult<Acceptor> {
        if self.state != TcpState::Listening {
            return Err(ErrorCode::InvalidState.into());
        }
        Ok(Acceptor {
            shared: self.shared.clone(),
            policy: self.policy.clone().ok_or(ErrorCode::InvalidState)?,
        })
    }

    pub(crate) fn local_address(&self) -> SocketResult<std::net::SocketAddr> {
        if matches!(
            self.state,
            TcpState::Unbound | TcpState::BindStarted | TcpState::Closed
        ) {
            return Err(ErrorCode::InvalidState.into());
        }
        let address = self.sock().local_addr()?.as_socket();
        Ok(address.ok_or(ErrorCode::InvalidState)?)
    }

    pub(crate) fn remote_address(&self) -> SocketResult<std::net::SocketAddr> {
        self.require_connected()?;
        let address = self.sock().peer_addr()?.as_socket();
        Ok(address.ok_or(ErrorCode::InvalidState)?)
    }

    pub(crate) fn set_listen_backlog_size(&mut self, value: u64) -> SocketResult<()> {
        if value == 0 {
            return Err(ErrorCode::InvalidArgument.into());
        }
        let backlog = u32::try_from(value)
            .unwrap_or(u32::MAX)
            .min(i32::MAX as u32);
        match self.state {
            TcpState::Connecting | TcpState::Connected | TcpState::Closed => {
                Err(ErrorCode::InvalidState.into())
            }
            TcpState::Listening | TcpState::ListenStarted => {
                // Linux applies a new backlog to a listening socket by listening again.
                self.sock().listen(backlog as i32)?;
                self.listen_backlog = backlog;
                Ok(())
            }
            _ => {
                self.listen_backlog = backlog;
                Ok(())
            }
        }
    }

    pub(crate) fn keep_alive_enabled(&self) -> SocketResult<bool> {
        Ok(self.sock().keepalive()?)
    }

    pub(crate) fn set_keep_alive_enabled(&self, value: bool) -> SocketResult<()> {
        Ok(self.sock().set_keepalive(value)?)
    }

    pub(crate) fn keep_alive_idle_time(&self) -> SocketResult<u64> {
        Ok(nanos(rustix::net::sockopt::tcp_keepidle(
            &*self.shared.socket,
        )?))
    }

    pub(crate) fn set_keep_alive_idle_time(&self, value: u64) -> SocketResult<()> {
        let idle = keepalive_seconds(value)?;
        Ok(rustix::net::sockopt::set_tcp_keepidle(
            &*self.shared.socket,
            idle,
        )?)
    }

    pub(crate) fn keep_alive_interval(&self) -> SocketResult<u64> {
        Ok(nanos(rustix::net::sockopt::tcp_keepintvl(
            &*self.shared.socket,
        )?))
    }

    pub(crate) fn set_keep_alive_interval(&self, value: u64) -> SocketResult<()> {
        let interval = keepalive_seconds(value)?;
        Ok(rustix::net::sockopt::set_tcp_keepintvl(
            &*self.shared.socket,
            interval,
        )?)
    }

    pub(crate) fn keep_alive_count(&self) -> SocketResult<u32> {
        Ok(rustix::net::sockopt::tcp_keepcnt(&*self.shared.socket)?)
    }

    pub(crate) fn set_keep_alive_count(&self, value: u32) -> SocketResult<()> {
        if value == 0 {
            return Err(ErrorCode::InvalidArgument.into());
        }
        Ok(rustix::net::sockopt::set_tcp_keepcnt(
            &*self.shared.socket,
            value.min(MAX_KEEPALIVE_COUNT),
        )?)
    }

    pub(crate) fn hop_limit(&self) -> SocketResult<u8> {
        hop_limit(self.sock(), self.shared.family)
    }

    pub(crate) fn set_hop_limit(&self, value: u8) -> SocketResult<()> {
        set_hop_limit(self.sock(), self.shared.family, value)
    }

    pub(crate) fn buffer_size(&self, which: Buffer) -> SocketResult<u64> {
        get_buffer_size(self.sock(), which)
    }

    pub(crate) fn set_buffer_size(&self, which: Buffer, value: u64) -> SocketResult<()> {
        set_buffer_size(self.sock(), which, value)
    }
}

#[async_trait::async_trait]
impl Pollable for TcpSocket {
    async fn ready(&mut self) {
        match self.state {
            TcpState::Connecting => TcpSocket::wait_for_connect(&self.shared).await,
            TcpState::Listening => TcpSocket::wait_for_connection(&self.shared).await,
            // Bind and listen complete within their `start-*` call; other states have
            // nothing in progress.
            _ => {}
        }
    }
}

/// A connection's `input-stream`.
pub struct TcpInputStream {
    shared: Arc<TcpShared>,
    /// A failure was reported: from now on the stream is closed.
    failed: bool,
    /// A failed wait, for the next `read` to report.
    wait_error: Option<io::Error>,
}

#[async_trait::async_trait]
impl InputStream for TcpInputStream {
    fn read(&mut self, max: usize) -> StreamResult<Bytes> {
        let len = max.min(MAX_READ_CHUNK);
        let mut buffer = BytesMut::new();
        let shared = self.shared.clone();
        self.receive(len, |len| {
            crate::sys::receive_into(&shared.socket, &mut buffer, len)
        })?;
        Ok(buffer.freeze())
    }

    fn read_into(&mut self, buffer: &mut [u8]) -> StreamResult<usize> {
        let len = buffer.len().min(MAX_READ_CHUNK);
        let shared = self.shared.clone();
        self.receive(len, |len| {
            use std::io::Read;
            (&*shared.socket).read(&mut buffer[..len])
        })
    }

    async fn ready(&mut self) {
        use rustix::event::PollFlags;
        if self.failed || self.shared.receive_closed.load(Ordering::Acquire) {
            return;
        }
        // Data, end of stream (RDHUP/HUP) or an error all make `read` progress.
        let events = PollFlags::IN | PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR;
        // A failed wait (reactor gone) is reported by the next `read`, once.
        if let Err(error) = self.shared.wait_for(Interest::READABLE, events).await {
            self.wait_error = Some(error);
        }
    }
}

impl TcpInputStream {
    /// One `recv` of at most `len` bytes through `recv` (which places them), with the
    /// stream's end and failure rules: 0 bytes from the kernel is the end of the stream.
    fn receive(
        &mut self,
        len: usize,
        recv: impl FnOnce(usize) -> io::Result<usize>,
    ) -> StreamResult<usize> {
        if self.failed || self.shared.receive_closed.load(Ordering::Acquire) {
            return Err(StreamError::Closed);
        }
        if let Some(error) = self.wait_error.take() {
            self.failed = true;
            return Err(StreamError::from_io(error));
        }
        if len == 0 {
            return Ok(0);
        }
        match recv(len) {
            Ok(0) => Err(StreamError::Closed),
            Ok(n) => {
                NetworkStats::add(&self.shared.stats.tcp_bytes_received, n as u64);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A wake-up lost to the clearing costs nothing: `wait_for` asks the kernel
                // before it sleeps.
                if let Some(registration) = self.shared.readiness.get() {
                    super::clear_read_readiness(registration);
                }
                Ok(0)
            }
            Err(e) => {
                self.failed = true;
                Err(StreamError::from_io(e))
            }
        }
    }
}

/// A connection's `output-stream`.
pub struct TcpOutputStream {
    shared: Arc<TcpShared>,
    /// Made once: the 0.2 host asks for it on every write.
    slice_writer: Arc<TcpSliceWriter>,
}

impl TcpOutputStream {
    /// The stream's state before any operation: closed, failed, or busy with unsent bytes.
    fn status(&self) -> StreamResult<bool> {
        Self::status_of(&self.shared)
    }

    fn status_of(shared: &TcpShared) -> StreamResult<bool> {
        let mut writer = shared.writer();
        if let Some(error) = writer.error.take() {
            writer.failed = true;
            return Err(StreamError::from_io(error));
        }
        if writer.failed || writer.send_closed {
            return Err(StreamError::Closed);
        }
        Ok(!writer.unsent.is_empty())
    }
}

#[async_trait::async_trait]
impl OutputStream for TcpOutputStream {
    fn check_write(&mut self) -> StreamResult<usize> {
        if self.status()? {
            return Ok(0);
        }
        self.shared.write_permit().map_err(StreamError::from_io)
    }

    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.slice_writer.write_slice(&bytes)
    }

    /// Bytes borrowed from guest memory go to the kernel without a copy (only a remainder
    /// the kernel did not take is copied, into the unsent buffer).
    fn slice_writer(&self) -> Option<Arc<dyn SliceWriter>> {
        Some(self.slice_writer.clone())
    }

    /// Bytes go to the kernel as they are written; a flush only has to wait for the unsent
    /// remainder, which `check-write` already does.
    fn flush(&mut self) -> StreamResult<()> {
        self.status().map(|_| ())
    }

    /// Bytes still unsent stay in the background writer's hands; a peer that never reads
    /// must not keep them (and the descriptor) forever, so the kernel gets a deadline.
    fn cancel(&mut self) {
        if !self.shared.writer().unsent.is_empty() {
            let _ = rustix::net::sockopt::set_tcp_user_timeout(
                &*self.shared.socket,
                ABANDONED_WRITE_TIMEOUT_MS,
            );
        }
    }

    async fn write_ready(&mut self) -> StreamResult<usize> {
        let shared = self.shared.clone();
        loop {
            let idle = shared.writer_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.status()? {
                idle.await;
                continue;
            }
            let permit = self.check_write()?;
            if permit > 0 {
                return Ok(permit);
            }
            use rustix::event::PollFlags;
            let events = PollFlags::OUT | PollFlags::ERR | PollFlags::HUP;
            let fired = match shared.wait_for(Interest::WRITABLE, events).await {
                Ok(fired) => fired,
                Err(error) => {
                    shared.writer().failed = true;
                    return Err(StreamError::from_io(error));
                }
            };
            // Woken by an error or hang-up rather than space: report it instead of waiting
            // again.
            if !fired.contains(PollFlags::OUT) {
                if let Some(error) = shared.sock().take_error().map_err(StreamError::from_io)? {
                    shared.writer().failed = true;
                    return Err(StreamError::from_io(error));
                }
                if fired.contains(PollFlags::HUP) {
                    shared.writer().failed = true;
                    return Err(StreamError::Closed);
                }
            }
        }
    }
}

/// Writes a connection's bytes borrowed from the caller (guest memory).
struct TcpSliceWriter(Arc<TcpShared>);

impl SliceWriter for TcpSliceWriter {
    fn write_slice(&self, bytes: &[u8]) -> StreamResult<()> {
        let shared = &self.0;
        TcpOutputStream::status_of(shared)?;
        if bytes.is_empty() {
            return Ok(());
        }
        // Counted when accepted from the guest: from here on, delivering them is the host's
        // job.
        NetworkStats::add(&shared.stats.tcp_bytes_sent, bytes.len() as u64);
        shared.write(bytes).map_err(|error| {
            shared.writer().failed = true;
            StreamError::from_io(error)
        })
    }
}

/// Seconds for a keep-alive duration (nanoseconds): 0 is refused, the rest rounded up and
/// clamped to what Linux takes.
fn keepalive_seconds(value: u64) -> SocketResult<Duration> {
    if value == 0 {
        return Err(ErrorCode::InvalidArgument.into());
    }
    let seconds = value
        .div_ceil(1_000_000_000)
        .clamp(1, MAX_KEEPALIVE_SECONDS);
    Ok(Duration::from_secs(seconds))
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `shutdown`, where a peer that already went away is not an error (the call is
/// idempotent in WASI).
fn shutdown_ignoring_disconnect(socket: SockRef<'_>, how: Shutdown) -> SocketResult<()> {
    match socket.shutdown(how) {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e.into()),
        _ => Ok(()),
    }
}

/// A connect failure: on Linux `EADDRNOTAVAIL` means no ephemeral port was left for the
/// implicit bind, which the WIT calls `address-in-use`.
fn connect_error(error: io::Error) -> SocketError {
    if error.raw_os_error() == Some(rustix::io::Errno::ADDRNOTAVAIL.raw_os_error()) {
        return ErrorCode::AddressInUse.into();
    }
    error.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_durations_round_up_and_clamp() {
        assert!(keepalive_seconds(0).is_err());
        assert_eq!(keepalive_seconds(1).ok(), Some(Duration::from_secs(1)));
        assert_eq!(
            keepalive_seconds(1_500_000_000).ok(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            keepalive_seconds(u64::MAX).ok(),
            Some(Duration::from_secs(MAX_KEEPALIVE_SECONDS))
        );
    }
}
