//! `weir-bench p1 [RUNS] [WRITE_BYTES] [SMALL_WRITES] [READ_BYTES]`: the same preview1 core
//! module (`p1_io`, no adapter) under Weir's preview1 (`weir::p1`) and under wasmtime-wasi
//! 48's (`wasmtime_wasi::p1`), plus native Rust doing the same calls:
//! - WRITE_BYTES (default 1 GiB) to stdout in 64 KiB `fd_write`s;
//! - SMALL_WRITES (default 10^6) `fd_write`s of 16 bytes to stdout;
//! - reading a READ_BYTES file (default 256 MiB) in 64 KiB `fd_read`s.
//!
//! Each run is a child process (stdout a 1 MiB pipe the parent drains and counts); the child
//! times from just before instantiation to the end of the run (compilation excluded, the
//! same for both hosts). Prints, per workload, the median and best time and the ratios of
//! speed (time of the other / time of this host).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use wasmtime::{Engine, Linker, Module, Store};

use crate::{HOSTS, arg, time_child};

const CHUNK: u64 = 64 << 10;
const SMALL: u64 = 16;
const GUEST_DIR: &str = "/data";
const FILE_NAME: &str = "input.bin";

struct Workload {
    name: &'static str,
    /// `p1_io` mode and the total and chunk it is given.
    mode: &'static str,
    total: u64,
    chunk: u64,
}

