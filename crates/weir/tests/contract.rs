//! Exact contract tests with hand-written WAT guests: each sentence of the `wasi:io` WIT that
//! says "traps" has a guest that does exactly the forbidden thing, next to a control guest
//! that stays one step inside the rule (so the test fails if the rule were not enforced, or
//! were enforced too early).

mod common;

use common::{MODES, assert_trap, run, wat_guest, wat_guest_with};
use weir::WasiCtxBuilder;
use weir::command::Outcome;
use weir::io::MemoryOutputPipe;

const WORLD: &str = r#"
package weir:contract-test;
world guest {
  import wasi:io/streams@0.2.12;
  import wasi:io/poll@0.2.12;
  import wasi:cli/stdout@0.2.12;
  import wasi:clocks/monotonic-clock@0.2.12;
  export wasi:cli/run@0.2.12;
}
"#;

/// A guest whose `run` executes `body` with `$out` = stdout; memory has 20 pages (enough for
/// a 1 MiB + 1 write), scratch space for return areas at 0x10 (check-write result, 16 bytes)
/// and 0x20 (write result); data is read from 0x1000. `run` returns ok.
fn guest(body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
  (import "wasi:cli/stdout@0.2.12" "get-stdout" (func $get_stdout (result i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.check-write" (func $check_write (param i32 i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.write" (func $write (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.write-zeroes" (func $write_zeroes (param i32 i64 i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush" (func $bwf (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.subscribe" (func $subscribe (param i32) (result i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream" (func $drop_stream (param i32)))
  (import "wasi:io/poll@0.2.12" "poll" (func $poll (param i32 i32 i32)))
  (import "wasi:io/poll@0.2.12" "[resource-drop]pollable" (func $drop_pollable (param i32)))
  (import "wasi:clocks/monotonic-clock@0.2.12" "subscribe-duration" (func $sleep (param i64) (result i32)))
  (memory (export "memory") 20)
  {realloc}
  ;; The permit from check-write (traps the guest if check-write failed).
  (func $permit (param $out i32) (result i32)
    (call $check_write (local.get $out) (i32.const 0x10))
    (if (i32.load8_u (i32.const 0x10)) (then unreachable))
    (i32.wrap_i64 (i64.load (i32.const 0x18))))
  ;; Fails (unreachable) if the last write-like call at 0x20 returned an error.
  (func $ok_write
    (if (i32.load8_u (i32.const 0x20)) (then unreachable)))
  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (local $out i32) (local $n i32) (local $p i32)
    (local.set $out (call $get_stdout))
    {body}
    (i32.const 0))
)"#,
        realloc = common::BUMP_REALLOC
    );
    wat_guest(WORLD, &wat).expect("building the WAT guest")
}

fn pipe_ctx(capacity: usize) -> (MemoryOutputPipe, weir::WasiCtx) {
    let pipe = MemoryOutputPipe::new(capacity);
    let ctx = WasiCtxBuilder::new().stdout(pipe.clone()).build();
    (pipe, ctx)
}

#[test]
fn write_within_the_permit_succeeds() {
    let component = guest(
        "(local.set $n (call $permit (local.get $out)))
         (call $write (local.get $out) (i32.const 0x1000) (local.get $n) (i32.const 0x20))
         (call $ok_write)",
    );
    for mode in MODES {
        let (pipe, ctx) = pipe_ctx(100);
        assert_eq!(
            run(mode, &component, ctx).unwrap(),
            Outcome::Success,
            "{mode:?}"
        );
        assert_eq!(pipe.contents().len(), 100, "{mode:?}");
    }
}

#[test]
fn write_one_byte_over_the_permit_traps_on_a_pipe() {
    let component = guest(
        "(local.set $n (call $permit (local.get $out)))
         (call $write (local.get $out) (i32.const 0x1000) (i32.add (local.get $n) (i32.const 1)) (i32.const 0x20))",
    );
    for mode in MODES {
        let (pipe, ctx) = pipe_ctx(100);
        assert_trap(
            run(mode, &component, ctx),
            "101 bytes exceed the 100 bytes permitted by the last check-write (write exceeded \
             budget)",
        );
        assert!(
            pipe.contents().is_empty(),
            "{mode:?}: nothing may be written"
        );
    }
}

#[test]
fn write_one_byte_over_the_permit_traps_on_host_stdout() {
    // Stricter than wasmtime-wasi 48, whose stdout accepts any write.
    let component = guest(
        "(local.set $n (call $permit (local.get $out)))
         (call $write (local.get $out) (i32.const 0x1000) (i32.add (local.get $n) (i32.const 1)) (i32.const 0x20))",
    );
    for mode in MODES {
        let ctx = WasiCtxBuilder::new().inherit_stdout().build();
        assert_trap(run(mode, &component, ctx), "exceed the");
    }
}

#[test]
fn write_without_check_write_traps() {
    let component =
        guest("(call $write (local.get $out) (i32.const 0x1000) (i32.const 1) (i32.const 0x20))");
    for mode in MODES {
        let (_pipe, ctx) = pipe_ctx(100);
        assert_trap(
            run(mode, &component, ctx),
            "1 bytes exceed the 0 bytes permitted",
        );
    }
}

#[test]
fn each_write_consumes_the_permit() {
    // Two writes of 60 under one permit of 100: the second must trap.
    let component = guest(
        "(drop (call $permit (local.get $out)))
         (call $write (local.get $out) (i32.const 0x1000) (i32.const 60) (i32.const 0x20))
         (call $ok_write)
         (call $write (local.get $out) (i32.const 0x1000) (i32.const 60) (i32.const 0x20))",
    );
    for mode in MODES {
        let (pipe, ctx) = pipe_ctx(100);
        assert_trap(
            run(mode, &component, ctx),
            "60 bytes exceed the 40 bytes permitted",
        );
        assert_eq!(pipe.contents().len(), 60);
    }
}

#[test]
fn write_zeroes_over_the_permit_traps() {
    let over = guest(
        "(local.set $n (call $permit (local.get $out)))
         (call $write_zeroes (local.get $out) (i64.extend_i32_u (i32.add (local.get $n) (i32.const 1))) (i32.const 0x20))",
    );
    let within = guest(
        "(local.set $n (call $permit (local.get $out)))
         (call $write_zeroes (local.get $out) (i64.extend_i32_u (local.get $n)) (i32.const 0x20))
         (call $ok_write)",
    );
    for mode in MODES {
        let (_pipe, ctx) = pipe_ctx(100);
        assert_trap(run(mode, &over, ctx), "write-zeroes: 101 bytes exceed");
        let (pipe, ctx) = pipe_ctx(100);
        assert_eq!(run(mode, &within, ctx).unwrap(), Outcome::Success);
        assert_eq!(&pipe.contents()[..], &[0u8; 100][..]);
    }
}

#[test]
fn blocking_write_and_flush_of_4097_bytes_traps_and_4096_passes() {
    let over =
        guest("(call $bwf (local.get $out) (i32.const 0x1000) (i32.const 4097) (i32.const 0x20))");
    let limit = guest(
        "(call $bwf (local.get $out) (i32.const 0x1000) (i32.const 4096) (i32.const 0x20))
         (call $ok_write)",
    );
    for mode in MODES {
        let (pipe, ctx) = pipe_ctx(1 << 20);
        // With wasmtime's wording too, for tools that match on it.
        assert_trap(
            run(mode, &over, ctx),
            "4097 bytes exceed the limit of 4096 (Buffer too large for \
             blocking-write-and-flush (expected at most 4096))",
        );
        assert!(pipe.contents().is_empty());
        let (pipe, ctx) = pipe_ctx(1 << 20);
        assert_eq!(run(mode, &limit, ctx).unwrap(), Outcome::Success);
        assert_eq!(pipe.contents().len(), 4096);
    }
}

#[test]
fn blocking_write_and_flush_waits_for_space_in_small_pipe_chunks() {
    // 4096 bytes through a pipe that holds 1000: only possible if the host waits and the
    // embedder drains, in permitted chunks.
    let component = guest(
        "(call $bwf (local.get $out) (i32.const 0x1000) (i32.const 4096) (i32.const 0x20))
         (call $ok_write)",
    );
    for mode in MODES {
        let (pipe, ctx) = pipe_ctx(1000);
        let drained = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let drainer = {
            let (pipe, drained, done) = (pipe.clone(), drained.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    drained
                        .lock()
                        .unwrap()
                        .extend_from_slice(&pipe.take_contents());
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                drained
                    .lock()
                    .unwrap()
                    .extend_from_slice(&pipe.take_contents());
            })
        };
        assert_eq!(run(mode, &component, ctx).unwrap(), Outcome::Success);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        drainer.join().unwrap();
        assert_eq!(drained.lock().unwrap().len(), 4096, "{mode:?}");
    }
}

#[test]
fn poll_of_an_empty_list_traps() {
    let component = guest("(call $poll (i32.const 0x1000) (i32.const 0) (i32.const 0x20))");
    for mode in MODES {
        let (_pipe, ctx) = pipe_ctx(100);
        assert_trap(
            run(mode, &component, ctx),
            "the list of pollables is empty (empty poll list)",
        );
    }
}

#[test]
fn poll_of_the_same_pollable_twice_reports_both_indices() {
    // Two copies of one ready timer's handle; the result list must be [0, 1].
    let component = guest(
        "(local.set $p (call $sleep (i64.const 0)))
         (i32.store (i32.const 0x1000) (local.get $p))
         (i32.store (i32.const 0x1004) (local.get $p))
         (call $poll (i32.const 0x1000) (i32.const 2) (i32.const 0x20))
         (if (i32.ne (i32.load (i32.const 0x24)) (i32.const 2)) (then unreachable))
         (if (i32.ne (i32.load (i32.load (i32.const 0x20))) (i32.const 0)) (then unreachable))
         (if (i32.ne (i32.load offset=4 (i32.load (i32.const 0x20))) (i32.const 1)) (then unreachable))",
    );
    for mode in MODES {
        let (_pipe, ctx) = pipe_ctx(100);
        assert_eq!(
            run(mode, &component, ctx).unwrap(),
            Outcome::Success,
            "{mode:?}"
        );
    }
}

#[test]
fn dropping_a_stream_before_its_pollable_traps() {
    let early = guest(
        "(local.set $p (call $subscribe (local.get $out)))
         (call $drop_stream (local.get $out))",
    );
    let in_order = guest(
        "(local.set $p (call $subscribe (local.get $out)))
         (call $drop_pollable (local.get $p))
         (call $drop_stream (local.get $out))",
    );
    for mode in MODES {
        let (_pipe, ctx) = pipe_ctx(100);
        assert_trap(run(mode, &early, ctx), "resource has children");
        let (_pipe, ctx) = pipe_ctx(100);
        assert_eq!(run(mode, &in_order, ctx).unwrap(), Outcome::Success);
    }
}

/// The parts of WASI 0.2.0 the old-version guest imports, as that release defined them.
const IO_0_2_0: &str = r#"
package wasi:io@0.2.0;
interface error { resource error; }
interface streams {
  use error.{error};
  variant stream-error { last-operation-failed(error), closed }
  resource output-stream {
    blocking-write-and-flush: func(contents: list<u8>) -> result<_, stream-error>;
  }
}
"#;
const CLI_0_2_0: &str = r#"
package wasi:cli@0.2.0;
interface stdout {
  use wasi:io/streams@0.2.0.{output-stream};
  get-stdout: func() -> output-stream;
}
interface run { run: func() -> result; }
"#;

#[test]
fn a_guest_importing_wasi_0_2_0_links_and_runs() {
    let world = r#"
package weir:old-guest;
world guest {
  import wasi:cli/stdout@0.2.0;
  export wasi:cli/run@0.2.0;
}
"#;
    let wat = r#"(module
  (import "wasi:cli/stdout@0.2.0" "get-stdout" (func $get_stdout (result i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.blocking-write-and-flush" (func $bwf (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0x100) "hello from 0.2.0\n")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0x800))
  (func (export "wasi:cli/run@0.2.0#run") (result i32)
    (call $bwf (call $get_stdout) (i32.const 0x100) (i32.const 17) (i32.const 0x20))
    (i32.load8_u (i32.const 0x20)))
)"#;
    let component = wat_guest_with(&[IO_0_2_0, CLI_0_2_0], world, wat).expect("building");
    for mode in MODES {
        let (pipe, ctx) = pipe_ctx(1024);
        assert_eq!(
            run(mode, &component, ctx).unwrap(),
            Outcome::Success,
            "{mode:?}"
        );
        assert_eq!(&pipe.contents()[..], b"hello from 0.2.0\n");
    }
}
