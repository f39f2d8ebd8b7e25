//! `weir-bench cache [RUNS] [FUNCTIONS]`: how much Wasmtime's compilation cache shortens the
//! start of a large preview1 module under the real `weir` binary.
//!
//! Generates a module of FUNCTIONS functions (default 29,000: about 5 MB), then per run:
//! empties a private cache directory, runs `weir run -C cache-config=FILE module` twice
//! (the first compiles and stores, the second loads from the cache) and once with
//! `-C cache=n`. Each figure is the child's wall time, process start to exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::arg;

pub(crate) fn bench(args: &[String]) -> Result<()> {
    let runs = arg(args, 0, 5)?;
    let functions = arg(args, 1, 29_000)?;
    let weir = weir_binary()?;
    let work = std::env::temp_dir().join(format!("weir-bench-cache-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let module = work.join("big.wasm");
    let bytes = wat::parse_str(big_module_wat(functions)).context("generating the module")?;
    std::fs::write(&module, &bytes)?;
    let cache_dir = work.join("cache");
    let config = work.join("cache.toml");
    std::fs::write(
        &config,
        format!(
            "[cache]\ndirectory = {:?}\n",
            cache_dir.display().to_string()
        ),
    )?;
    let cache_flag = format!("cache-config={}", config.display());
    let (mut cold, mut warm, mut uncached) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        if cache_dir.exists() {
            std::fs::remove_dir_all(&cache_dir)?;
        }
        cold.push(time_run(&weir, &["-C", &cache_flag], &module)?);
        warm.push(time_run(&weir, &["-C", &cache_flag], &module)?);
        uncached.push(time_run(&weir, &["-C", "cache=n"], &module)?);
    }
    let median = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };
    let (cold, warm, uncached) = (median(&mut cold), median(&mut warm), median(&mut uncached));
    println!(
        "cache: `weir run` of a {:.1} MB preview1 module ({functions} functions), median of {runs} runs",
        bytes.len() as f64 / 1e6
    );
    println!("| start | median ms | speed-up vs first start |");
    println!("|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| first (compiles, fills the cache) | {:.0} | 1.00x |",
        ms(cold)
    );
    println!(
        "| second (from the cache) | {:.0} | {:.2}x |",
        ms(warm),
        ms(cold) / ms(warm)
    );
    println!(
        "| `-C cache=n` | {:.0} | {:.2}x |",
        ms(uncached),
        ms(cold) / ms(uncached)
    );
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}

/// The `weir` binary built beside this one (`cargo build --release -p weir-cli`).
fn weir_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let weir = exe.with_file_name("weir");
    if !weir.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p weir-cli)",
            weir.display()
        );
    }
    Ok(weir)
}

fn time_run(weir: &Path, flags: &[&str], module: &Path) -> Result<Duration> {
    let start = Instant::now();
    let output = Command::new(weir)
        .arg("run")
        .args(flags)
        .arg(module)
        .stdin(Stdio::null())
        .output()?;
    let elapsed = start.elapsed();
    if !output.status.success() || output.stdout != b"ok\n" {
        bail!(
            "weir run failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(elapsed)
}

/// A preview1 command module: `_start` calls a chain of `functions` distinct functions
/// (so none is dead code) and prints "ok".
fn big_module_wat(functions: u64) -> String {
    let mut wat = String::from(
        "(module\n\
         (import \"wasi_snapshot_preview1\" \"fd_write\" (func $fd_write (param i32 i32 i32 i32) (result i32)))\n\
         (memory (export \"memory\") 1)\n\
         (data (i32.const 16) \"ok\\n\")\n",
    );
    for i in 0..functions {
        wat.push_str(&format!(
            "(func $f{i} (param i32) (result i32) local.get 0\n"
        ));
        // Arithmetic with distinct constants: enough code per function for ~5 MB in total.
        for k in 0..16u64 {
            let c = i.wrapping_mul(31).wrapping_add(k * 7919) % 100_000;
            wat.push_str(&format!(
                "i32.const {c} i32.add i32.const {} i32.xor\n",
                c ^ 0x5a5a
            ));
        }
        if i + 1 < functions {
            wat.push_str(&format!("call $f{})\n", i + 1));
        } else {
            wat.push_str(")\n");
        }
    }
    wat.push_str(
        "(func (export \"_start\")\n\
         (drop (call $f0 (i32.const 1)))\n\
         (i32.store (i32.const 0) (i32.const 16))\n\
         (i32.store (i32.const 4) (i32.const 3))\n\
         (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))\n\
         )\n",
    );
    wat
}