pub(crate) fn bench(args: &[String]) -> Result<()> {
    let runs = arg(args, 0, 5)?;
    let write_bytes = arg(args, 1, 1 << 30)?;
    let small_writes = arg(args, 2, 1_000_000)?;
    let read_bytes = arg(args, 3, 256 << 20)?;
    guest_module_bytes()?; // a missing guest fails before any timing
    let dir = tempfile_dir()?;
    write_input(&dir.join(FILE_NAME), read_bytes)?;
    let workloads = [
        Workload {
            name: "stdout, 64 KiB fd_writes",
            mode: "write",
            total: write_bytes,
            chunk: CHUNK,
        },
        Workload {
            name: "stdout, 16 B fd_writes",
            mode: "write",
            total: small_writes * SMALL,
            chunk: SMALL,
        },
        Workload {
            name: "file, 64 KiB fd_reads",
            mode: "read",
            total: read_bytes,
            chunk: CHUNK,
        },
    ];
    let exe = std::env::current_exe()?;
    println!(
        "preview1: {runs} runs per host, hosts interleaved; speed ratio = other host's time / this host's time"
    );
    for workload in &workloads {
        let mut samples: Vec<Vec<u64>> = HOSTS.iter().map(|_| Vec::new()).collect();
        let mut expected_output: Option<Vec<u8>> = None;
        for _ in 0..runs {
            for (host, host_samples) in HOSTS.iter().zip(samples.iter_mut()) {
                let child_args = [
                    "child-p1".to_string(),
                    host.to_string(),
                    workload.mode.to_string(),
                    workload.total.to_string(),
                    workload.chunk.to_string(),
                    dir.display().to_string(),
                ];
                let run = time_child(&exe, &child_args, host)?;
                if workload.mode == "write" && run.received != workload.total {
                    bail!(
                        "{host}: {} of {} bytes received",
                        run.received,
                        workload.total
                    );
                }
                // Every host must print the same count and checksum for the read.
                match &expected_output {
                    Some(expected) if *expected != run.head => bail!(
                        "{host} printed {:?}, another host {:?}",
                        String::from_utf8_lossy(&run.head),
                        String::from_utf8_lossy(expected)
                    ),
                    Some(_) => {}
                    None if workload.mode == "read" => expected_output = Some(run.head),
                    None => {}
                }
                host_samples.push(run.elapsed_ns);
            }
        }
        print_table(workload, runs, &samples);
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

fn print_table(workload: &Workload, runs: u64, samples: &[Vec<u64>]) {
    let stat = |samples: &[u64]| {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        (sorted[0] as f64, sorted[sorted.len() / 2] as f64)
    };
    let (native_best, native_median) = stat(&samples[0]);
    let (wasi_best, wasi_median) = stat(&samples[1]);
    println!();
    println!(
        "{}: {} MiB in {}-byte calls, {runs} runs",
        workload.name,
        workload.total >> 20,
        workload.chunk
    );
    println!(
        "| host | median ms | best ms | median speed vs wasmtime-wasi | median speed vs native | best speed vs wasmtime-wasi | best speed vs native |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (host, host_samples) in HOSTS.iter().zip(samples) {
        let (best, median) = stat(host_samples);
        println!(
            "| {host} | {:.1} | {:.1} | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            median / 1e6,
            best / 1e6,
            wasi_median / median,
            native_median / median,
            wasi_best / best,
            native_best / best
        );
    }
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("weir-bench-p1-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn write_input(path: &Path, len: u64) -> Result<()> {
    let block: Vec<u8> = (0..1u32 << 20).map(|i| (i % 253) as u8).collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut written = 0u64;
    while written < len {
        let n = (block.len() as u64).min(len - written) as usize;
        file.write_all(&block[..n])?;
        written += n as u64;
    }
    file.flush()?;
    Ok(())
}

fn guest_module_bytes() -> Result<Vec<u8>> {
    let path = weir_test_guests::rust_guest_dir().join("p1_io.wasm");
    std::fs::read(&path).with_context(|| {
        format!(
            "guest `p1_io` is not built ({}): run scripts/build-guests.sh",
            path.display()
        )
    })
}

/// `child-p1 HOST MODE TOTAL CHUNK DIR`: one timed run, reported as `elapsed_ns=` on stderr.
pub(crate) fn child(args: &[String]) -> Result<()> {
    let [host, mode, total, chunk, dir] = args else {
        bail!("child-p1 HOST MODE TOTAL CHUNK DIR");
    };
    let total: u64 = total.parse()?;
    let chunk: u64 = chunk.parse()?;
    let dir = Path::new(dir);
    let guest_path = format!("{GUEST_DIR}/{FILE_NAME}");
    let guest_args: Vec<String> = match mode.as_str() {
        "write" => vec![
            "p1_io".into(),
            "write".into(),
            total.to_string(),
            chunk.to_string(),
        ],
        "read" => vec!["p1_io".into(), "read".into(), guest_path, chunk.to_string()],
        other => bail!("unknown mode `{other}`"),
    };
    let elapsed = match host.as_str() {
        "native" => native(mode, total, chunk as usize, &dir.join(FILE_NAME))?,
        "weir" | "wasmtime-wasi" => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let engine = Engine::default();
            let module =
                Module::new(&engine, guest_module_bytes()?).map_err(anyhow::Error::from)?;
            if host == "weir" {
                runtime.block_on(weir(&engine, &module, guest_args, dir))?
            } else {
                runtime.block_on(wasmtime_wasi_p1(&engine, &module, guest_args, dir))?
            }
        }
        other => bail!("unknown host `{other}`"),
    };
    eprintln!("elapsed_ns={}", elapsed.as_nanos());
    Ok(())
}

async fn weir(
    engine: &Engine,
    module: &Module,
    args: Vec<String>,
    dir: &Path,
) -> Result<std::time::Duration> {
    let mut linker = Linker::new(engine);
    weir::p1::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    let wasi = weir::WasiCtxBuilder::new()
        .inherit_stdio()
        .args(args)
        .preopened_dir(
            dir,
            GUEST_DIR,
            weir::DirPerms::all(),
            weir::FilePerms::all(),
        )?
        .build();
    let host = crate::WeirHost {
        wasi,
        table: wasmtime::component::ResourceTable::new(),
    };
    let mut store = Store::new(engine, host);
    let start = Instant::now();
    let outcome = weir::command::run_module_async(&mut store, &linker, module)
        .await
        .map_err(anyhow::Error::from)?;
    weir::io::stdio::flush_stdio();
    let elapsed = start.elapsed();
    if outcome != weir::command::Outcome::Success {
        bail!("guest failed: {outcome:?}");
    }
    Ok(elapsed)
}

async fn wasmtime_wasi_p1(
    engine: &Engine,
    module: &Module,
    args: Vec<String>,
    dir: &Path,
) -> Result<std::time::Duration> {
    let mut linker: Linker<wasmtime_wasi::p1::WasiP1Ctx> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |ctx| ctx).map_err(anyhow::Error::from)?;
    let wasi = wasmtime_wasi::WasiCtx::builder()
        .inherit_stdio()
        .args(&args)
        .preopened_dir(dir, GUEST_DIR, wasmtime_wasi::FsPerms::ReadWrite)
        .map_err(anyhow::Error::from)?
        .build_p1();
    let mut store = Store::new(engine, wasi);
    let start = Instant::now();
    let instance = linker
        .instantiate_async(&mut store, module)
        .await
        .map_err(anyhow::Error::from)?;
    let run = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .map_err(anyhow::Error::from)?;
    run.call_async(&mut store, ())
        .await
        .map_err(anyhow::Error::from)?;
    std::io::stdout().flush()?;
    Ok(start.elapsed())
}

/// The same calls from native Rust: unbuffered writes to fd 1, or reads of the file.
fn native(mode: &str, total: u64, chunk: usize, file: &Path) -> Result<std::time::Duration> {
    let start = Instant::now();
    if mode == "write" {
        crate::native_stdout_writes(total, chunk)?;
    } else {
        let mut input = std::fs::File::open(file)?;
        let mut buffer = vec![0u8; chunk];
        let (mut count, mut sum) = (0u64, 0u64);
        loop {
            match input.read(&mut buffer)? {
                0 => break,
                n => {
                    count += n as u64;
                    sum = buffer[..n]
                        .iter()
                        .step_by(4096)
                        .fold(sum, |s, &b| s + b as u64);
                }
            }
        }
        println!("{count} {sum}");
        std::io::stdout().flush()?;
    }
    Ok(start.elapsed())
}
