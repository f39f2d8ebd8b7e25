//! Parsing of `wasmtime run`-style `-S`, `-W` and `--dir` options.

use anyhow::{Context, Result, bail};
use wasmtime::{Config, Store, StoreLimits, StoreLimitsBuilder};

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

/// Splits `a,b=1,c` into `(key, value)` pairs.
fn pairs<'a>(
    flag: &'a str,
    lists: &'a [String],
) -> impl Iterator<Item = (&'a str, &'a str, Option<&'a str>)> {
    lists
        .iter()
        .flat_map(|list| list.split(','))
        .filter(|item| !item.is_empty())
        .map(move |item| match item.split_once('=') {
            Some((key, value)) => (flag, key, Some(value)),
            None => (flag, item, None),
        })
}

fn boolean(flag: &str, key: &str, value: Option<&str>) -> Result<bool> {
    match value {
        None | Some("y" | "yes" | "true") => Ok(true),
        Some("n" | "no" | "false") => Ok(false),
        Some(other) => bail!("{flag} {key}={other}: expected y/yes/true or n/no/false"),
    }
}

fn number(flag: &str, key: &str, value: Option<&str>) -> Result<u64> {
    let value = value.with_context(|| format!("{flag} {key} needs a value: {key}=N"))?;
    value
        .replace('_', "")
        .parse()
        .with_context(|| format!("{flag} {key}={value}: not a non-negative integer"))
}

/// `-S` options.
pub struct WasiOptions {
    pub inherit_env: bool,
    pub inherit_stdin: bool,
    pub inherit_stdout: bool,
    pub inherit_stderr: bool,
    pub max_resources: Option<usize>,
    pub hostcall_fuel: Option<usize>,
    pub cwd: Option<String>,
    /// Networking switches, as in `wasmtime run`.
    pub network: NetworkSwitches,
}

/// `-S inherit-network` allows every address (without it, only `--allow` rules do);
/// `-S udp=n` / `-S tcp=n` turn a protocol off entirely (both on by default, as in wasmtime).
#[derive(Debug)]
pub struct NetworkSwitches {
    pub inherit_network: bool,
    pub tcp: bool,
    pub udp: bool,
    pub allow_ip_name_lookup: bool,
}

impl Default for NetworkSwitches {
    fn default() -> Self {
        NetworkSwitches {
            inherit_network: false,
            tcp: true,
            udp: true,
            allow_ip_name_lookup: false,
        }
    }
}

const WASI_KEYS: &str = "cli, inherit-env, inherit-stdin, inherit-stdout, inherit-stderr, \
    cli-exit-with-code, max-resources, hostcall-fuel, cwd, inherit-network, tcp, udp, \
    allow-ip-name-lookup, preview2";

impl WasiOptions {
    pub fn parse(lists: &[String]) -> Result<Self> {
        let mut options = WasiOptions {
            inherit_env: false,
            inherit_stdin: true,
            inherit_stdout: true,
            inherit_stderr: true,
            max_resources: None,
            hostcall_fuel: None,
            cwd: None,
            network: NetworkSwitches::default(),
        };
        for (flag, key, value) in pairs("-S", lists) {
            match key {
                "inherit-env" => options.inherit_env = boolean(flag, key, value)?,
                "inherit-stdin" => options.inherit_stdin = boolean(flag, key, value)?,
                "inherit-stdout" => options.inherit_stdout = boolean(flag, key, value)?,
                "inherit-stderr" => options.inherit_stderr = boolean(flag, key, value)?,
                "max-resources" => options.max_resources = Some(number(flag, key, value)? as usize),
                "hostcall-fuel" => options.hostcall_fuel = Some(number(flag, key, value)? as usize),
                "cwd" => {
                    let dir =
                        value.with_context(|| format!("{flag} cwd needs a value: cwd=DIR"))?;
                    options.cwd = Some(dir.to_string());
                }
                "inherit-network" => options.network.inherit_network = boolean(flag, key, value)?,
                "tcp" => options.network.tcp = boolean(flag, key, value)?,
                "udp" => options.network.udp = boolean(flag, key, value)?,
                "allow-ip-name-lookup" => {
                    options.network.allow_ip_name_lookup = boolean(flag, key, value)?
                }
                // Always on in Weir: `cli` (the command world), `preview2` (WASI 0.2), and
                // `exit-with-code` (stable since WASI 0.2.12).
                "cli" | "preview2" | "cli-exit-with-code" => {
                    if !boolean(flag, key, value)? {
                        bail!("{flag} {key}=n: Weir always provides this; it cannot be turned off");
                    }
                }
                "http" | "nn" | "threads" | "config" | "keyvalue" | "listenfd" | "tcplisten"
                | "preview0" | "common" => {
                    bail!("{flag} {key}: not supported by weir (supported: {WASI_KEYS})")
                }
                other => bail!("{flag} {other}: unknown WASI option (supported: {WASI_KEYS})"),
            }
        }
        Ok(options)
    }
}

