//! `wasmtime run`'s `-O`/`-C`/`-D`/`-W`/`-S`/`-R` options and `--config FILE`.
//!
//! They are parsed by Wasmtime's own `wasmtime-cli-flags` crate, so every key, its value
//! syntax, `-W help` and the TOML config file behave exactly as in `wasmtime run` 48. Engine
//! settings (`-O`, `-C`, `-D`, most of `-W`) go to Wasmtime's `Config` as wasmtime applies
//! them; store limits and WASI settings are applied here. A key that weir cannot honour is
//! refused with an error naming the key and the reason, never silently ignored (the README's
//! flag table lists every key).

use anyhow::{Result, bail};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_cli_flags::{CommonOptions, DebugOptions, WasiOptions, WasmOptions};

/// `HOST_DIR[::GUEST_DIR]`.
pub struct DirSpec {
    pub host: String,
    pub guest: String,
}

impl DirSpec {
    pub fn parse(spec: &str) -> Self {
        match spec.split_once("::") {
            Some((host, guest)) => DirSpec {
                host: host.to_string(),
                guest: guest.to_string(),
            },
            None => DirSpec {
                host: spec.to_string(),
                guest: spec.to_string(),
            },
        }
    }
}

/// The engine configuration: wasmtime's, from the options, plus what weir needs (epoch
/// interruption for `-W timeout`). `pooling_default` is whether the pooling allocator is
/// on when `-O pooling-allocator` is not given (`serve` turns it on, as wasmtime does).
pub fn engine_config(
    common: &mut CommonOptions,
    pooling_default: Option<bool>,
) -> Result<wasmtime::Config> {
    let mut config = common.config(pooling_default)?;
    if common.wasm.timeout.is_some() {
        config.epoch_interruption(true);
    }
    refuse_unsupported(common)?;
    Ok(config)
}

/// Refuses the keys weir does not implement, each with the reason.
fn refuse_unsupported(common: &CommonOptions) -> Result<()> {
    refuse_debug(&common.debug)?;
    refuse_wasi(&common.wasi)
}

fn refuse(flag: &str, key: &str, why: &str) -> Result<()> {
    bail!("{flag} {key}: not supported by weir: {why}")
}

fn refuse_debug(debug: &DebugOptions) -> Result<()> {
    if debug.log_to_files == Some(true) {
        refuse(
            "-D",
            "log-to-files",
            "weir logs to stderr (filtered by the WEIR_LOG variable)",
        )?;
    }
    if debug.debugger.is_some() || !debug.arg.is_empty() {
        refuse(
            "-D",
            "debugger",
            "attaching a debugger component is not provided",
        )?;
    }
    let debugger_stdio = [
        ("inherit-stdin", debug.inherit_stdin),
        ("inherit-stdout", debug.inherit_stdout),
        ("inherit-stderr", debug.inherit_stderr),
    ];
    for (key, value) in debugger_stdio {
        if value.is_some() {
            refuse(
                "-D",
                key,
                "it configures a debugger component, which is not provided",
            )?;
        }
    }
    Ok(())
}

fn refuse_wasi(wasi: &WasiOptions) -> Result<()> {
    for (key, value) in [("cli", wasi.cli), ("common", wasi.common)] {
        if value == Some(false) {
            refuse(
                "-S",
                &format!("{key}=n"),
                "weir runs WASI programs; their CLI interfaces are always provided",
            )?;
        }
    }
    if wasi.cli.is_some() && wasi.common.is_some() {
        // As in wasmtime: `common` is a deprecated alias of `cli`, not to be given with it.
        bail!("-S cli and -S common: give one of them (`common` is a deprecated alias of `cli`)");
    }
    let not_provided = [
        ("nn", wasi.nn == Some(true), "wasi-nn"),
        ("nn-graph", !wasi.nn_graph.is_empty(), "wasi-nn"),
        ("threads", wasi.threads == Some(true), "wasi-threads"),
        ("config", wasi.config == Some(true), "wasi:config"),
        ("config-var", !wasi.config_var.is_empty(), "wasi:config"),
        ("keyvalue", wasi.keyvalue == Some(true), "wasi:keyvalue"),
        (
            "keyvalue-in-memory-data",
            !wasi.keyvalue_in_memory_data.is_empty(),
            "wasi:keyvalue",
        ),
        ("tls", wasi.tls == Some(true), "wasi:tls"),
    ];
    for (key, given, interface) in not_provided {
        if given {
            refuse("-S", key, &format!("{interface} is not provided"))?;
        }
    }
    if wasi.listenfd == Some(true) || !wasi.tcplisten.is_empty() {
        let key = if wasi.listenfd == Some(true) {
            "listenfd"
        } else {
            "tcplisten"
        };
        refuse(
            "-S",
            key,
            "it belongs to wasmtime's legacy preview1 implementation, which weir does not have",
        )?;
    }
    Ok(())
}

