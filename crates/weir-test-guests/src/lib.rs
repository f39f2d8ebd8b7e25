//! Weir's test guests as component bytes.
//!
//! Two routes (see `shared/guest-toolchain.md`):
//! - [`rust_guest`]: a Rust program from `guests/rust/src/bin/`, built for `wasm32-wasip1` by
//!   `scripts/build-guests.sh`, turned into a component with the preview1 adapter.
//! - [`http_guest`]: a `wasi:http/proxy` handler from `guests/http/`, built as a reactor by
//!   the same script, turned into a component with the preview1 proxy adapter.
//! - [`wat_guest`]: a hand-written core module plus a WIT world naming its imports, for exact
//!   contract tests (one byte over a permit, polling nothing, ...).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where `scripts/build-guests.sh` leaves the core modules.
pub fn rust_guest_dir() -> PathBuf {
    workspace_root().join("guests/rust/target/wasm32-wasip1/release")
}

/// Where `scripts/build-guests.sh` leaves the C guests (preview1 core modules).
pub fn c_guest_dir() -> PathBuf {
    workspace_root().join("guests/c/target")
}

/// The bytes of a preview1 core module as built, without an adapter: a Rust guest from
/// `guests/rust/src/bin/` or a C guest from `guests/c/` (names starting with `c_`).
pub fn core_module(name: &str) -> Result<Vec<u8>> {
    let dir = if name.starts_with("c_") {
        c_guest_dir()
    } else {
        rust_guest_dir()
    };
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| {
        format!(
            "guest `{name}` is not built ({}): run scripts/build-guests.sh",
            path.display()
        )
    })
}

/// The first position where `bytes` departs from the flood guests' output pattern (byte `i`
/// is `i % 251`: `stdout_flood`, `p1_io write`), or `None` if it is the pattern throughout.
pub fn flood_pattern_mismatch(bytes: &[u8]) -> Option<usize> {
    bytes
        .iter()
        .enumerate()
        .position(|(i, &b)| b != (i % 251) as u8)
}

fn cache() -> &'static Mutex<HashMap<String, Arc<Vec<u8>>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn cached(key: String, build: impl FnOnce() -> Result<Vec<u8>>) -> Result<Arc<Vec<u8>>> {
    if let Some(bytes) = cache().lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(bytes.clone());
    }
    let bytes = Arc::new(build()?);
    cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, bytes.clone());
    Ok(bytes)
}

/// Turns a `wasm32-wasip1` core module into a command component with the preview1 adapter.
pub fn componentize_wasip1(core: &[u8]) -> Result<Vec<u8>> {
    componentize_with(
        core,
        wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
    )
}

/// Turns a `wasm32-wasip1` reactor exporting `wasi:http/incoming-handler` into a
/// `wasi:http/proxy` component with the preview1 proxy adapter.
pub fn componentize_wasip1_proxy(core: &[u8]) -> Result<Vec<u8>> {
    componentize_with(
        core,
        wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_PROXY_ADAPTER,
    )
}

/// Turns a `wasm32-wasip1` reactor into a component with the preview1 reactor adapter
/// (for guests whose exports come from their bindings, e.g. a WASI 0.3 `wasi:cli/run`).
pub fn componentize_wasip1_reactor(core: &[u8]) -> Result<Vec<u8>> {
    componentize_with(
        core,
        wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    )
}

fn componentize_with(core: &[u8], adapter: &[u8]) -> Result<Vec<u8>> {
    ComponentEncoder::default()
        .validate(true)
        .module(core)?
        .adapter("wasi_snapshot_preview1", adapter)?
        .encode()
}

/// Where `scripts/build-guests.sh` leaves the `wasi:http` guests (reactor core modules).
pub fn http_guest_dir() -> PathBuf {
    workspace_root().join("guests/http/target/wasm32-wasip1/release")
}

