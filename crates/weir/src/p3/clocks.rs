//! `wasi:clocks@0.3.0` over the 0.2 clocks' readings; `wait-until`/`wait-for` are async
//! host functions (a subtask the guest may cancel: dropping the wait cancels the timer).

use std::time::Duration;

use wasmtime::component::Accessor;

use super::bindings::wasi::clocks::{monotonic_clock, system_clock, types};
use crate::WasiCtxView;
use crate::clocks::{Deadline, monotonic_now, resolution_ns, system_now};
use crate::io::Pollable;
use crate::linker::HasWasi;

impl types::Host for WasiCtxView<'_> {}

impl monotonic_clock::Host for WasiCtxView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(monotonic_now())
    }
    fn get_resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(resolution_ns(rustix::time::ClockId::Monotonic))
    }
}

impl<U: 'static> monotonic_clock::HostWithStore<U> for HasWasi {
    async fn wait_until(_store: &Accessor<U, Self>, when: u64) -> wasmtime::Result<()> {
        Deadline::at(when).ready().await;
        Ok(())
    }
    async fn wait_for(_store: &Accessor<U, Self>, how_long: u64) -> wasmtime::Result<()> {
        Deadline::after(Duration::from_nanos(how_long))
            .ready()
            .await;
        Ok(())
    }
}

impl system_clock::Host for WasiCtxView<'_> {
    fn now(&mut self) -> wasmtime::Result<system_clock::Instant> {
        let (seconds, nanoseconds) = system_now();
        Ok(system_clock::Instant {
            // Before 1970 only on a badly set clock; `system_now` saturates there.
            seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
            nanoseconds,
        })
    }
    fn get_resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(resolution_ns(rustix::time::ClockId::Realtime))
    }
}