/// The store limits from `-W max-memory-size`, `max-table-elements`, `max-instances`,
/// `max-tables`, `max-memories` and `trap-on-grow-failure`, as in wasmtime.
pub fn store_limits(wasm: &WasmOptions) -> StoreLimits {
    let mut limits = StoreLimitsBuilder::new();
    if let Some(max) = wasm.max_memory_size {
        limits = limits.memory_size(max);
    }
    if let Some(max) = wasm.max_table_elements {
        limits = limits.table_elements(max);
    }
    if let Some(max) = wasm.max_instances {
        limits = limits.instances(max);
    }
    if let Some(max) = wasm.max_tables {
        limits = limits.tables(max);
    }
    if let Some(max) = wasm.max_memories {
        limits = limits.memories(max);
    }
    if let Some(trap) = wasm.trap_on_grow_failure {
        limits = limits.trap_on_grow_failure(trap);
    }
    limits.build()
}

/// Networking switches from `-S`, as in `wasmtime run`: `inherit-network` allows every
/// socket address (without it, only `--allow` rules do); `udp=n` / `tcp=n` turn a protocol
/// off entirely (both on by default); `allow-ip-name-lookup` enables lookups of any name.
#[derive(Debug, PartialEq, Eq)]
pub struct NetworkSwitches {
    pub inherit_network: bool,
    pub tcp: bool,
    pub udp: bool,
    pub allow_ip_name_lookup: bool,
}

impl NetworkSwitches {
    pub fn from_options(wasi: &WasiOptions) -> Self {
        NetworkSwitches {
            inherit_network: wasi.inherit_network.unwrap_or(false),
            tcp: wasi.tcp.unwrap_or(true),
            udp: wasi.udp.unwrap_or(true),
            allow_ip_name_lookup: wasi.allow_ip_name_lookup.unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        common: CommonOptions,
    }

    fn configured(args: &[&str]) -> Result<CommonOptions> {
        let mut argv = vec!["probe"];
        argv.extend_from_slice(args);
        let mut common = Probe::try_parse_from(argv)?.common;
        engine_config(&mut common, None)?;
        Ok(common)
    }

    fn refused(args: &[&str]) -> String {
        match configured(args) {
            Ok(_) => panic!("{args:?} was accepted"),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn wasmtime_keys_parse_with_wasmtimes_syntax() {
        let common = configured(&[
            "-S",
            "inherit-env,max-resources=10,inherit-stdin=n",
            "-S",
            "inherit-network,udp,tcp=n,allow-ip-name-lookup",
            "-W",
            "component-model,component-model-async=y,max-memory-size=0x10000,timeout=250ms",
            "-S",
            "p3,max-random-size=1_000,max-http-fields-size=4096,network-error-code,preview2,cli",
            "-O",
            "opt-level=s,memory-reservation=1048576",
            "-C",
            "cache=n,parallel-compilation=n",
            "-D",
            "debug-info=n,address-map=y",
        ])
        .unwrap();
        assert_eq!(common.wasi.inherit_env, Some(true));
        assert_eq!(common.wasi.inherit_stdin, Some(false));
        assert_eq!(common.wasi.max_resources, Some(10));
        assert_eq!(common.wasi.max_random_size, Some(1000));
        assert_eq!(common.wasm.max_memory_size, Some(0x10000));
        assert_eq!(
            common.wasm.timeout,
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(
            NetworkSwitches::from_options(&common.wasi),
            NetworkSwitches {
                inherit_network: true,
                udp: true,
                tcp: false,
                allow_ip_name_lookup: true
            }
        );
    }

    #[test]
    fn defaults_match_wasmtime_run() {
        let common = configured(&[]).unwrap();
        assert_eq!(
            NetworkSwitches::from_options(&common.wasi),
            NetworkSwitches {
                inherit_network: false,
                udp: true,
                tcp: true,
                allow_ip_name_lookup: false
            }
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = refused(&["-S", "frobnicate"]);
        assert!(e.contains("unknown -S / --wasi option: frobnicate"), "{e}");
        let e = refused(&["-W", "max-memory-size=big"]);
        assert!(e.contains("max-memory-size=big"), "{e}");
        let e = refused(&["-S", "inherit-env=maybe"]);
        assert!(e.contains("inherit-env=maybe"), "{e}");
    }

    #[test]
    fn keys_weir_cannot_honour_are_refused_with_the_reason() {
        for (args, needle) in [
            (&["-S", "nn"][..], "-S nn: not supported by weir: wasi-nn"),
            (&["-S", "threads"], "-S threads: not supported by weir"),
            (&["-S", "config"], "-S config: not supported by weir"),
            (&["-S", "keyvalue"], "-S keyvalue: not supported by weir"),
            (&["-S", "tls"], "-S tls: not supported by weir"),
            (
                &["-S", "listenfd"],
                "-S listenfd: not supported by weir: it belongs",
            ),
            (
                &["-S", "tcplisten=127.0.0.1:1"],
                "-S tcplisten: not supported by weir",
            ),
            (&["-S", "cli=n"], "-S cli=n: not supported by weir"),
            (&["-S", "common=n"], "-S common=n: not supported by weir"),
            (&["-S", "cli,common"], "give one of them"),
            (
                &["-D", "log-to-files"],
                "-D log-to-files: not supported by weir",
            ),
            (
                &["-D", "debugger=dbg.wasm"],
                "-D debugger: not supported by weir",
            ),
            (
                &["-D", "inherit-stdout"],
                "-D inherit-stdout: not supported by weir",
            ),
            // Engine features this build leaves out: wasmtime's own compile-time message.
            (&["-W", "stack-switching"], "stack-switching"),
            (&["-D", "coredump=core.dump"], "coredump"),
        ] {
            let e = refused(args);
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }
}
