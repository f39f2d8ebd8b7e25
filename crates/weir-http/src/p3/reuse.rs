//! Instance reuse for 0.3 services (opt-in, `weir serve --max-instance-reuse-count`): one
//! store and instance answers several requests, up to a number at once and a number in
//! all, then is dropped. It trades isolation (requests sharing an instance share its
//! memory, and a trap ends every request in flight on it) for not instantiating per
//! request; the default stays one fresh instance per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use wasmtime::Store;

use super::bindings::{Service, ServicePre};
use super::{Answer, HostBody, ServiceBody, respond};
use crate::WasiHttpView;
use crate::server::HandlerFailure;

/// How many requests one instance may answer.
#[derive(Clone, Copy, Debug)]
pub struct InstanceReuse {
    /// In all, before the instance is dropped (at least 1).
    pub max_requests: usize,
    /// At the same time (at least 1).
    pub max_concurrent: usize,
}

type Job = (http::Request<HostBody>, Answer, OwnedSemaphorePermit);

/// An instance taking requests: its queue, how many more it may take, and its slots for
/// requests at once.
struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    remaining: usize,
    slots: Arc<Semaphore>,
}

/// The instances of one service that take requests.
pub struct ServicePool<T: 'static> {
    pre: ServicePre<T>,
    make_store: Arc<dyn Fn() -> wasmtime::Result<Store<T>> + Send + Sync>,
    reuse: InstanceReuse,
    current: Mutex<Option<Worker>>,
}

impl<T: WasiHttpView + Send + 'static> ServicePool<T> {
    pub fn new(
        pre: ServicePre<T>,
        make_store: Arc<dyn Fn() -> wasmtime::Result<Store<T>> + Send + Sync>,
        reuse: InstanceReuse,
    ) -> Self {
        ServicePool {
            pre,
            make_store,
            reuse: InstanceReuse {
                max_requests: reuse.max_requests.max(1),
                max_concurrent: reuse.max_concurrent.max(1),
            },
            current: Mutex::new(None),
        }
    }

    /// A worker with room for one more request, and its slot: the current one, or a new
    /// instance when it is used up, full or gone.
    fn worker(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> wasmtime::Result<(mpsc::UnboundedSender<Job>, OwnedSemaphorePermit)> {
        if let Some(taken) = self.take_slot() {
            return Ok(taken);
        }
        // The store is made outside the lock (other requests keep going meanwhile); if
        // one of them installed a worker with room in between, that one is used.
        let store = (self.make_store)()?;
        if let Some(taken) = self.take_slot() {
            return Ok(taken);
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let (jobs, queue) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(self.reuse.max_concurrent));
        let slot = slots
            .clone()
            .try_acquire_owned()
            .map_err(|e| wasmtime::format_err!("{e}"))?;
        tokio::spawn(run_worker(self.pre.clone(), store, queue, timeout));
        // The old worker's queue closes when its last sender goes: it finishes what it has.
        *current = Some(Worker {
            jobs: jobs.clone(),
            remaining: self.reuse.max_requests - 1,
            slots,
        });
        Ok((jobs, slot))
    }

    /// A slot on the current worker, if it has one and may take more requests.
    fn take_slot(&self) -> Option<(mpsc::UnboundedSender<Job>, OwnedSemaphorePermit)> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let worker = current.as_mut()?;
        if worker.remaining == 0 || worker.jobs.is_closed() {
            return None;
        }
        let slot = worker.slots.clone().try_acquire_owned().ok()?;
        worker.remaining -= 1;
        Some((worker.jobs.clone(), slot))
    }

    /// Runs `request` on a reused instance; like [`super::handle`] otherwise.
    pub async fn handle(
        &self,
        request: http::Request<HostBody>,
        timeout: Option<std::time::Duration>,
    ) -> Result<http::Response<ServiceBody>, HandlerFailure> {
        let (jobs, slot) = self.worker(timeout).map_err(HandlerFailure::Trap)?;
        let (answer, answered) = oneshot::channel();
        if jobs.send((request, answer, slot)).is_err() {
            return Err(HandlerFailure::Trap(wasmtime::format_err!(
                "the instance stopped before the request reached it"
            )));
        }
        let answered = match timeout {
            Some(limit) => tokio::time::timeout(limit, answered)
                .await
                .map_err(|_| HandlerFailure::TimedOut(limit))?,
            None => answered.await,
        };
        match answered {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(HandlerFailure::ServiceError(format!("{code:?}"))),
            Err(_) => Err(HandlerFailure::Trap(wasmtime::format_err!(
                "the instance trapped or stopped before answering (it is shared with other \
                 requests; see its log)"
            ))),
        }
    }
}

/// One instance answering the requests of `queue`, several at once, until the queue closes,
/// every request in flight is done and the guest's tasks exited (for at most `timeout`
/// after that), or the instance traps.
async fn run_worker<T: WasiHttpView + Send + 'static>(
    pre: ServicePre<T>,
    mut store: Store<T>,
    mut queue: mpsc::UnboundedReceiver<Job>,
    timeout: Option<std::time::Duration>,
) {
    let ran = async {
        let service: Service = pre.instantiate_async(&mut store).await?;
        store
            .run_concurrent(async |accessor| -> wasmtime::Result<()> {
                type Running<'a> = Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send + 'a>>;
                // Only the requests that were woken are polled again.
                let mut running: FuturesUnordered<Running<'_>> = FuturesUnordered::new();
                let mut open = true;
                std::future::poll_fn(|cx| {
                    while open {
                        match queue.poll_recv(cx) {
                            Poll::Ready(Some((request, answer, slot))) => {
                                let service = &service;
                                running.push(Box::pin(async move {
                                    let done = respond(accessor, service, request, answer).await;
                                    drop(slot);
                                    done
                                }));
                            }
                            Poll::Ready(None) => open = false,
                            Poll::Pending => break,
                        }
                    }
                    loop {
                        match running.poll_next_unpin(cx) {
                            Poll::Ready(Some(Ok(()))) => {}
                            Poll::Ready(Some(Err(trap))) => return Poll::Ready(Err(trap)),
                            // Nothing in flight: done once the queue closed.
                            Poll::Ready(None) if !open => return Poll::Ready(Ok(())),
                            Poll::Ready(None) | Poll::Pending => return Poll::Pending,
                        }
                    }
                })
                .await?;
                let deadline = timeout.map(|limit| tokio::time::Instant::now() + limit);
                super::run_until_tasks_exit(accessor, deadline).await;
                Ok(())
            })
            .await?
    };
    if let Err(trap) = ran.await {
        tracing::error!(target: "weir::serve", "a reused instance stopped: {trap:#}");
    }
}
