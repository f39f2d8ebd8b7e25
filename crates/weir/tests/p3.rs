//! WASI 0.3 through the embedding API: `weir::p3::add_to_linker_async` beside the 0.2
//! linker, one `WasiCtx`, the embedder's own stdio pipes.

mod common;

use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceTable};
use weir::command::Outcome;
use weir::io::{ClosedOutputStream, MemoryInputPipe, MemoryOutputPipe};
use weir::{WasiCtx, WasiCtxBuilder};

use common::Host;

fn run_probe(wasi: WasiCtx) -> wasmtime::Result<Outcome> {
    let bytes = weir_test_guests::p3_guest("probe").expect("the guest is built");
    let engine = common::engine();
    let component = Component::new(engine, &**bytes)?;
    assert!(weir::p3::is_command(&component));
    let mut linker = Linker::new(engine);
    // The preview1 adapter inside the guest imports 0.2; the program imports 0.3.
    weir::add_to_linker_async(&mut linker)?;
    weir::p3::add_to_linker_async(&mut linker)?;
    let mut store = Store::new(engine, Host::new(wasi, ResourceTable::new()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(weir::p3::run_async(&mut store, &linker, &component))
}

#[test]
fn an_embedder_runs_a_wasi_0_3_command_with_its_own_pipes() {
    let input: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    let stdout = MemoryOutputPipe::new(8 << 20);
    let stderr = MemoryOutputPipe::new(1 << 16);
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(["probe", "cat"])
        .stdin(MemoryInputPipe::new(input.clone()))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    let outcome = run_probe(wasi.build()).expect("the command runs");
    assert_eq!(outcome, Outcome::Success, "{:?}", stderr.contents());
    assert_eq!(&stdout.contents()[..], &input[..]);
    assert_eq!(
        String::from_utf8_lossy(&stderr.contents()),
        format!("copied {}; stdin Ok(()); stdout Ok(())\n", input.len())
    );
}

#[test]
fn a_closed_stdout_is_the_pipe_error_for_a_0_3_writer() {
    let stderr = MemoryOutputPipe::new(1 << 16);
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(["probe", "flood", "100000"])
        .stdout(ClosedOutputStream)
        .stderr(stderr.clone());
    let outcome = run_probe(wasi.build()).expect("the command runs");
    assert_eq!(outcome, Outcome::Success);
    assert_eq!(
        String::from_utf8_lossy(&stderr.contents()),
        "flood: 100000 bytes not taken, Err(ErrorCode::Pipe)\n"
    );
}

/// Runs the probe with `args`, sockets allowed, at most `max_tcp_sockets` TCP sockets;
/// returns its stdout.
fn run_tcp_probe(max_tcp_sockets: usize, args: &[&str]) -> String {
    let stdout = MemoryOutputPipe::new(1 << 16);
    let stderr = MemoryOutputPipe::new(1 << 16);
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(args.iter().copied())
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .network_policy(weir::sockets::NetworkPolicy::allow_all_sockets())
        .max_tcp_sockets(max_tcp_sockets);
    let outcome = run_probe(wasi.build()).expect("the command runs");
    assert_eq!(outcome, Outcome::Success, "{:?}", stderr.contents());
    String::from_utf8_lossy(&stdout.contents()).into_owned()
}

#[test]
fn the_tcp_socket_limit_holds_for_0_3_sockets_and_accepts_wait_for_a_free_slot() {
    assert_eq!(
        run_tcp_probe(3, &["probe", "tcp-limits"]),
        "\
a fourth socket: Err(ErrorCode::Other(Some(\"the instance's socket limit is reached\")))
first connect: Ok(())
second connect: Ok(())
accept at the limit waits: true
accept after a drop: true
another socket at the limit: Err(ErrorCode::Other(Some(\"the instance's socket limit is reached\")))
"
    );
}

#[test]
fn a_cancelled_0_3_connect_leaves_the_socket_unusable_and_nothing_behind() {
    let stdout = run_tcp_probe(16, &["probe", "tcp-cancel-connect"]);
    assert_eq!(
        stdout,
        "\
a connect stayed pending and was cancelled: true
connect on the cancelled socket: Err(ErrorCode::InvalidState)
15 sockets again: true
"
    );
}
