//! `wasi:random@0.3.0` over the context's generators. 0.3 lets a call return fewer bytes
//! than asked (callers loop), so a request over the context's limit is a short read here,
//! where 0.2 (which must return exactly `len`) traps.

use super::bindings::wasi::random::{insecure, insecure_seed, random};
use crate::WasiCtxView;
use crate::random::fill;

/// At most the context's limit, and at least one byte when any was asked for.
fn short_read_len(max_len: u64, limit: u64) -> u64 {
    max_len.min(limit.max(1))
}

impl random::Host for WasiCtxView<'_> {
    fn get_random_bytes(&mut self, max_len: u64) -> wasmtime::Result<Vec<u8>> {
        let len = short_read_len(max_len, self.ctx.max_random_bytes);
        fill(&mut *self.ctx.secure_random, len, u64::MAX, "")
    }
    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.ctx.secure_random.next_u64())
    }
}

impl insecure::Host for WasiCtxView<'_> {
    fn get_insecure_random_bytes(&mut self, max_len: u64) -> wasmtime::Result<Vec<u8>> {
        let len = short_read_len(max_len, self.ctx.max_random_bytes);
        fill(&mut *self.ctx.insecure_random, len, u64::MAX, "")
    }
    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.ctx.insecure_random.next_u64())
    }
}

impl insecure_seed::Host for WasiCtxView<'_> {
    fn get_insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        Ok(self.ctx.insecure_seed)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn requests_over_the_limit_are_short_reads_of_at_least_one_byte() {
        use super::short_read_len;
        assert_eq!(short_read_len(0, 64), 0);
        assert_eq!(short_read_len(10, 64), 10);
        assert_eq!(short_read_len(100, 64), 64);
        assert_eq!(short_read_len(5, 0), 1);
    }
}