/// The `wasi:http/proxy` component for the guest `guests/http/NAME` (`hello`, `echo`,
/// `probe`).
pub fn http_guest(name: &str) -> Result<Arc<Vec<u8>>> {
    built_guest(
        "http",
        name,
        &http_guest_dir().join(format!("http_{name}.wasm")),
        componentize_wasip1_proxy,
    )
}

/// The component for the Rust guest `name` (a binary in `guests/rust/src/bin/`).
pub fn rust_guest(name: &str) -> Result<Arc<Vec<u8>>> {
    built_guest(
        "rust",
        name,
        &rust_guest_dir().join(format!("{name}.wasm")),
        componentize_wasip1,
    )
}

/// The WASI 0.3 command component for the guest `guests/p3/NAME` (`hello`).
pub fn p3_guest(name: &str) -> Result<Arc<Vec<u8>>> {
    built_guest(
        "p3",
        name,
        &workspace_root().join(format!(
            "guests/p3/target/wasm32-wasip1/release/p3_{name}.wasm"
        )),
        componentize_wasip1_reactor,
    )
}

/// Reads the core module `path` built by `scripts/build-guests.sh` and componentizes it
/// (once per process).
fn built_guest(
    kind: &str,
    name: &str,
    path: &Path,
    componentize: fn(&[u8]) -> Result<Vec<u8>>,
) -> Result<Arc<Vec<u8>>> {
    cached(format!("{kind}:{name}"), || {
        let core = std::fs::read(path).with_context(|| {
            format!(
                "guest `{name}` is not built ({}): run scripts/build-guests.sh",
                path.display()
            )
        })?;
        componentize(&core).with_context(|| format!("componentizing guest `{name}`"))
    })
}

/// Builds a component from a WAT core module and a WIT package holding a world named
/// `guest` that lists its imports. `extra_packages` are pushed first (for example older
/// WASI package versions); otherwise the vendored WASI 0.2.12 WIT is available.
pub fn wat_guest_with(extra_packages: &[&str], world: &str, wat: &str) -> Result<Vec<u8>> {
    let mut resolve = Resolve::default();
    if extra_packages.is_empty() {
        resolve
            .push_path(workspace_root().join("wit"))
            .context("parsing the vendored WIT")?;
    }
    for (i, package) in extra_packages.iter().enumerate() {
        resolve.push_str(format!("extra{i}.wit"), package)?;
    }
    let package = resolve.push_str("guest.wit", world)?;
    let world = resolve.select_world(&[package], Some("guest"))?;
    let mut core = wat::parse_str(wat).context("parsing the guest's WAT")?;
    wit_component::embed_component_metadata(&mut core, &resolve, world, StringEncoding::UTF8)?;
    ComponentEncoder::default()
        .validate(true)
        .module(&core)?
        .encode()
}

/// [`wat_guest_with`] over the vendored WASI 0.2.12 WIT.
pub fn wat_guest(world: &str, wat: &str) -> Result<Vec<u8>> {
    wat_guest_with(&[], world, wat)
}

/// Runs `command` with `input` written to its stdin from another thread (so a child that
/// writes as it reads cannot deadlock on a full pipe) and stdout/stderr collected.
pub fn output_with_stdin(
    command: &mut std::process::Command,
    input: Vec<u8>,
) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let writer = std::thread::spawn(move || {
        // A child that exits early closes its stdin; what it read is what the test checks.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("the command runs");
    writer.join().expect("the stdin writer");
    out
}

/// Runs `command` (stdin empty), reads the first `len` bytes of its stdout, then closes
/// stdout (the reader goes away) and waits; returns those bytes and the rest of the output.
pub fn output_after_reading(
    command: &mut std::process::Command,
    len: usize,
) -> (Vec<u8>, std::process::Output) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut first = vec![0u8; len];
    stdout
        .read_exact(&mut first)
        .expect("the first bytes of stdout");
    drop(stdout);
    (first, child.wait_with_output().expect("the command runs"))
}
