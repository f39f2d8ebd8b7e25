//! `wasi:io/poll`: the [`Pollable`] trait and the guest's `pollable` resource.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use wasmtime::component::{Resource, ResourceTable};

/// Something a guest can wait on.
///
/// Contract: [`Pollable::ready`] resolves once the thing is ready (for a stream: an
/// operation would make progress or report an error; for a timer: its deadline passed). It
/// must be cancel-safe: the host may drop the future at any time (for example when another
/// pollable in the same `poll` call became ready first) and call `ready` again later. Once
/// ready, it should stay ready until the guest acts on it.
#[async_trait::async_trait]
pub trait Pollable: Send + 'static {
    /// Resolves when ready.
    async fn ready(&mut self);
}

/// A future borrowed from a table entry.
type ReadyFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
/// Builds the ready-future of the table entry a pollable watches.
type MakeReadyFuture = for<'a> fn(&'a mut dyn Any) -> ReadyFuture<'a>;
/// Deletes an entry owned by a pollable when the pollable is dropped.
type DeleteOwned = fn(&mut ResourceTable, u32) -> wasmtime::Result<()>;

/// The guest's `pollable` resource: a child of the table entry it watches.
///
/// Because it is pushed as a *child* of that entry, the entry cannot be deleted while the
/// pollable lives: dropping a stream before its pollable traps, as the WIT requires.
pub struct PollableResource {
    source: u32,
    make_ready: MakeReadyFuture,
    delete_owned: Option<DeleteOwned>,
}

fn ready_future_of<T: Pollable>(entry: &mut dyn Any) -> ReadyFuture<'_> {
    match entry.downcast_mut::<T>() {
        Some(pollable) => pollable.ready(),
        // Unreachable: the source cannot change type while this child pollable exists.
        // Reporting "ready" is the safe answer; a spurious wake-up is allowed by the WIT.
        None => Box::pin(std::future::ready(())),
    }
}

/// Creates a pollable that watches the table entry `parent`.
pub fn subscribe<T: Pollable>(
    table: &mut ResourceTable,
    parent: &Resource<T>,
) -> wasmtime::Result<Resource<PollableResource>> {
    let pollable = PollableResource {
        source: parent.rep(),
        make_ready: ready_future_of::<T>,
        delete_owned: None,
    };
    Ok(table.push_child(pollable, parent)?)
}

/// Creates a pollable that owns its state (for example a timer); the state is deleted with
/// the pollable.
pub fn subscribe_owned<T: Pollable>(
    table: &mut ResourceTable,
    state: T,
) -> wasmtime::Result<Resource<PollableResource>> {
    fn delete<T: Pollable>(table: &mut ResourceTable, rep: u32) -> wasmtime::Result<()> {
        table.delete(Resource::<T>::new_own(rep))?;
        Ok(())
    }
    let parent = table.push(state)?;
    let pollable = PollableResource {
        source: parent.rep(),
        make_ready: ready_future_of::<T>,
        delete_owned: Some(delete::<T>),
    };
    Ok(table.push_child(pollable, &parent)?)
}

/// `poll`: waits until at least one pollable is ready and returns the indices of all ready
/// ones, in ascending order.
pub(crate) async fn poll_list(
    table: &mut ResourceTable,
    pollables: Vec<Resource<PollableResource>>,
) -> wasmtime::Result<Vec<u32>> {
    if pollables.is_empty() {
        wasmtime::bail!("wasi:io/poll.poll: the list of pollables is empty (empty poll list)");
    }
    // The same pollable (or two pollables of one source) may appear several times: wait on
    // each source once and report every index that refers to it.
    let mut by_source: BTreeMap<u32, (MakeReadyFuture, Vec<u32>)> = BTreeMap::new();
    for (index, pollable) in pollables.iter().enumerate() {
        let index = u32::try_from(index)
            .map_err(|_| wasmtime::format_err!("wasi:io/poll.poll: more than 2^32 pollables"))?;
        let entry = table.get(pollable)?;
        by_source
            .entry(entry.source)
            .or_insert_with(|| (entry.make_ready, Vec::new()))
            .1
            .push(index);
    }
    let mut waiting: Vec<(ReadyFuture<'_>, Vec<u32>)> = Vec::with_capacity(by_source.len());
    for (entry, (make_ready, indices)) in table.iter_entries(by_source) {
        waiting.push((make_ready(entry?), indices));
    }
    let ready = std::future::poll_fn(|cx: &mut Context<'_>| {
        let mut ready = Vec::new();
        for (future, indices) in waiting.iter_mut() {
            if future.as_mut().poll(cx).is_ready() {
                ready.extend_from_slice(indices);
            }
        }
        if ready.is_empty() {
            Poll::Pending
        } else {
            ready.sort_unstable();
            Poll::Ready(ready)
        }
    })
    .await;
    Ok(ready)
}

/// `pollable.ready`: true if the pollable is ready right now. Never blocks.
pub(crate) fn pollable_is_ready(
    table: &mut ResourceTable,
    pollable: &Resource<PollableResource>,
) -> wasmtime::Result<bool> {
    let entry = table.get(pollable)?;
    let (source, make_ready) = (entry.source, entry.make_ready);
    let source = table.get_any_mut(source)?;
    let mut future = make_ready(source);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    Ok(future.as_mut().poll(&mut cx).is_ready())
}

/// `pollable.block`: waits until the pollable is ready.
pub(crate) async fn pollable_block(
    table: &mut ResourceTable,
    pollable: &Resource<PollableResource>,
) -> wasmtime::Result<()> {
    let entry = table.get(pollable)?;
    let (source, make_ready) = (entry.source, entry.make_ready);
    let source = table.get_any_mut(source)?;
    make_ready(source).await;
    Ok(())
}

/// Drops a pollable (and the state it owns, if any).
pub(crate) fn pollable_drop(
    table: &mut ResourceTable,
    pollable: Resource<PollableResource>,
) -> wasmtime::Result<()> {
    let entry = table.delete(pollable)?;
    if let Some(delete_owned) = entry.delete_owned {
        delete_owned(table, entry.source)?;
    }
    Ok(())
}
