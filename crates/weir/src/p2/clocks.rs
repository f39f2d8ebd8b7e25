//! `wasi:clocks@0.2.x`: monotonic-clock (with its pollables) and wall-clock.

use crate::WasiCtxView;
use crate::bindings::wasi::clocks::{monotonic_clock, wall_clock};
use crate::clocks::*;
use crate::io::{PollableResource, subscribe_owned};
use wasmtime::component::Resource;

impl monotonic_clock::Host for WasiCtxView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(monotonic_now())
    }
    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(resolution_ns(rustix::time::ClockId::Monotonic))
    }
    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<PollableResource>> {
        subscribe_owned(self.table, Deadline { at_ns: when })
    }
    fn subscribe_duration(&mut self, when: u64) -> wasmtime::Result<Resource<PollableResource>> {
        let at_ns = monotonic_now().saturating_add(when);
        subscribe_owned(self.table, Deadline { at_ns })
    }
}

impl wall_clock::Host for WasiCtxView<'_> {
    fn now(&mut self) -> wasmtime::Result<wall_clock::Datetime> {
        // Before 1970 is not representable in `datetime`; report the epoch then.
        let (seconds, nanoseconds) = system_now();
        Ok(wall_clock::Datetime {
            seconds,
            nanoseconds,
        })
    }
    fn resolution(&mut self) -> wasmtime::Result<wall_clock::Datetime> {
        let ns = resolution_ns(rustix::time::ClockId::Realtime);
        Ok(wall_clock::Datetime {
            seconds: ns / 1_000_000_000,
            nanoseconds: (ns % 1_000_000_000) as u32,
        })
    }
}
