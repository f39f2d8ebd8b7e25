//! Probes one `wasi:io` behaviour, named by argument 1, and exits 0 if the host behaved as the
//! WIT says (otherwise it prints what it saw to stderr and exits non-zero).
use wasip2::cli::{stdin::get_stdin, stdout::get_stdout};
use wasip2::clocks::monotonic_clock::subscribe_duration;
use wasip2::io::poll::poll;
use wasip2::io::streams::StreamError;

fn fail(what: String) -> ! {
    eprintln!("{what}");
    std::process::exit(2)
}

fn main() {
    let probe = std::env::args().nth(1).unwrap_or_default();
    match probe.as_str() {
        // The embedder closed stdout: every operation reports `closed`.
        "closed-stdout" => {
            let out = get_stdout();
            match out.check_write() {
                Err(StreamError::Closed) => {}
                other => fail(format!("check-write on a closed pipe: {other:?}")),
            }
            match out.write(b"") {
                Err(StreamError::Closed) => {}
                other => fail(format!("write on a closed pipe: {other:?}")),
            }
            match out.blocking_write_and_flush(b"x") {
                Err(StreamError::Closed) => {}
                other => fail(format!("blocking-write-and-flush on a closed pipe: {other:?}")),
            }
        }
        // The reader of stdout went away: writing ends in `closed` (EPIPE), not an error.
        "epipe" => {
            let out = get_stdout();
            let mut result = Ok(());
            for _ in 0..64 {
                result = out.blocking_write_and_flush(&[7u8; 4096]);
                if result.is_err() {
                    break;
                }
            }
            match result {
                Err(StreamError::Closed) => {}
                other => fail(format!("writing into a broken pipe: {other:?}")),
            }
        }
        // After `flush`, check-write reports 0 until the flush completed.
        "flush-pending" => {
            let out = get_stdout();
            let permit = out.check_write().unwrap_or_else(|e| fail(format!("{e:?}")));
            let n = permit.min(100) as usize;
            out.write(&vec![b'f'; n]).unwrap_or_else(|e| fail(format!("{e:?}")));
            out.flush().unwrap_or_else(|e| fail(format!("{e:?}")));
            match out.check_write() {
                Ok(0) => {}
                other => fail(format!("check-write right after flush: {other:?}")),
            }
            let pollable = out.subscribe();
            if pollable.ready() {
                fail("pollable ready while the flush is still pending".into());
            }
            // Tells the test harness that the checks above are done: it may now let the
            // flush complete.
            wasip2::cli::stderr::get_stderr()
                .blocking_write_and_flush(b"waiting for the flush\n")
                .unwrap_or_else(|e| fail(format!("{e:?}")));
            pollable.block();
            match out.check_write() {
                Ok(n) if n > 0 => {}
                other => fail(format!("check-write after the flush completed: {other:?}")),
            }
        }
        // Copy stdin to stdout with non-blocking `splice`, waiting on both pollables.
        "splice" => {
            let (input, out) = (get_stdin(), get_stdout());
            let (in_ready, out_ready) = (input.subscribe(), out.subscribe());
            loop {
                match out.splice(&input, 1 << 16) {
                    Ok(0) => {
                        poll(&[&in_ready, &out_ready]);
                    }
                    Ok(_) => {}
                    Err(StreamError::Closed) => break,
                    Err(e) => fail(format!("splice: {e:?}")),
                }
            }
            drop((in_ready, out_ready));
            out.blocking_flush().unwrap_or_else(|e| fail(format!("{e:?}")));
        }
        // Copy stdin to stdout with `blocking-splice`.
        "blocking-splice" => {
            let (input, out) = (get_stdin(), get_stdout());
            loop {
                match out.blocking_splice(&input, 1 << 16) {
                    Ok(0) => fail("blocking-splice returned 0 for a non-zero length".into()),
                    Ok(_) => {}
                    Err(StreamError::Closed) => break,
                    Err(e) => fail(format!("blocking-splice: {e:?}")),
                }
            }
            out.blocking_flush().unwrap_or_else(|e| fail(format!("{e:?}")));
        }
        // Copy stdin to stdout with `blocking-read` and `blocking-write-and-flush`.
        "cat" => {
            let (input, out) = (get_stdin(), get_stdout());
            loop {
                match input.blocking_read(4096) {
                    Ok(bytes) => out
                        .blocking_write_and_flush(&bytes)
                        .unwrap_or_else(|e| fail(format!("write: {e:?}"))),
                    Err(StreamError::Closed) => break,
                    Err(e) => fail(format!("blocking-read: {e:?}")),
                }
            }
        }
        // subscribe-duration(0) is ready at once; poll reports every index of a ready
        // pollable listed twice and none of a pending one.
        "poll" => {
            let now = subscribe_duration(0);
            if !now.ready() {
                fail("subscribe-duration(0) is not ready".into());
            }
            let later = subscribe_duration(3_600_000_000_000);
            if later.ready() {
                fail("a one-hour timer is ready".into());
            }
            let ready = poll(&[&later, &now, &now]);
            if ready != [1, 2] {
                fail(format!("poll([later, now, now]) = {ready:?}"));
            }
            let short = subscribe_duration(20_000_000);
            let ready = poll(&[&later, &short]);
            if ready != [1] {
                fail(format!("poll([later, 20ms]) = {ready:?}"));
            }
        }
        other => fail(format!("unknown probe `{other}`")),
    }
}
