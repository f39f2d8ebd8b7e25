//! `weir serve`'s way to stderr for its log, in batches.
//!
//! The access log has a line per request. Written straight to stderr, each line cost a
//! `write` and, with requests on both cores, a contended stderr lock: about a tenth of the
//! request rate with instance reuse (docs/benchmarks.md). Here lines at `info` and below
//! are gathered in memory and written out together by a thread, at most
//! [`FLUSH_INTERVAL`] after the first of them, or at once when [`MAX_PENDING`] bytes wait.
//! Warnings and errors are written at once, after the lines before them, so the log's
//! order is kept. Whatever waits is written when [`BatchedStderr::flush`] is called, as
//! `weir serve` does before it prints anything itself and before it returns.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait before it is written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Bytes that may wait; a line that takes the buffer past this writes it out itself.
pub(crate) const MAX_PENDING: usize = 256 * 1024;

/// A [`MakeWriter`] for the log: batched stderr (see the module docs).
#[derive(Clone)]
pub(crate) struct BatchedStderr {
    shared: Arc<Shared>,
}

struct Shared {
    /// Lines not yet written.
    pending: Mutex<Vec<u8>>,
    /// Signalled when a line arrives in an empty buffer.
    arrived: Condvar,
    /// Where the lines go (stderr), held while writing; taken before `pending` is let
    /// go, so that batches reach it in the order they were taken.
    output: Mutex<Box<dyn Write + Send>>,
}

impl BatchedStderr {
    /// Starts the thread that writes the batches out to stderr.
    pub(crate) fn start() -> io::Result<Self> {
        Self::start_to(Box::new(io::stderr()))
    }

    fn start_to(output: Box<dyn Write + Send>) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            output: Mutex::new(output),
        });
        let flusher = shared.clone();
        // The thread lives as long as the process (the log is global).
        std::thread::Builder::new()
            .name("weir-log".into())
            .spawn(move || {
                loop {
                    let mut pending = flusher.lock_pending();
                    while pending.is_empty() {
                        pending = flusher
                            .arrived
                            .wait(pending)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                    drop(pending);
                    std::thread::sleep(FLUSH_INTERVAL);
                    flusher.write_out(flusher.lock_pending(), &[]);
                }
            })?;
        Ok(BatchedStderr { shared })
    }

    /// Writes out every line that waits.
    pub(crate) fn flush(&self) {
        self.shared.write_out(self.shared.lock_pending(), &[]);
    }
}

impl Shared {
    fn lock_pending(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what waits in `pending`, then `line`, and empties `pending`.
    fn write_out(&self, mut pending: MutexGuard<'_, Vec<u8>>, line: &[u8]) {
        let batch = std::mem::take(&mut *pending);
        let mut output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        // Other threads may add lines again while this one writes.
        drop(pending);
        // A log that cannot be written is not a reason to fail a request.
        let _ = output
            .write_all(&batch)
            .and_then(|()| output.write_all(line))
            .and_then(|()| output.flush());
    }
}

/// One event's writer: buffered, or straight out.
pub(crate) struct EventWriter<'a> {
    shared: &'a Shared,
    at_once: bool,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.shared.lock_pending();
        if self.at_once {
            self.shared.write_out(pending, line);
            return Ok(line.len());
        }
        let was_empty = pending.is_empty();
        pending.extend_from_slice(line);
        if pending.len() > MAX_PENDING {
            self.shared.write_out(pending, &[]);
        } else if was_empty {
            drop(pending);
            self.shared.arrived.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            shared: &self.shared,
            at_once: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter {
            shared: &self.shared,
            // `WARN` and `ERROR` compare below `INFO` in `tracing`.
            at_once: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A sink the test can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log(writer: &BatchedStderr, at_once: bool, line: &str) {
        let mut event = EventWriter {
            shared: &writer.shared,
            at_once,
        };
        event.write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn info_lines_wait_and_come_out_together_within_the_interval() {
        let sink = Sink::default();
        let writer = BatchedStderr::start_to(Box::new(sink.clone())).unwrap();
        let start = Instant::now();
        log(&writer, false, "one\n");
        log(&writer, false, "two\n");
        while sink.text().is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the batch never came"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.text(), "one\ntwo\n");
        // Not written per line: only once the interval passed.
        assert!(start.elapsed() >= FLUSH_INTERVAL, "{:?}", start.elapsed());
    }

    #[test]
    fn a_warning_goes_out_at_once_after_the_lines_before_it() {
        let sink = Sink::default();
        let writer = BatchedStderr::start_to(Box::new(sink.clone())).unwrap();
        log(&writer, false, "info\n");
        log(&writer, true, "warn\n");
        assert_eq!(sink.text(), "info\nwarn\n");
    }

    #[test]
    fn flush_writes_what_waits_and_a_full_buffer_writes_itself() {
        let sink = Sink::default();
        let writer = BatchedStderr::start_to(Box::new(sink.clone())).unwrap();
        log(&writer, false, "waiting\n");
        writer.flush();
        assert_eq!(sink.text(), "waiting\n");
        let line = "x".repeat(1000) + "\n";
        let lines = MAX_PENDING / line.len() + 1;
        for _ in 0..lines {
            log(&writer, false, &line);
        }
        assert_eq!(
            sink.text().len(),
            "waiting\n".len() + lines * line.len(),
            "past MAX_PENDING the writer wrote the buffer itself"
        );
    }

    #[test]
    fn warnings_and_errors_are_at_once_and_info_is_batched() {
        let writer = BatchedStderr::start_to(Box::new(Sink::default())).unwrap();
        let at_once = |level| {
            // A callsite's metadata for `level`, as `tracing` passes it.
            struct Callsite;
            impl tracing::callsite::Callsite for Callsite {
                fn set_interest(&self, _: tracing::subscriber::Interest) {}
                fn metadata(&self) -> &Metadata<'_> {
                    unreachable!()
                }
            }
            let fields =
                tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&Callsite));
            let meta = Metadata::new(
                "event",
                "test",
                level,
                None,
                None,
                None,
                fields,
                tracing::metadata::Kind::EVENT,
            );
            writer.make_writer_for(&meta).at_once
        };
        assert!(at_once(Level::ERROR));
        assert!(at_once(Level::WARN));
        assert!(!at_once(Level::INFO));
        assert!(!at_once(Level::DEBUG));
    }
}
