//! The per-instance WASI state and its builder.

use std::path::Path;
use std::sync::Arc;

use rand::{RngCore, SeedableRng};
use wasmtime::component::ResourceTable;

use crate::cli::{InputSource, OutputSource};
use crate::filesystem::{DirPerms, FilePerms, Preopen};
use crate::io::{ClosedInputStream, SinkOutputStream};
use crate::sockets::{NetworkPolicy, NetworkStats, SocketsCtx};

/// Everything WASI needs for one component instance, except the resource table.
///
/// Build it with [`WasiCtxBuilder`].
pub struct WasiCtx {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) initial_cwd: Option<String>,
    pub(crate) stdin: Arc<dyn InputSource>,
    pub(crate) stdout: Arc<dyn OutputSource>,
    pub(crate) stderr: Arc<dyn OutputSource>,
    pub(crate) preopens: Vec<Preopen>,
    pub(crate) secure_random: Box<dyn RngCore + Send>,
    pub(crate) insecure_random: Box<dyn RngCore + Send>,
    pub(crate) insecure_seed: (u64, u64),
    /// The most bytes one `get-random-bytes`/`get-insecure-random-bytes` call may ask for.
    pub(crate) max_random_bytes: u64,
    pub(crate) sockets: SocketsCtx,
    /// The preview1 descriptor table, for core modules (created at their first call).
    pub(crate) p1: Option<crate::p1::P1State>,
}

impl WasiCtx {
    /// The instance's network counters (datagrams and bytes sent and received, denials).
    pub fn network_stats(&self) -> Arc<NetworkStats> {
        self.sockets.stats.clone()
    }

    /// The instance's TCP background writers (bytes the guest wrote that the kernel had not
    /// taken yet), to wait for or cancel; dropping the context cancels them.
    pub fn tcp_background_writers(&self) -> crate::sockets::tcp::BackgroundWriters {
        self.sockets.background_writers.clone()
    }

    /// The limit set by [`WasiCtxBuilder::tcp_delivery_limit`].
    pub fn tcp_delivery_limit(&self) -> std::time::Duration {
        self.sockets.config.tcp_delivery_limit
    }
}

/// What the WASI host functions operate on: the context and the store's resource table.
pub struct WasiCtxView<'a> {
    /// The WASI context.
    pub ctx: &'a mut WasiCtx,
    /// The table holding the guest's resources (streams, pollables, descriptors, ...).
    pub table: &'a mut ResourceTable,
}

/// Implemented by the embedder's store data to give Weir its state.
///
/// ```
/// use wasmtime::component::ResourceTable;
/// use weir::{WasiCtx, WasiCtxView, WasiView};
/// struct MyState { wasi: WasiCtx, table: ResourceTable, other: u32 }
/// impl WasiView for MyState {
///     fn wasi(&mut self) -> WasiCtxView<'_> {
///         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
///     }
/// }
/// ```
pub trait WasiView: Send {
    /// Borrows the WASI context and resource table.
    fn wasi(&mut self) -> WasiCtxView<'_>;
}

/// Builds a [`WasiCtx`]. Defaults: no arguments, no environment, stdin at end of stream,
/// stdout and stderr discarded, no preopened directories, random from the OS.
///
/// ```
/// use weir::{WasiCtxBuilder, io::MemoryOutputPipe};
/// let stdout = MemoryOutputPipe::new(1 << 20);
/// let ctx = WasiCtxBuilder::new()
///     .args(["prog", "--verbose"])
///     .env("LANG", "C")
///     .stdout(stdout.clone())
///     .build();
/// ```
pub struct WasiCtxBuilder {
    ctx: WasiCtx,
}

impl Default for WasiCtxBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl WasiCtxBuilder {
    /// A builder with the defaults above.
    pub fn new() -> Self {
        // Seeds come from the thread's CSPRNG (ChaCha, itself seeded from the OS and
        // reseeded periodically), not from the OS per context: a server making a context
        // per request would otherwise spend several `getrandom` calls on each.
        let mut seed_source = rand::rngs::StdRng::from_rng(&mut rand::rng());
        let insecure_seed = (seed_source.next_u64(), seed_source.next_u64());
        WasiCtxBuilder {
            ctx: WasiCtx {
                args: Vec::new(),
                env: Vec::new(),
                initial_cwd: None,
                stdin: Arc::new(ClosedInputStream),
                stdout: Arc::new(SinkOutputStream),
                stderr: Arc::new(SinkOutputStream),
                preopens: Vec::new(),
                secure_random: Box::new(rand::rngs::StdRng::from_rng(&mut rand::rng())),
                insecure_random: Box::new(rand::rngs::StdRng::from_rng(&mut seed_source)),
                insecure_seed,
                max_random_bytes: crate::random::DEFAULT_MAX_RANDOM_BYTES,
                sockets: SocketsCtx::default(),
                p1: None,
            },
        }
    }

    /// Appends one argument (the first one is the program name, `argv[0]`).
    pub fn arg(&mut self, arg: impl Into<String>) -> &mut Self {
        self.ctx.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, args: I) -> &mut Self {
        self.ctx.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable (replacing an earlier value of the same name).
    pub fn env(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let name = name.into();
        let value = value.into();
        match self.ctx.env.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.ctx.env.push((name, value)),
        }
        self
    }

    /// Passes the host's environment variables (those that are valid Unicode).
    pub fn inherit_env(&mut self) -> &mut Self {
        for (name, value) in std::env::vars_os() {
            if let (Ok(name), Ok(value)) = (name.into_string(), value.into_string()) {
                self.env(name, value);
            }
        }
        self
    }

