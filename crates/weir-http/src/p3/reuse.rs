//! Instance reuse for 0.3 services (opt-in, `weir serve --max-instance-reuse-count`): one
//! store and instance answers several requests, up to a number at once and a number in
//! all, then is dropped. It trades isolation (requests sharing an instance share its
//! memory, and a trap ends every request in flight on it) for not instantiating per
//! request; the default stays one fresh instance per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

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
    /// Instances that share the requests in flight (at least 1; the number of cores is
    /// a good choice). An instance runs on one task, so one instance runs every
    /// request's guest code on one core at a time; while fewer than this many instances
    /// exist, a request that finds none idle starts another instead of queueing on a busy
    /// one. A request that finds an idle instance always takes it.
    pub instances_in_parallel: usize,
    /// How long an instance with no request in flight waits for another before it is
    /// dropped (`None`: until it is used up).
    pub idle_timeout: Option<Duration>,
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
    /// The instances taking requests.
    workers: Mutex<Vec<Worker>>,
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
                instances_in_parallel: reuse.instances_in_parallel.max(1),
                idle_timeout: reuse.idle_timeout,
            },
            workers: Mutex::new(Vec::new()),
        }
    }

    /// A worker with room for one more request, and its slot: an idle one, else the one
    /// with the most room, or a new instance when there is none with room or fewer than
    /// `instances_in_parallel` exist. At most `instances_in_parallel` take new requests.
    fn worker(
        &self,
        timeout: Option<Duration>,
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
        let (jobs, queue) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(self.reuse.max_concurrent));
        let slot = slots
            .clone()
            .try_acquire_owned()
            .map_err(|e| wasmtime::format_err!("{e}"))?;
        tokio::spawn(run_worker(
            self.pre.clone(),
            store,
            queue,
            timeout,
            self.reuse.idle_timeout,
        ));
        let mut workers = self.lock_workers();
        workers.push(Worker {
            jobs: jobs.clone(),
            remaining: self.reuse.max_requests - 1,
            slots,
        });
        // Beyond `instances_in_parallel`, the oldest take no more requests: their queues
        // close when their requests are done (a burst does not leave instances behind).
        let surplus = workers
            .len()
            .saturating_sub(self.reuse.instances_in_parallel);
        workers.drain(..surplus);
        Ok((jobs, slot))
    }

    fn lock_workers(&self) -> std::sync::MutexGuard<'_, Vec<Worker>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot on a worker that may take more requests, if one should take this one.
    fn take_slot(&self) -> Option<(mpsc::UnboundedSender<Job>, OwnedSemaphorePermit)> {
        let mut workers = self.lock_workers();
        // A used-up worker's queue closes when its last sender goes: it finishes what it
        // has.
        workers.retain(|worker| worker.remaining > 0 && !worker.jobs.is_closed());
        let free = workers
            .iter()
            .map(|worker| worker.slots.available_permits());
        let Choice::Worker(index) = choose(free, &self.reuse) else {
            return None;
        };
        let worker = &mut workers[index];
        let slot = worker.slots.clone().try_acquire_owned().ok()?;
        worker.remaining -= 1;
        Some((worker.jobs.clone(), slot))
    }

    /// Runs `request` on a reused instance; like [`super::handle`] otherwise.
    pub async fn handle(
        &self,
        request: http::Request<HostBody>,
        timeout: Option<Duration>,
    ) -> Result<http::Response<ServiceBody>, HandlerFailure> {
        let (answer, answered) = oneshot::channel();
        let mut job = (request, answer);
        // An idle instance may close its queue between being picked and the send: the
        // request then goes to the next pick (which skips closed queues).
        for attempt in 0.. {
            let (jobs, slot) = self.worker(timeout).map_err(HandlerFailure::Trap)?;
            match jobs.send((job.0, job.1, slot)) {
                Ok(()) => break,
                Err(mpsc::error::SendError((request, answer, _slot))) if attempt < 3 => {
                    job = (request, answer);
                }
                Err(_) => {
                    return Err(HandlerFailure::Trap(wasmtime::format_err!(
                        "the instance stopped before the request reached it"
                    )));
                }
            }
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

/// Where a request goes.
#[derive(Debug, PartialEq)]
enum Choice {
    /// To the worker at this index.
    Worker(usize),
    /// To a new instance.
    NewInstance,
}

/// Picks a worker by each one's free slots: an idle one (all slots free) if there is one;
/// else a new instance while fewer than `instances_in_parallel` exist; else the one with
/// the most free slots; a new instance when none has any.
fn choose(free_slots: impl ExactSizeIterator<Item = usize>, reuse: &InstanceReuse) -> Choice {
    let workers = free_slots.len();
    let Some((index, most)) = free_slots.enumerate().max_by_key(|&(_, free)| free) else {
        return Choice::NewInstance;
    };
    let idle = most == reuse.max_concurrent;
    if most == 0 || (!idle && workers < reuse.instances_in_parallel) {
        return Choice::NewInstance;
    }
    Choice::Worker(index)
}

/// One instance answering the requests of `queue`, several at once, until the queue closes,
/// every request in flight is done and the guest's tasks exited (for at most `timeout`
/// after that), or the instance traps.
async fn run_worker<T: WasiHttpView + Send + 'static>(
    pre: ServicePre<T>,
    mut store: Store<T>,
    mut queue: mpsc::UnboundedReceiver<Job>,
    timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
) {
    let ran = async {
        let service: Service = pre.instantiate_async(&mut store).await?;
        store
            .run_concurrent(async |accessor| -> wasmtime::Result<()> {
                type Running<'a> = Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send + 'a>>;
                // Only the requests that were woken are polled again.
                let mut running: FuturesUnordered<Running<'_>> = FuturesUnordered::new();
                let mut open = true;
                // Runs while no request is in flight; when it fires, the queue closes.
                let mut idle: Option<Pin<Box<tokio::time::Sleep>>> = None;
                std::future::poll_fn(|cx| {
                    'poll: loop {
                        while open {
                            match queue.poll_recv(cx) {
                                Poll::Ready(Some((request, answer, slot))) => {
                                    idle = None;
                                    let service = &service;
                                    running.push(Box::pin(async move {
                                        let done =
                                            respond(accessor, service, request, answer).await;
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
                                Poll::Ready(None) => {
                                    let Some(limit) = idle_timeout else {
                                        return Poll::Pending;
                                    };
                                    let idle = idle
                                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                                    if idle.as_mut().poll(cx).is_pending() {
                                        return Poll::Pending;
                                    }
                                    // No more requests come in (the pool skips a closed queue);
                                    // any already queued are still answered.
                                    queue.close();
                                    continue 'poll;
                                }
                                Poll::Pending => return Poll::Pending,
                            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const REUSE: InstanceReuse = InstanceReuse {
        max_requests: 128,
        max_concurrent: 4,
        instances_in_parallel: 2,
        idle_timeout: None,
    };

    fn pick(free: &[usize]) -> Choice {
        choose(free.iter().copied(), &REUSE)
    }

    #[test]
    fn the_first_request_makes_an_instance() {
        assert_eq!(pick(&[]), Choice::NewInstance);
    }

    #[test]
    fn an_idle_instance_takes_the_request() {
        assert_eq!(pick(&[4]), Choice::Worker(0));
        assert_eq!(pick(&[1, 4]), Choice::Worker(1));
    }

    #[test]
    fn a_busy_instance_gets_a_parallel_one_while_there_are_fewer_than_asked() {
        assert_eq!(pick(&[3]), Choice::NewInstance);
    }

    #[test]
    fn with_enough_instances_the_one_with_most_room_takes_it() {
        assert_eq!(pick(&[1, 3]), Choice::Worker(1));
        assert_eq!(pick(&[2, 1, 0]), Choice::Worker(0));
    }

    #[test]
    fn when_all_are_full_a_new_instance_takes_it() {
        assert_eq!(pick(&[0, 0]), Choice::NewInstance);
        assert_eq!(
            choose(
                [0].into_iter(),
                &InstanceReuse {
                    instances_in_parallel: 1,
                    ..REUSE
                }
            ),
            Choice::NewInstance
        );
    }

    #[test]
    fn one_instance_in_parallel_queues_on_a_busy_instance() {
        let single = InstanceReuse {
            instances_in_parallel: 1,
            ..REUSE
        };
        assert_eq!(choose([1].into_iter(), &single), Choice::Worker(0));
    }
}
