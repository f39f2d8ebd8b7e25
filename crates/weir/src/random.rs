//! The `wasi:random` core: secure random, insecure random and the insecure seed, with the
//! size limit (0.2 glue: `crate::p2::random`).

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
