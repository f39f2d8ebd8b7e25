//! `weir serve FILE`: serves a `wasi:http/proxy` component, as `wasmtime serve` does.
//!
//! Each request gets a fresh instance (pre-instantiated once, with Wasmtime's pooling
//! allocator unless `-O pooling-allocator=n`), so requests never share guest state.
//! Outgoing requests follow the same policy as `weir run`: denied unless `-S http` (any
//! request) or `--allow http-request=HOST_PATTERN[:PORTS]` rules allow them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store};
use weir_http::server::{ServeOptions, ServeStats};

use crate::log_writer::BatchedStderr;
use crate::options::{self, NetworkSwitches};
use crate::{GuestArgs, Host};

/// How often the epoch advances: a guest running wasm code yields to the server this often,
/// so that a request timeout can stop even a guest that never calls the host.
const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    guest: GuestArgs,

    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "SOCKADDR")]
    addr: SocketAddr,

    /// Requests handled at once; more are answered `503 Service Unavailable`.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    max_concurrent_requests: usize,

    /// Seconds a handler may take to set its response before the client gets a 500 (0: no
    /// limit). `-W timeout` sets it too.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    request_timeout: f64,

    /// Allow precompiled code (`.cwasm` from `weir compile`); trusted without validation.
    #[arg(long)]
    allow_precompiled: bool,

    /// Requests one instance of a WASI 0.3 service answers before it is dropped. The
    /// default, 1, gives every request a fresh instance; more trades that isolation
    /// (shared memory; a trap ends every request on the instance) for not instantiating
    /// per request. 0.2 proxies always get one instance per request.
    #[arg(long, default_value_t = 1, value_name = "N")]
    max_instance_reuse_count: usize,

    /// With `--max-instance-reuse-count` above 1: requests one instance answers at once.
    /// Requests are spread over up to one instance per core before they share a busy one.
    #[arg(long, default_value_t = 16, value_name = "N")]
    max_instance_concurrent_reuse_count: usize,

    /// The `wasi:http/proxy` component to serve.
    #[arg(value_name = "WASM")]
    component: PathBuf,
}

/// `weir serve`'s default for `-O pooling-decommit-batch-size`.
const SERVE_DECOMMIT_BATCH_SIZE: usize = 32;

