//! `wasi:random`: secure random, insecure random and the insecure seed.

use crate::WasiCtxView;
use crate::bindings::wasi::random::{insecure, insecure_seed, random};

/// The default most bytes one `get-random-bytes`/`get-insecure-random-bytes` call returns
/// (as in wasmtime). More traps: the host would otherwise allocate whatever a guest asks for
/// (up to 2^64 bytes). Embedders set their own with
/// [`WasiCtxBuilder::max_random_size`](crate::WasiCtxBuilder::max_random_size).
pub const DEFAULT_MAX_RANDOM_BYTES: u64 = 64 << 20;

pub(crate) fn fill(
    rng: &mut (dyn rand::RngCore + Send),
    len: u64,
    max: u64,
    what: &str,
) -> wasmtime::Result<Vec<u8>> {
    if len > max {
        // The parenthesis is wasmtime's wording, kept for tools that match on it.
        wasmtime::bail!(
            "{what}: {len} bytes requested, the limit is {max} (requested len {len} exceeds \
             limit {max})"
        );
    }
    let mut bytes = vec![0u8; len as usize];
    rng.fill_bytes(&mut bytes);
    Ok(bytes)
}

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
