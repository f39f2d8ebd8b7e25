//! `weir run`: runs a `wasi:cli/command` component or a WASI preview1 core module, accepting
//! `wasmtime run`'s flags; `weir serve`: serves a `wasi:http/proxy` component, as `wasmtime
//! serve`; `weir compile`: precompiles one, as `wasmtime compile`.

mod invoke;
mod log_writer;
mod options;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits};
use weir::sockets::NetworkPolicy;
use weir::{DirPerms, FilePerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use options::{DirSpec, NetworkSwitches};

/// Exit status for a wasm trap, as `wasmtime run` reports it (128 + SIGABRT).
const TRAP_EXIT_STATUS: u8 = 134;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "A WASI host for Wasmtime: runs WASI 0.2 components and preview1 modules"
)]
enum Cli {
    /// Run a WASI command component (`wasi:cli/command`) or a WASI preview1 core module.
    Run(RunArgs),
    /// Serve a `wasi:http/proxy` component over HTTP/1.1 and HTTP/2 (h2c): a fresh instance
    /// per request.
    Serve(serve::ServeArgs),
    /// Compile a component or module to native code (`.cwasm`), for `run --allow-precompiled`.
    Compile(CompileArgs),
}

#[derive(clap::Args)]
struct CompileArgs {
    /// wasmtime's `-O`, `-C`, `-D`, `-W` options; `run` must be given the same ones.
    #[command(flatten)]
    common: wasmtime_cli_flags::CommonOptions,

    /// Where to write the compiled code (default: the input's name with `.cwasm`).
    #[arg(short = 'o', long = "output", value_name = "OUTPUT")]
    output: Option<PathBuf>,

    /// The component or core module to compile (binary or WAT).
    #[arg(value_name = "WASM")]
    input: PathBuf,
}

/// What `run` and `serve` share: the guest's environment, files, engine and network.
#[derive(clap::Args)]
pub(crate) struct GuestArgs {
    /// Grant access to a host directory, optionally under another guest path.
    #[arg(long = "dir", value_name = "HOST_DIR[::GUEST_DIR]")]
    dirs: Vec<String>,

    /// Like --dir, but the guest may only read.
    #[arg(long = "dir-ro", value_name = "HOST_DIR[::GUEST_DIR]")]
    dirs_read_only: Vec<String>,

    /// Set an environment variable for the guest; NAME alone passes the host's value.
    #[arg(long = "env", value_name = "NAME[=VAL]")]
    envs: Vec<String>,

    /// wasmtime's `-O`, `-C`, `-D`, `-W`, `-S`, `-R`, `--target` and `--config FILE`
    /// (`-W help` lists a group's keys).
    #[command(flatten)]
    common: wasmtime_cli_flags::CommonOptions,

    /// Allow a network use: `USES=CIDR[:PORTS]`, e.g. `udp-send=127.0.0.0/8:5000-5999`.
    #[arg(long = "allow", value_name = "USES=CIDR[:PORTS]")]
    allow: Vec<String>,

    /// Deny a network use (deny rules win over allow rules).
    #[arg(long = "deny", value_name = "USES=CIDR[:PORTS]")]
    deny: Vec<String>,

    /// Read network allow/deny rules from a TOML file.
    #[arg(long = "policy", value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Print counters to stderr at exit: the instance's network counters (`run`), request
    /// counts and latency percentiles (`serve`).
    #[arg(long)]
    stats: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    guest: GuestArgs,

    /// The guest's argv[0] (default: the component's path as given).
    #[arg(long)]
    argv0: Option<String>,

    /// Call an export instead of the entry point: `'name(arg, …)'` in WAVE syntax for a
    /// component; `name` (with one ARG per parameter) for a core module.
    #[arg(long, value_name = "FUNCTION")]
    invoke: Option<String>,

    /// Allow running precompiled code (`.cwasm` from `weir compile`): it is native code,
    /// trusted without validation, so only pass files you trust.
    #[arg(long)]
    allow_precompiled: bool,

    /// The component or WASI preview1 core module to run.
    #[arg(value_name = "WASM")]
    component: PathBuf,

    /// Arguments passed to the guest.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<String>,
}

pub(crate) struct Host {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: weir_http::WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
}

impl weir_http::WasiHttpView for Host {
    fn http(&mut self) -> weir_http::WasiHttpCtxView<'_> {
        weir_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
        }
    }
}

