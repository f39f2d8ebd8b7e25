//! A WASI 0.3 command for the tests: `p3_probe ACTION [ARG]`.
//!
//! - `env`: prints its arguments, environment and initial cwd.
//! - `exit N`: `exit-with-code(N)`; `exit-ok`: `exit(ok)`; `fail`: `run` returns `err`.
//! - `cat`: copies stdin to stdout through `read-via-stream`/`write-via-stream`, 64 KiB
//!   reads, then prints both futures' results to stderr.
//! - `random N`: prints the lengths `get-random-bytes(N)` and `get-insecure-random-bytes(N)`
//!   returned.
//! - `sleep MS`: `wait-for(MS)`, then prints how long it took.
//! - `cancel-sleep`: races `wait-for(10 s)` against `wait-for(20 ms)`, drops (cancels) the
//!   long one, prints how long it took.
//! - `drop-halfway`: writes to a stdout stream, then drops the writer and the result future
//!   without waiting for either, and returns.
//! - `flood N`: writes N bytes (the flood pattern, `i % 251`) to stdout, then prints the
//!   future's result to stderr.

use std::future::Future;
use std::task::Poll;

use wasip3::cli::{environment, exit, stderr, stdin, stdout};
use wasip3::clocks::monotonic_clock;
use wasip3::random::{insecure, random};
use wasip3::wit_stream;
use wasip3::wit_bindgen::StreamResult;

struct Probe;

/// Writes `bytes` to a new stdout (or stderr) stream and waits for its result: how many
/// bytes the stream did not take, and the future's result.
async fn write_reporting(to_stderr: bool, bytes: Vec<u8>) -> (usize, Result<(), stdout::ErrorCode>) {
    let (mut writer, reader) = wit_stream::new();
    let done = if to_stderr {
        stderr::write_via_stream(reader)
    } else {
        stdout::write_via_stream(reader)
    };
    let unwritten = writer.write_all(bytes).await;
    drop(writer);
    (unwritten.len(), done.await)
}

async fn write(to_stderr: bool, bytes: Vec<u8>) -> Result<(), ()> {
    match write_reporting(to_stderr, bytes).await {
        (0, Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn say(text: String) -> Result<(), ()> {
    write(false, text.into_bytes()).await
}

fn arg(args: &[String], at: usize) -> u64 {
    args.get(at).and_then(|a| a.parse().ok()).unwrap_or(0)
}

async fn cat() -> Result<(), ()> {
    let (mut input, input_done) = stdin::read_via_stream();
    let (mut writer, reader) = wit_stream::new();
    let output_done = stdout::write_via_stream(reader);
    let mut copied = 0u64;
    loop {
        let (status, chunk) = input.read(Vec::with_capacity(64 * 1024)).await;
        if !chunk.is_empty() {
            copied += chunk.len() as u64;
            if !writer.write_all(chunk).await.is_empty() {
                break;
            }
        }
        match status {
            StreamResult::Complete(_) => {}
            StreamResult::Dropped | StreamResult::Cancelled => break,
        }
    }
    drop(input);
    drop(writer);
    let input_result = input_done.await;
    let output_result = output_done.await;
    let report = format!("copied {copied}; stdin {input_result:?}; stdout {output_result:?}\n");
    write(true, report.into_bytes()).await
}

impl wasip3::exports::cli::run::Guest for Probe {
    async fn run() -> Result<(), ()> {
        let args = environment::get_arguments();
        match args.get(1).map(String::as_str).unwrap_or("") {
            "env" => {
                let mut text = format!("args: {}\n", args.join(" "));
                for (name, value) in environment::get_environment() {
                    text += &format!("env: {name}={value}\n");
                }
                text += &format!("cwd: {:?}\n", environment::get_initial_cwd());
                say(text).await
            }
            "exit" => {
                exit::exit_with_code(arg(&args, 2) as u8);
                Err(())
            }
            "exit-ok" => {
                exit::exit(Ok(()));
                Err(())
            }
            "fail" => Err(()),
            "cat" => cat().await,
            "random" => {
                let n = arg(&args, 2);
                let secure = random::get_random_bytes(n).len();
                let weak = insecure::get_insecure_random_bytes(n).len();
                say(format!("random {secure} insecure {weak}\n")).await
            }
            "sleep" => {
                let start = monotonic_clock::now();
                monotonic_clock::wait_for(arg(&args, 2) * 1_000_000).await;
                let took = (monotonic_clock::now() - start) / 1_000_000;
                say(format!("slept {took} ms\n")).await
            }
            "cancel-sleep" => {
                let start = monotonic_clock::now();
                let mut long = Box::pin(monotonic_clock::wait_for(10_000_000_000));
                let mut short = Box::pin(monotonic_clock::wait_for(20_000_000));
                let short_won = std::future::poll_fn(|cx| {
                    if long.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(false);
                    }
                    short.as_mut().poll(cx).map(|()| true)
                })
                .await;
                drop(long);
                let took = (monotonic_clock::now() - start) / 1_000_000;
                say(format!("short won: {short_won} after {took} ms\n")).await
            }
            "drop-halfway" => {
                let (mut writer, reader) = wit_stream::new();
                let done = stdout::write_via_stream(reader);
                let unwritten = writer.write_all(b"written before the drop\n".to_vec()).await;
                drop(done);
                drop(writer);
                if unwritten.is_empty() { Ok(()) } else { Err(()) }
            }
            "flood" => {
                let n = arg(&args, 2) as usize;
                let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                let (unwritten, result) = write_reporting(false, bytes).await;
                let report = format!("flood: {unwritten} bytes not taken, {result:?}\n");
                write(true, report.into_bytes()).await
            }
            other => {
                let _ = write(true, format!("p3_probe: unknown action {other:?}\n").into_bytes()).await;
                Err(())
            }
        }
    }
}

wasip3::cli::command::export!(Probe);
