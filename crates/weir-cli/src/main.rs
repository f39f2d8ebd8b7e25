//! `weir run`: runs a `wasi:cli/command` component, accepting `wasmtime run`'s flags.

mod options;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits};
use weir::sockets::NetworkPolicy;
use weir::{DirPerms, FilePerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use options::{DirSpec, WasiOptions, WasmOptions};

/// Exit status for a wasm trap, as `wasmtime run` reports it (128 + SIGABRT).
const TRAP_EXIT_STATUS: u8 = 134;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "A WASI 0.2 host for Wasmtime components"
)]
enum Cli {
    /// Run a WASI command component (`wasi:cli/command`).
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Grant access to a host directory, optionally under another guest path.
    #[arg(long = "dir", value_name = "HOST_DIR[::GUEST_DIR]")]
    dirs: Vec<String>,

    /// Like --dir, but the guest may only read.
    #[arg(long = "dir-ro", value_name = "HOST_DIR[::GUEST_DIR]")]
    dirs_read_only: Vec<String>,

    /// Set an environment variable for the guest; NAME alone passes the host's value.
    #[arg(long = "env", value_name = "NAME[=VAL]")]
    envs: Vec<String>,

    /// The guest's argv[0] (default: the component's path as given).
    #[arg(long)]
    argv0: Option<String>,

    /// WASI options, comma-separated (`-S inherit-env,max-resources=1000`).
    #[arg(short = 'S', value_name = "KEY[=VAL][,...]")]
    wasi: Vec<String>,

    /// WebAssembly options, comma-separated (`-W max-memory-size=1048576,fuel=100000`).
    #[arg(short = 'W', value_name = "KEY[=VAL][,...]")]
    wasm: Vec<String>,

    /// Allow a network use: `USES=CIDR[:PORTS]`, e.g. `udp-send=127.0.0.0/8:5000-5999`.
    #[arg(long = "allow", value_name = "USES=CIDR[:PORTS]")]
    allow: Vec<String>,

    /// Deny a network use (deny rules win over allow rules).
    #[arg(long = "deny", value_name = "USES=CIDR[:PORTS]")]
    deny: Vec<String>,

    /// Read network allow/deny rules from a TOML file.
    #[arg(long = "policy", value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Print the instance's network counters to stderr at exit.
    #[arg(long)]
    stats: bool,

    /// Call an exported function instead of `wasi:cli/run` (not supported yet).
    #[arg(long, value_name = "FUNCTION")]
    invoke: Option<String>,

    /// The component to run.
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

struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for Host {
    fn wasi(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("WEIR_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let Cli::Run(args) = Cli::parse();
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

fn build_wasi(args: &RunArgs, wasi_options: &WasiOptions) -> Result<WasiCtx> {
    let mut builder = WasiCtxBuilder::new();
    let argv0 = args
        .argv0
        .clone()
        .unwrap_or_else(|| args.component.display().to_string());
    builder.arg(argv0).args(args.args.iter().cloned());
    if wasi_options.inherit_env {
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
    if wasi_options.inherit_stdin {
        builder.inherit_stdin();
    }
    if wasi_options.inherit_stdout {
        builder.inherit_stdout();
    }
    if wasi_options.inherit_stderr {
        builder.inherit_stderr();
    }
    builder
        .network_policy(network_policy(args, wasi_options)?)
        .allow_udp(wasi_options.network.udp)
        .allow_tcp(wasi_options.network.tcp);
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
    Ok(builder.build())
}

/// The policy from `-S inherit-network`, `-S allow-ip-name-lookup`, `--allow`, `--deny` and
/// `--policy`.
fn network_policy(args: &RunArgs, wasi_options: &WasiOptions) -> Result<NetworkPolicy> {
    let mut policy = if wasi_options.network.inherit_network {
        NetworkPolicy::allow_all_sockets()
    } else {
        NetworkPolicy::deny_all()
    };
    if wasi_options.network.allow_ip_name_lookup {
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
    Ok(policy)
}

/// How long `weir run` keeps delivering bytes a guest wrote to TCP connections after the
/// guest returned.
const TCP_DELIVERY_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

fn run(args: RunArgs) -> Result<u8> {
    if let Some(function) = &args.invoke {
        anyhow::bail!(
            "--invoke {function}: invoking arbitrary exports is not supported yet; \
             weir runs `wasi:cli/run`"
        );
    }
    let wasi_options = WasiOptions::parse(&args.wasi)?;
    let wasm_options = WasmOptions::parse(&args.wasm)?;

    let mut config = Config::new();
    wasm_options.apply(&mut config);
    let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
    let component = Component::from_file(&engine, &args.component)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot load component `{}`", args.component.display()))?;

    let mut linker = Linker::<Host>::new(&engine);
    weir::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;

    let mut table = ResourceTable::new();
    if let Some(max) = wasi_options.max_resources {
        table.set_max_capacity(max);
    }
    let host = Host {
        wasi: build_wasi(&args, &wasi_options)?,
        table,
        limits: wasm_options.store_limits(),
    };
    let stats = host.wasi.network_stats();
    let mut store = Store::new(&engine, host);
    store.limiter(|host| &mut host.limits);
    if let Some(fuel) = wasm_options.hostcall_fuel.or(wasi_options.hostcall_fuel) {
        store.set_hostcall_fuel(fuel);
    }
    wasm_options.configure_store(&mut store)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let result = weir::command::run_async(&mut store, &linker, &component).await;
        // Bytes the guest wrote to TCP connections that the kernel had not taken yet are
        // still being delivered; shutting the runtime down would lose them.
        let delivery = weir::sockets::tcp::background_writes_done();
        if tokio::time::timeout(TCP_DELIVERY_LIMIT, delivery)
            .await
            .is_err()
        {
            tracing::warn!("gave up delivering unsent TCP bytes after {TCP_DELIVERY_LIMIT:?}");
        }
        result
    });
    if args.stats {
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