impl WasiView for Host {
    fn wasi(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Raises the soft limit on open files to the hard limit: a guest's descriptors (preview1
/// files, sockets) are the process's, and the usual soft limit (1024) is far below what one
/// instance may legitimately hold.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("cannot raise RLIMIT_NOFILE: {error}");
        }
    }
}

/// `weir FILE ARGS…` is `weir run FILE ARGS…`, as `wasmtime FILE` is `wasmtime run FILE`:
/// when the first argument is neither a subcommand nor a top-level flag, `run` is implied.
fn with_implicit_run(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut args: Vec<_> = args.collect();
    let explicit = args.get(1).and_then(|a| a.to_str()).is_none_or(|first| {
        matches!(
            first,
            "run" | "serve" | "compile" | "help" | "-h" | "--help" | "-V" | "--version"
        )
    });
    if !explicit {
        args.insert(1, "run".into());
    }
    args
}

fn main() -> ExitCode {
    let args = match Cli::parse_from(with_implicit_run(std::env::args_os())) {
        Cli::Run(args) => args,
        Cli::Serve(args) => {
            raise_open_file_limit();
            return exit_code(serve::serve(args));
        }
        Cli::Compile(args) => return exit_code(compile(args)),
    };
    raise_open_file_limit();
    let status = match run(args) {
        Ok(status) => status,
        Err(error) => {
            weir::io::stdio::flush_stdio();
            eprintln!("Error: {error:?}");
            return ExitCode::from(1);
        }
    };
    weir::io::stdio::flush_stdio();
    ExitCode::from(status)
}

/// 0 for success; 1, with the error on stderr, for a failure.
fn exit_code(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:?}");
            ExitCode::from(1)
        }
    }
}

