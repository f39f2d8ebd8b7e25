//! `wasi:random@0.2.x`.

use crate::WasiCtxView;
use crate::bindings::wasi::random::{insecure, insecure_seed, random};
use crate::random::*;

impl random::Host for WasiCtxView<'_> {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        fill(
            &mut *self.ctx.secure_random,
            len,
            self.ctx.max_random_bytes,
            "wasi:random/random.get-random-bytes",
        )
    }
    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.ctx.secure_random.next_u64())
    }
}

impl insecure::Host for WasiCtxView<'_> {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        fill(
            &mut *self.ctx.insecure_random,
            len,
            self.ctx.max_random_bytes,
            "wasi:random/insecure.get-insecure-random-bytes",
        )
    }
    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.ctx.insecure_random.next_u64())
    }
}

impl insecure_seed::Host for WasiCtxView<'_> {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        Ok(self.ctx.insecure_seed)
    }
}