/// `-W` options.
#[derive(Default)]
pub struct WasmOptions {
    max_memory_size: Option<usize>,
    max_table_elements: Option<usize>,
    max_instances: Option<usize>,
    max_wasm_stack: Option<usize>,
    fuel: Option<u64>,
    pub hostcall_fuel: Option<usize>,
}

const WASM_KEYS: &str =
    "max-memory-size, max-table-elements, max-instances, max-wasm-stack, fuel, hostcall-fuel";

impl WasmOptions {
    pub fn parse(lists: &[String]) -> Result<Self> {
        let mut options = WasmOptions::default();
        for (flag, key, value) in pairs("-W", lists) {
            match key {
                "max-memory-size" => {
                    options.max_memory_size = Some(number(flag, key, value)? as usize)
                }
                "max-table-elements" => {
                    options.max_table_elements = Some(number(flag, key, value)? as usize)
                }
                "max-instances" => options.max_instances = Some(number(flag, key, value)? as usize),
                "max-wasm-stack" => {
                    options.max_wasm_stack = Some(number(flag, key, value)? as usize)
                }
                "fuel" => options.fuel = Some(number(flag, key, value)?),
                "hostcall-fuel" => options.hostcall_fuel = Some(number(flag, key, value)? as usize),
                other => {
                    bail!("{flag} {other}: unsupported WebAssembly option (supported: {WASM_KEYS})")
                }
            }
        }
        Ok(options)
    }

    pub fn apply(&self, config: &mut Config) {
        if let Some(size) = self.max_wasm_stack {
            config.max_wasm_stack(size);
        }
        if self.fuel.is_some() {
            config.consume_fuel(true);
        }
    }

    pub fn store_limits(&self) -> StoreLimits {
        let mut limits = StoreLimitsBuilder::new();
        if let Some(size) = self.max_memory_size {
            limits = limits.memory_size(size);
        }
        if let Some(n) = self.max_table_elements {
            limits = limits.table_elements(n);
        }
        if let Some(n) = self.max_instances {
            limits = limits.instances(n);
        }
        limits.build()
    }

    pub fn configure_store<T>(&self, store: &mut Store<T>) -> Result<()> {
        if let Some(fuel) = self.fuel {
            store.set_fuel(fuel).map_err(anyhow::Error::from)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn wasi_options_parse_comma_lists_and_booleans() {
        let o = WasiOptions::parse(&list(&["inherit-env,max-resources=10", "inherit-stdin=n"]))
            .unwrap();
        assert!(o.inherit_env);
        assert!(!o.inherit_stdin);
        assert!(o.inherit_stdout);
        assert_eq!(o.max_resources, Some(10));
        let o =
            WasiOptions::parse(&list(&["inherit-network,udp,tcp=n,allow-ip-name-lookup"])).unwrap();
        assert!(o.network.inherit_network && o.network.udp && !o.network.tcp);
        assert!(o.network.allow_ip_name_lookup);
    }

    #[test]
    fn unknown_options_are_clear_errors() {
        let e = WasiOptions::parse(&list(&["frobnicate"]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("-S frobnicate") && e.contains("unknown"), "{e}");
        let e = WasmOptions::parse(&list(&["simd=n"]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("-W simd") && e.contains("unsupported"), "{e}");
        let e = WasiOptions::parse(&list(&["max-resources=lots"]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("max-resources=lots"), "{e}");
        let e = WasiOptions::parse(&list(&["inherit-env=maybe"]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("inherit-env=maybe"), "{e}");
    }

    #[test]
    fn dir_spec_splits_host_and_guest() {
        let d = DirSpec::parse("/tmp/x::/data");
        assert_eq!((d.host.as_str(), d.guest.as_str()), ("/tmp/x", "/data"));
        let d = DirSpec::parse("/tmp/x");
        assert_eq!((d.host.as_str(), d.guest.as_str()), ("/tmp/x", "/tmp/x"));
    }
}
