//! The `wasi:clocks` core: the monotonic clock, its deadlines and the wall clock (0.2 glue:
//! `crate::p2::clocks`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::io::Pollable;

/// Nanoseconds of the OS monotonic clock (`CLOCK_MONOTONIC`).
pub(crate) fn monotonic_now() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

pub(crate) fn resolution_ns(clock: rustix::time::ClockId) -> u64 {
    // `clock_getres` always succeeds for the clocks used here; 1 ns is its typical answer.
    let res = rustix::time::clock_getres(clock);
    ((res.tv_sec as u64).saturating_mul(1_000_000_000) + res.tv_nsec as u64).max(1)
}

/// A pollable that becomes ready at a monotonic-clock deadline (in nanoseconds).
pub struct Deadline {
    pub(crate) at_ns: u64,
}

impl Deadline {
    /// Ready when the monotonic clock reaches `at_ns`.
    pub(crate) fn at(at_ns: u64) -> Self {
        Deadline { at_ns }
    }
    /// Ready `wait` from now.
    pub(crate) fn after(wait: Duration) -> Self {
        let wait = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        Deadline::at(monotonic_now().saturating_add(wait))
    }
}

/// The system clock as seconds and nanoseconds since 1970 (0 before it).
pub(crate) fn system_now() -> (u64, u32) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    (since_epoch.as_secs(), since_epoch.subsec_nanos())
}

#[async_trait::async_trait]
impl Pollable for Deadline {
    async fn ready(&mut self) {
        let now = monotonic_now();
        if now >= self.at_ns {
            return;
        }
        let wait = Duration::from_nanos(self.at_ns - now);
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::time::sleep(wait).await;
        } else {
            // Not inside tokio (an embedder with another executor): wait on a helper thread.
            let (done, wait_done) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                std::thread::sleep(wait);
                let _ = done.send(());
            });
            let _ = wait_done.await;
        }
    }
}