    /// The directory `wasi:cli/environment.initial-cwd` reports.
    pub fn initial_cwd(&mut self, cwd: impl Into<String>) -> &mut Self {
        self.ctx.initial_cwd = Some(cwd.into());
        self
    }

    /// Where the guest's stdin comes from.
    pub fn stdin(&mut self, source: impl InputSource) -> &mut Self {
        self.ctx.stdin = Arc::new(source);
        self
    }

    /// Where the guest's stdout goes.
    pub fn stdout(&mut self, sink: impl OutputSource) -> &mut Self {
        self.ctx.stdout = Arc::new(sink);
        self
    }

    /// Where the guest's stderr goes.
    pub fn stderr(&mut self, sink: impl OutputSource) -> &mut Self {
        self.ctx.stderr = Arc::new(sink);
        self
    }

    /// Gives the guest the host's stdin.
    pub fn inherit_stdin(&mut self) -> &mut Self {
        self.stdin(crate::cli::HostStdin)
    }

    /// Gives the guest the host's stdout.
    pub fn inherit_stdout(&mut self) -> &mut Self {
        self.stdout(crate::cli::HostStdout)
    }

    /// Gives the guest the host's stderr.
    pub fn inherit_stderr(&mut self) -> &mut Self {
        self.stderr(crate::cli::HostStderr)
    }

    /// Gives the guest the host's stdin, stdout and stderr.
    pub fn inherit_stdio(&mut self) -> &mut Self {
        self.inherit_stdin().inherit_stdout().inherit_stderr()
    }

    /// Preopens the host directory `host_path` as `guest_path`.
    ///
    /// `dir_perms` governs the directory tree (read it, mutate it); `file_perms` the files
    /// opened in it. A read-only preopen is `DirPerms::READ, FilePerms::READ`. The guest
    /// cannot reach outside `host_path` (no `..`, absolute paths or symlinks out).
    pub fn preopened_dir(
        &mut self,
        host_path: impl AsRef<Path>,
        guest_path: impl Into<String>,
        dir_perms: DirPerms,
        file_perms: FilePerms,
    ) -> std::io::Result<&mut Self> {
        let host_path = host_path.as_ref();
        let dir = cap_std::fs::Dir::open_ambient_dir(host_path, cap_std::ambient_authority())
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot open directory `{}`: {e}", host_path.display()),
                )
            })?;
        self.ctx
            .preopens
            .push(Preopen::new(dir, guest_path.into(), dir_perms, file_perms));
        Ok(self)
    }

    /// The network policy (default: deny everything).
    pub fn network_policy(&mut self, policy: NetworkPolicy) -> &mut Self {
        self.ctx.sockets.config.policy = Arc::new(policy);
        self
    }

    /// Whether the guest may create UDP sockets at all (default: yes; what it may do with
    /// them is up to the network policy).
    pub fn allow_udp(&mut self, enabled: bool) -> &mut Self {
        self.ctx.sockets.config.udp = enabled;
        self
    }

    /// Whether the guest may create TCP sockets at all (default: yes; what it may do with
    /// them is up to the network policy).
    pub fn allow_tcp(&mut self, enabled: bool) -> &mut Self {
        self.ctx.sockets.config.tcp = enabled;
        self
    }

    /// The most TCP sockets (listeners and connections) the guest may have open at once
    /// (default [`crate::sockets::DEFAULT_MAX_TCP_SOCKETS`]); one more is `new-socket-limit`.
    pub fn max_tcp_sockets(&mut self, max: usize) -> &mut Self {
        self.ctx.sockets.config.max_tcp_sockets = max;
        self
    }

    /// The most UDP sockets the guest may have open at once (default
    /// [`crate::sockets::DEFAULT_MAX_UDP_SOCKETS`]); one more is `new-socket-limit`.
    pub fn max_udp_sockets(&mut self, max: usize) -> &mut Self {
        self.ctx.sockets.config.max_udp_sockets = max;
        self
    }

    /// How long [`crate::command::run_async`]/[`crate::command::run_sync`] keep delivering
    /// TCP bytes the guest wrote but the kernel had not taken yet, once the guest returned
    /// (default [`crate::sockets::DEFAULT_TCP_DELIVERY_LIMIT`], 30 s); writers still running
    /// then are cancelled.
    pub fn tcp_delivery_limit(&mut self, limit: std::time::Duration) -> &mut Self {
        self.ctx.sockets.config.tcp_delivery_limit = limit;
        self
    }

    /// The source of `wasi:random/random`. It must be cryptographically secure.
    pub fn secure_random(&mut self, rng: impl RngCore + Send + 'static) -> &mut Self {
        self.ctx.secure_random = Box::new(rng);
        self
    }

    /// The source of `wasi:random/insecure`.
    pub fn insecure_random(&mut self, rng: impl RngCore + Send + 'static) -> &mut Self {
        self.ctx.insecure_random = Box::new(rng);
        self
    }

    /// The value of `wasi:random/insecure-seed.insecure-seed`.
    pub fn insecure_random_seed(&mut self, seed: u128) -> &mut Self {
        self.ctx.insecure_seed = ((seed >> 64) as u64, seed as u64);
        self
    }

    /// The most bytes one `get-random-bytes` or `get-insecure-random-bytes` call may ask
    /// for (default [`crate::random::DEFAULT_MAX_RANDOM_BYTES`], 64 MiB); a larger request
    /// traps. The host allocates what a guest asks for, so this bounds that allocation.
    pub fn max_random_size(&mut self, max: u64) -> &mut Self {
        self.ctx.max_random_bytes = max;
        self
    }

    /// Finishes the context. The builder is left with the defaults.
    pub fn build(&mut self) -> WasiCtx {
        std::mem::take(self).ctx
    }
}