/// Logs to stderr (colours only on a terminal) through `filter`, unless `-D logging=n`
/// turns logging off, as in wasmtime.
pub(crate) fn init_logging<W>(args: &GuestArgs, filter: impl FnOnce() -> EnvFilter, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    if args.common.debug.logging != Some(false) {
        tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(writer)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// A store for one instance with the guest's limits: `-S max-resources`, the `-W` memory
/// and table limits, `-S hostcall-fuel`, `-S max-component-handles`, `-W fuel`.
pub(crate) fn new_store(
    engine: &Engine,
    args: &GuestArgs,
    wasi: WasiCtx,
    http: weir_http::WasiHttpCtx,
) -> wasmtime::Result<Store<Host>> {
    let wasi_options = &args.common.wasi;
    let mut table = ResourceTable::new();
    if let Some(max) = wasi_options.max_resources {
        table.set_max_capacity(max);
    }
    let host = Host {
        wasi,
        http,
        table,
        limits: options::store_limits(&args.common.wasm),
    };
    let mut store = Store::new(engine, host);
    store.limiter(|host| &mut host.limits);
    if let Some(fuel) = wasi_options.hostcall_fuel {
        store.set_hostcall_fuel(fuel);
    }
    if let Some(max) = wasi_options.max_component_handles {
        store.set_max_component_handles(max);
    }
    if let Some(fuel) = args.common.wasm.fuel {
        store.set_fuel(fuel)?;
    }
    Ok(store)
}

fn build_wasi(args: &RunArgs, policy: NetworkPolicy) -> Result<WasiCtx> {
    let mut builder = wasi_builder(&args.guest, policy)?;
    let argv0 = args
        .argv0
        .clone()
        .unwrap_or_else(|| args.component.display().to_string());
    builder.arg(argv0).args(args.args.iter().cloned());
    Ok(builder.build())
}

/// A WASI context builder with the guest's environment, stdio, limits, network policy
/// and preopened directories (no arguments).
pub(crate) fn wasi_builder(args: &GuestArgs, policy: NetworkPolicy) -> Result<WasiCtxBuilder> {
    let wasi_options = &args.common.wasi;
    let network = NetworkSwitches::from_options(wasi_options);
    let mut builder = WasiCtxBuilder::new();
    if wasi_options.inherit_env == Some(true) {
        builder.inherit_env();
    }
    for env in &args.envs {
        match env.split_once('=') {
            Some((name, value)) => builder.env(name, value),
            None => match std::env::var(env) {
                Ok(value) => builder.env(env, value),
                Err(_) => anyhow::bail!("--env {env}: the host has no variable `{env}` to pass"),
            },
        };
    }
    // stdio is inherited unless turned off, as in wasmtime.
    if wasi_options.inherit_stdin != Some(false) {
        builder.inherit_stdin();
    }
    if wasi_options.inherit_stdout != Some(false) {
        builder.inherit_stdout();
    }
    if wasi_options.inherit_stderr != Some(false) {
        builder.inherit_stderr();
    }
    if let Some(max) = wasi_options.max_random_size {
        builder.max_random_size(max);
    }
    builder
        .network_policy(policy)
        .allow_udp(network.udp)
        .allow_tcp(network.tcp);
    if let Some(cwd) = &wasi_options.cwd {
        builder.initial_cwd(cwd.clone());
    }
    let preopens = args
        .dirs
        .iter()
        .map(|d| (d, "--dir", DirPerms::all(), FilePerms::all()))
        .chain(
            args.dirs_read_only
                .iter()
                .map(|d| (d, "--dir-ro", DirPerms::READ, FilePerms::READ)),
        );
    for (spec, flag, dir_perms, file_perms) in preopens {
        let spec = DirSpec::parse(spec);
        builder
            .preopened_dir(&spec.host, spec.guest.clone(), dir_perms, file_perms)
            .with_context(|| format!("{flag} {}", spec.host))?;
    }
    Ok(builder)
}

/// The policy from `-S inherit-network`, `-S allow-ip-name-lookup`, `--allow`, `--deny`,
/// `--policy` and `-S http`: with `-S http`, HTTP requests are allowed (as in wasmtime)
/// unless `http-request` rules are given, which then decide alone.
pub(crate) fn network_policy(args: &GuestArgs, network: &NetworkSwitches) -> Result<NetworkPolicy> {
    let mut policy = if network.inherit_network {
        NetworkPolicy::allow_all_sockets()
    } else {
        NetworkPolicy::deny_all()
    };
    if network.allow_ip_name_lookup {
        policy = policy.with_rule(weir::sockets::Rule::names(
            weir::sockets::Action::Allow,
            weir::sockets::NamePattern::Any,
        ));
    }
    if let Some(path) = &args.policy {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--policy {}: cannot read the file", path.display()))?;
        policy = policy
            .with_toml(&text)
            .with_context(|| format!("--policy {}", path.display()))?;
    }
    for rule in &args.allow {
        policy = policy
            .allow(rule)
            .with_context(|| format!("--allow {rule}"))?;
    }
    for rule in &args.deny {
        policy = policy
            .deny(rule)
            .with_context(|| format!("--deny {rule}"))?;
    }
    let http_rules = policy
        .rules()
        .iter()
        .any(|rule| rule.uses == [weir::sockets::NetworkUse::HttpRequest]);
    if args.common.wasi.http == Some(true) && !http_rules {
        policy = policy.with_rule(weir::sockets::Rule::http_requests(
            weir::sockets::Action::Allow,
            weir::sockets::NamePattern::Any,
            0..=u16::MAX,
        ));
    }
    Ok(policy)
}

/// What `weir run` runs: a component, or a preview1 core module, each with its linker.
enum Program {
    Component(Component, Linker<Host>),
    Module(wasmtime::Module, wasmtime::Linker<Host>),
}

/// `weir compile`: writes the native code of a component or module.
fn compile(mut args: CompileArgs) -> Result<()> {
    let config = options::engine_config(&mut args.common, None)?;
    let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
    let program = weir::program::Program::from_file(&engine, &args.input, false)
        .map_err(anyhow::Error::from)?;
    let output = args
        .output
        .unwrap_or_else(|| args.input.with_extension("cwasm"));
    let code = program.serialize().map_err(anyhow::Error::from)?;
    std::fs::write(&output, code).with_context(|| format!("cannot write `{}`", output.display()))
}

/// `-S p3` (default on, as in wasmtime 48): WASI 0.3 interfaces are linked and a 0.3
/// command (`wasi:cli/run@0.3.x` export) is run as one.
pub(crate) fn wasi_0_3_enabled(guest: &GuestArgs) -> bool {
    guest.common.wasi.p3.unwrap_or(true)
}

fn load(engine: &Engine, args: &RunArgs) -> Result<Program> {
    let trap_unknown = args.guest.common.wasm.unknown_imports_trap == Some(true);
    let default_unknown = args.guest.common.wasm.unknown_imports_default == Some(true);
    let loaded = weir::program::Program::from_file(engine, &args.component, args.allow_precompiled)
        .map_err(anyhow::Error::from)?;
    let component = match loaded {
        weir::program::Program::Component(component) => component,
        weir::program::Program::Module(module) => {
            check_module_imports(&module, trap_unknown || default_unknown)?;
            let mut linker = wasmtime::Linker::<Host>::new(engine);
            weir::p1::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
            if let Some(allow) = args.guest.common.wasm.unknown_exports_allow {
                linker.allow_unknown_exports(allow);
            }
            if trap_unknown {
                linker
                    .define_unknown_imports_as_traps(&module)
                    .map_err(anyhow::Error::from)?;
            }
            return Ok(Program::Module(module, linker));
        }
    };
    if default_unknown {
        anyhow::bail!(
            "-W unknown-imports-default: not supported with components (as in wasmtime); it \
             applies to core modules"
        );
    }
    if args.guest.common.wasm.unknown_exports_allow == Some(true) {
        anyhow::bail!(
            "-W unknown-exports-allow: not supported with components (as in wasmtime); it \
             applies to core modules"
        );
    }
    let p3 = wasi_0_3_enabled(&args.guest);
    let http = args.guest.common.wasi.http == Some(true);
    refuse_unprovided_wasi_0_3(
        engine,
        &component,
        (!p3).then_some("`-S p3=n` turned WASI 0.3 off"),
        if http { weir_http::p3::INTERFACES } else { &[] },
    )?;
    let mut linker = Linker::<Host>::new(engine);
    weir::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    if p3 {
        weir::p3::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    }
    if http {
        weir_http::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        if p3 {
            weir_http::p3::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        }
    }
    if trap_unknown {
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(anyhow::Error::from)?;
    }
    Ok(Program::Component(component, linker))
}

/// A one-line error for a module importing what weir does not provide: preview0
/// (`wasi_unstable`), or any other module than `wasi_snapshot_preview1` (unless
/// `-W unknown-imports-trap` or `-W unknown-imports-default` defines those).
fn check_module_imports(module: &wasmtime::Module, trap_unknown: bool) -> Result<()> {
    for import in module.imports() {
        match import.module() {
            "wasi_snapshot_preview1" => {}
            "wasi_unstable" => anyhow::bail!(
                "the module imports `wasi_unstable.{}`: WASI preview0 is not supported by weir \
                 (only `wasi_snapshot_preview1`)",
                import.name()
            ),
            _ if trap_unknown => {}
            other => anyhow::bail!(
                "the module imports `{other}.{}`, which weir does not provide (it provides \
                 `wasi_snapshot_preview1`; `-W unknown-imports-trap` turns unknown imports \
                 into traps, `-W unknown-imports-default` into functions returning zeros)",
                import.name()
            ),
        }
    }
    Ok(())
}

/// Refuses, with a clear message, a component that imports WASI 0.3 interfaces weir does
/// not provide, instead of the linker's error about the first missing import. With
/// `off: Some(why)`, every 0.3 import is refused, for that reason.
pub(crate) fn refuse_unprovided_wasi_0_3(
    engine: &Engine,
    component: &Component,
    off: Option<&str>,
    also_provided: &[&str],
) -> Result<()> {
    let p3 = off.is_none();
    let missing: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| name.starts_with("wasi:") && name.contains("@0.3."))
        .filter(|name| {
            let unversioned = name.split('@').next().unwrap_or(name);
            !p3 || !(weir::p3::INTERFACES.contains(&unversioned)
                || also_provided.contains(&unversioned))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if let Some(why) = off {
        anyhow::bail!(
            "this component imports WASI 0.3 interfaces ({}): {why}",
            missing.join(", ")
        );
    }
    anyhow::bail!(
        "this component imports WASI 0.3 interfaces weir does not provide yet ({}); weir's \
         WASI 0.3 has wasi:cli, wasi:clocks, wasi:random, wasi:filesystem and wasi:sockets, \
         and `weir serve` wasi:http/types and the handler export (see the README's status \
         table)",
        missing.join(", ")
    );
}

/// The instance's `wasi:http` context: the policy's `http-request` rules, and
/// `-S max-http-fields-size` as the bound on fields the guest builds.
fn http_ctx(guest: &GuestArgs, policy: NetworkPolicy) -> weir_http::WasiHttpCtx {
    let http = weir_http::WasiHttpCtx::new(policy);
    match guest.common.wasi.max_http_fields_size {
        Some(limit) => http.with_field_size_limit(limit),
        None => http,
    }
}

fn run(mut args: RunArgs) -> Result<u8> {
    let config = options::engine_config(&mut args.guest.common, None)?;
    init_logging(
        &args.guest,
        || EnvFilter::from_env("WEIR_LOG"),
        std::io::stderr,
    );
    let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
    let mut program = load(&engine, &args)?;
    let network = NetworkSwitches::from_options(&args.guest.common.wasi);
    let policy = network_policy(&args.guest, &network)?;
    let wasi = build_wasi(&args, policy.clone())?;
    let stats = wasi.network_stats();
    let writers = wasi.tcp_background_writers();
    let http = http_ctx(&args.guest, policy);
    let mut store = new_store(&engine, &args.guest, wasi, http).map_err(anyhow::Error::from)?;
    let timeout = args.guest.common.wasm.timeout;
    if let Some(timeout) = timeout {
        // Wasm code traps at the next epoch check once the deadline passes; a guest waiting
        // in the host is stopped by the runtime timeout below.
        store.set_epoch_deadline(1);
        let engine = engine.clone();
        std::thread::spawn(move || {
            std::thread::sleep(timeout);
            engine.increment_epoch();
        });
    } else if args.guest.common.wasm.epoch_interruption == Some(true) {
        // Epoch checks without a timeout: nothing ever interrupts the guest.
        store.set_epoch_deadline(u64::MAX);
    }

    if let Program::Module(module, linker) = &mut program
        && args.guest.common.wasm.unknown_imports_default == Some(true)
    {
        // Unknown functions return zeros, unknown globals/tables/memories are default ones.
        linker
            .define_unknown_imports_as_default_values(&mut store, module)
            .map_err(anyhow::Error::from)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let run = async {
            match (&program, &args.invoke) {
                (Program::Component(component, linker), None)
                    if wasi_0_3_enabled(&args.guest) && weir::p3::is_command(component) =>
                {
                    weir::p3::run_async(&mut store, linker, component).await
                }
                (Program::Component(component, linker), None) => {
                    weir::command::run_async(&mut store, linker, component).await
                }
                (Program::Component(component, linker), Some(call)) => {
                    let call = invoke::call_component_export(&mut store, linker, component, call);
                    let printed = call.await.map_err(wasmtime::Error::from_anyhow);
                    weir::command::exit_outcome(printed.map(|line| {
                        weir::io::stdio::flush_stdio();
                        println!("{line}");
                    }))
                }
                (Program::Module(module, linker), invoke) => {
                    let call = invoke::run_core_module(
                        &mut store,
                        linker,
                        module,
                        invoke.as_deref(),
                        if invoke.is_some() { &args.args } else { &[] },
                    );
                    weir::command::exit_outcome(call.await.map(|lines| {
                        weir::io::stdio::flush_stdio();
                        for line in lines {
                            println!("{line}");
                        }
                    }))
                }
            }
        };
        let result = match timeout {
            None => run.await,
            Some(limit) => {
                let timed_out = || format!("timed out after {limit:?}");
                match tokio::time::timeout(limit, run).await {
                    // The guest waited in the host past the deadline.
                    Err(_) => {
                        Err(wasmtime::Error::from(wasmtime::Trap::Interrupt).context(timed_out()))
                    }
                    // Wasm code reached an epoch check past the deadline.
                    Ok(Err(error))
                        if error.downcast_ref::<wasmtime::Trap>()
                            == Some(&wasmtime::Trap::Interrupt) =>
                    {
                        Err(error.context(timed_out()))
                    }
                    Ok(other) => other,
                }
            }
        };
        // Bytes the guest wrote to TCP connections that the kernel had not taken yet are
        // still being delivered; shutting the runtime down would lose them. (`run_async`
        // waits already; `--invoke` calls and a timed-out run do not.)
        writers
            .deliver_within(weir::sockets::DEFAULT_TCP_DELIVERY_LIMIT)
            .await;
        result
    });
    if args.guest.stats {
        weir::io::stdio::flush_stdio();
        eprintln!("weir stats: {}", stats.summary());
    }
    match result {
        // Exit statuses are 0..=255 on Unix; wrap like a shell would.
        Ok(outcome) => Ok(outcome.exit_code() as u8),
        Err(error) => {
            let status = if error.downcast_ref::<wasmtime::Trap>().is_some() {
                TRAP_EXIT_STATUS
            } else {
                1
            };
            weir::io::stdio::flush_stdio();
            eprintln!("Error: failed to run `{}`", args.component.display());
            eprintln!("\nCaused by:");
            for (i, cause) in error.chain().enumerate() {
                eprintln!("{i:>4}: {cause}");
            }
            Ok(status)
        }
    }
}
