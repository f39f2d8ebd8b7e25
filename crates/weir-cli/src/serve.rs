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

    /// Server threads, each with its own listener on the port and its own instances
    /// (default: the number of cores this process may use).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,

    /// Requests handled at once; more are answered `503 Service Unavailable`.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    max_concurrent_requests: usize,

    /// Seconds a handler may take to set its response before the client gets a 500 (0: no
    /// limit). `-W timeout` sets it too.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS", value_parser = non_negative_seconds)]
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
    /// Each server thread has its own instances.
    #[arg(long, default_value_t = 16, value_name = "N")]
    max_instance_concurrent_reuse_count: usize,

    /// With `--max-instance-reuse-count` above 1: seconds an instance with no request in
    /// flight is kept for the next one before it is dropped (0: until it is used up).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS", value_parser = non_negative_seconds)]
    idle_instance_timeout: f64,

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
    // The instances of a server thread share one pool of outgoing connections (same TLS
    // configuration for all): a pooled connection's task runs on the thread that opened
    // it, so threads do not share them (one thread's busy guest would hold up another's
    // requests, and a thread that stopped first would take them down).
    let store_maker = |pool: Arc<weir_http::ConnectionPool>| {
        let engine = engine.clone();
        let guest = guest.clone();
        let policy = policy.clone();
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
    // Each server thread gets its own handler: with instance reuse, its own pool, so a
    // request and its instance stay on one thread.
    let reuse = (args.max_instance_reuse_count > 1).then_some(weir_http::p3::InstanceReuse {
        max_requests: args.max_instance_reuse_count,
        max_concurrent: args.max_instance_concurrent_reuse_count,
        instances_in_parallel: 1,
        idle_timeout: (args.idle_instance_timeout > 0.0)
            .then(|| Duration::from_secs_f64(args.idle_instance_timeout)),
    });
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
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |cores| cores.get()),
        usize::from,
    );
    let listeners = listen(args.addr, threads)?;
    let local = listeners[0].local_addr().unwrap_or(args.addr);
    // This thread watches for the signals, and for a server that stopped on its own; the
    // signals are watched from before the banner, so a SIGTERM right after it is graceful.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let signalled = {
        let _in_runtime = runtime.enter();
        shutdown_signal(log.clone())
    };
    log.flush();
    eprintln!("Serving HTTP on http://{local}/");
    let slots = Arc::new(tokio::sync::Semaphore::new(
        serve_options.max_concurrent_requests,
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let exited = Arc::new(tokio::sync::Notify::new());
    let servers = listeners
        .into_iter()
        .enumerate()
        .map(|(index, listener)| {
            let make_store = store_maker(weir_http::ConnectionPool::new());
            let handler = match (&service_pre, reuse) {
                (Some(service_pre), Some(reuse)) => {
                    let stores = Arc::new(make_store.clone());
                    let pool = weir_http::p3::ServicePool::new(service_pre.clone(), stores, reuse);
                    weir_http::server::Handler::SharedService(Arc::new(pool))
                }
                _ => pre.clone(),
            };
            let (options, slots) = (serve_options.clone(), slots.clone());
            let exited = NotifyOnDrop(exited.clone());
            let mut stopped = stopped.clone();
            std::thread::Builder::new()
                .name(format!("weir-serve-{index}"))
                .spawn(move || -> Result<()> {
                    // Told when this thread ends, by returning or by a panic.
                    let _exited = exited;
                    serve_on_this_thread(
                        listener,
                        handler,
                        make_store,
                        options,
                        slots,
                        async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        },
                    )
                })
                .context("cannot start a server thread")
        })
        .collect::<Result<Vec<_>>>()?;
    runtime.block_on(async {
        tokio::select! {
            () = signalled => {}
            () = exited.notified() => {}
        }
    });
    let _ = stop.send(true);
    let mut outcome = Ok(());
    for server in servers {
        let served = server
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a server thread panicked")));
        if outcome.is_ok() {
            outcome = served;
        }
    }
    outcome?;
    log.flush();
    eprintln!("weir serve: stopped");
    if let Some(stats) = stats {
        eprintln!("weir serve stats: {}", stats.summary());
    }
    Ok(())
}

/// `count` listeners on `addr`, all on one port (`SO_REUSEPORT`: the kernel spreads the
/// connections over them); the first picks the port when `addr`'s is 0.
///
/// The first binds without `SO_REUSEPORT` and only then turns it on, so that a port some
/// other process listens on (a second `weir serve` on it too) is refused as taken,
/// instead of the two sharing its connections.
fn listen(addr: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>> {
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(count);
    for index in 0..count.max(1) {
        let at = listeners
            .first()
            .and_then(|first| first.local_addr().ok())
            .unwrap_or(addr);
        let first = index == 0;
        let listener = (|| -> std::io::Result<std::net::TcpListener> {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(at),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(!first)?;
            socket.set_nonblocking(true)?;
            socket.bind(&at.into())?;
            if first {
                socket.set_reuse_port(true)?;
            }
            socket.listen(1024)?;
            Ok(socket.into())
        })()
        .with_context(|| format!("cannot listen on {addr}"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// One server: a single-threaded runtime serving the connections of `listener`. Each
/// request's instance runs on this thread too, so a request never waits for another
/// core to wake up (a server per core instead of one work-stealing runtime: one
/// connection's isolated request rate went up by ~40%, docs/benchmarks.md).
fn serve_on_this_thread<F>(
    listener: std::net::TcpListener,
    handler: weir_http::server::Handler<Host>,
    make_store: F,
    options: ServeOptions,
    slots: Arc<tokio::sync::Semaphore>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()>
where
    F: Fn() -> wasmtime::Result<Store<Host>> + Send + Sync + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener).context("listening")?;
        weir_http::server::serve_sharing_slots(
            listener, handler, make_store, options, slots, shutdown,
        )
        .await
        .context("serving")
    })
}

/// A number of seconds, 0 or more (and finite, so that it makes a `Duration`).
fn non_negative_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if (0.0..1e12).contains(&seconds) => Ok(seconds),
        _ => Err(format!("`{text}` is not a number of seconds (0 or more)")),
    }
}

/// Writes out the log's waiting lines when dropped.
struct FlushOnReturn(BatchedStderr);

impl Drop for FlushOnReturn {
    fn drop(&mut self) {
        self.0.flush();
    }
}

/// Watches for SIGINT and SIGTERM from now on (call it in a runtime); the future resolves
/// on the first of them (never, with an error logged, if they cannot be watched).
fn shutdown_signal(log: BatchedStderr) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let watched = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        match watched {
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
}

/// Notifies when dropped: a server thread's end, however it ends.
struct NotifyOnDrop(Arc<tokio::sync::Notify>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}