/// Runs the server until SIGINT or SIGTERM, then lets the requests in flight finish.
pub fn serve(mut args: ServeArgs) -> Result<()> {
    // Instances must not share the server's stdin; stdout and stderr are inherited.
    args.guest.common.wasi.inherit_stdin.get_or_insert(false);
    // Returning an instance's memory to the pool costs an madvise, whose TLB shootdown
    // interrupts every core running the server; batching them cut the server's CPU per
    // request by about a third under load (docs/benchmarks.md). wasmtime's default is 1.
    args.guest
        .common
        .opts
        .pooling_decommit_batch_size
        .get_or_insert(SERVE_DECOMMIT_BATCH_SIZE);
    let mut config = options::engine_config(&mut args.guest.common, Some(true))?;
    let request_timeout = args.guest.common.wasm.timeout.or_else(|| {
        (args.request_timeout > 0.0).then(|| Duration::from_secs_f64(args.request_timeout))
    });
    // Epoch checks (a few % of wasm speed) only when a timeout must be able to stop wasm
    // code; without a timeout nothing needs to interrupt a guest.
    let epochs = request_timeout.is_some();
    config.epoch_interruption(epochs);
    // The access log (`weir::serve`, info) is on unless WEIR_LOG says otherwise.
    let log = BatchedStderr::start().context("cannot start the log's thread")?;
    // Whatever way `serve` returns, the log's last lines come before what is printed then.
    let _flush_log = FlushOnReturn(log.clone());
    crate::init_logging(
        &args.guest,
        || {
            EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| EnvFilter::new("warn,weir::serve=info"))
        },
        log.clone(),
    );
    let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
    let component =
        match weir::program::Program::from_file(&engine, &args.component, args.allow_precompiled)
            .map_err(anyhow::Error::from)?
        {
            weir::program::Program::Component(component) => component,
            weir::program::Program::Module(_) => anyhow::bail!(
                "`{}` is a core module: weir serve needs a `wasi:http/proxy` component",
                args.component.display()
            ),
        };
    let p3 = crate::wasi_0_3_enabled(&args.guest);
    let service = p3 && weir_http::p3::is_service(&component);
    crate::refuse_unprovided_wasi_0_3(
        &engine,
        &component,
        (!p3).then_some("`-S p3=n` turned WASI 0.3 off"),
        if service {
            weir_http::p3::INTERFACES
        } else {
            &[]
        },
    )?;
    let mut linker = Linker::<Host>::new(&engine);
    if service {
        weir_http::p3::add_service_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    } else {
        weir_http::add_proxy_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        if p3 {
            weir::p3::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        }
    }
    let instance_pre = linker
        .instantiate_pre(&component)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot link `{}`", args.component.display()))?;
    let service_pre = if service {
        Some(
            weir_http::p3::bindings::ServicePre::new(instance_pre.clone())
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "`{}`: not a wasi:http/service component",
                        args.component.display()
                    )
                })?,
        )
    } else {
        None
    };
    let pre: weir_http::server::Handler<Host> = if let Some(service_pre) = &service_pre {
        service_pre.clone().into()
    } else {
        weir_http::bindings::ProxyPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "`{}` does not export `wasi:http/incoming-handler` (0.2) or \
                     `wasi:http/handler` (0.3): weir serve serves `wasi:http/proxy` and \
                     `wasi:http/service` components",
                    args.component.display()
                )
            })?
            .into()
    };

    let network = NetworkSwitches::from_options(&args.guest.common.wasi);
    let policy = crate::network_policy(&args.guest, &network)?;
    // Open the preopens once up front, so that a bad --dir fails at start, not per request.
    crate::wasi_builder(&args.guest, policy.clone())?;
    let guest = Arc::new(args.guest);
    // Instances share one pool of outgoing connections (same TLS configuration for all).
    let pool = weir_http::ConnectionPool::new();
    let make_store = {
        let engine = engine.clone();
        let guest = guest.clone();
        move || -> wasmtime::Result<Store<Host>> {
            let wasi = crate::wasi_builder(&guest, policy.clone())
                .map_err(wasmtime::Error::from_anyhow)?
                .build();
            let http = crate::http_ctx(&guest, policy.clone()).with_connection_pool(pool.clone());
            let mut store = crate::new_store(&engine, &guest, wasi, http)?;
            if epochs {
                store.epoch_deadline_async_yield_and_update(1);
            }
            Ok(store)
        }
    };
    let pre = match service_pre {
        Some(service_pre) if args.max_instance_reuse_count > 1 => {
            let reuse = weir_http::p3::InstanceReuse {
                max_requests: args.max_instance_reuse_count,
                max_concurrent: args.max_instance_concurrent_reuse_count,
                // One instance per tokio worker thread: guest code then runs on every core.
                instances_in_parallel: std::thread::available_parallelism()
                    .map_or(1, |cores| cores.get()),
            };
            let stores = make_store.clone();
            let pool = weir_http::p3::ServicePool::new(service_pre, Arc::new(stores), reuse);
            weir_http::server::Handler::SharedService(Arc::new(pool))
        }
        _ => pre,
    };
    if epochs {
        let engine = engine.clone();
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .context("cannot start the epoch thread")?;
    }

    let stats = guest.stats.then(|| Arc::new(ServeStats::default()));
    let serve_options = ServeOptions {
        max_concurrent_requests: args.max_concurrent_requests.max(1),
        request_timeout,
        stats: stats.clone(),
        max_fields_size: guest.common.wasi.max_http_fields_size,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let local = listener.local_addr().unwrap_or(args.addr);
        eprintln!("Serving HTTP on http://{local}/");
        weir_http::server::serve(
            listener,
            pre,
            make_store,
            serve_options,
            shutdown_signal(log.clone()),
        )
        .await
        .context("serving")
    })?;
    log.flush();
    eprintln!("weir serve: stopped");
    if let Some(stats) = stats {
        eprintln!("weir serve stats: {}", stats.summary());
    }
    Ok(())
}

/// Writes out the log's waiting lines when dropped.
struct FlushOnReturn(BatchedStderr);

impl Drop for FlushOnReturn {
    fn drop(&mut self) {
        self.0.flush();
    }
}

/// Resolves on SIGINT or SIGTERM (never, with an error logged, if they cannot be watched).
async fn shutdown_signal(log: BatchedStderr) {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        (Err(error), _) | (_, Err(error)) => {
            // Serve on; only killing the process stops it then.
            tracing::error!(target: "weir::serve", "cannot watch for SIGINT/SIGTERM: {error}");
            std::future::pending::<()>().await;
        }
    }
    log.flush();
    eprintln!("weir serve: shutting down after the requests in flight");
}
