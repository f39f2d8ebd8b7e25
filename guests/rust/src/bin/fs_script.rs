//! Runs a script of `wasi:filesystem` calls, made directly (not through std, which the
//! preview1 adapter would translate), given as arguments (one command per argument, words
//! separated by spaces), and prints one line per command, so that host tests can assert the
//! exact error code of each call. `open` paths are relative to the first preopen; the
//! directory commands name their preopen by its guest path (`PRE`, e.g. `/data`).
//!
//! Commands (`N` names an open descriptor; `OFLAGS` is a comma list of `create`,
//! `directory`, `exclusive`, `truncate`, and `FLAGS` of `read`, `write`, `mutate`; `-` is
//! none):
//! - `open N PATH OFLAGS FLAGS [follow]`: `open-at` from the first preopen, following a
//!   final symlink only with `follow`
//! - `read N LEN`: `read` at offset 0; prints `ok(BYTES, EOF)`
//! - `read-stream N`: `read-via-stream` at 0, read to the end; prints the byte count
//! - `write N TEXT`: `write` at offset 0; `set-size N SIZE`
//! - `write-stream N TEXT`, `append-stream N TEXT`: `write-via-stream` at 0 /
//!   `append-via-stream`, then a blocking write and flush of TEXT
//! - `set-times N`: `set-times` of descriptor N to the epoch
//! - `link PRE OLD PRE NEW [follow]`, `rename PRE OLD PRE NEW`: `link-at` / `rename-at`
//!   between two preopens (or within one)
//! - `mkdir PRE PATH`, `rmdir PRE PATH`, `unlink PRE PATH`, `symlink PRE TARGET PATH`,
//!   `set-times-at PRE PATH`: the other directory changes
//! - `exit CODE`, `trap`, `hang`: end the guest abruptly (see `weir_guests::end_abruptly`)
use std::collections::HashMap;

use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, NewTimestamp, OpenFlags, PathFlags};
use wasip2::io::streams::StreamError;

fn code(e: ErrorCode) -> String {
    format!("err({})", e.name())
}

fn show<T: std::fmt::Debug>(r: Result<T, ErrorCode>) -> String {
    match r {
        Ok(v) => format!("ok({v:?})"),
        Err(e) => code(e),
    }
}

fn open_flags(text: &str) -> OpenFlags {
    let mut flags = OpenFlags::empty();
    for word in text.split(',').filter(|w| !w.is_empty() && *w != "-") {
        flags |= match word {
            "create" => OpenFlags::CREATE,
            "directory" => OpenFlags::DIRECTORY,
            "exclusive" => OpenFlags::EXCLUSIVE,
            "truncate" => OpenFlags::TRUNCATE,
            other => panic!("unknown open flag `{other}`"),
        };
    }
    flags
}

fn descriptor_flags(text: &str) -> DescriptorFlags {
    let mut flags = DescriptorFlags::empty();
    for word in text.split(',').filter(|w| !w.is_empty() && *w != "-") {
        flags |= match word {
            "read" => DescriptorFlags::READ,
            "write" => DescriptorFlags::WRITE,
            "mutate" => DescriptorFlags::MUTATE_DIRECTORY,
            other => panic!("unknown descriptor flag `{other}`"),
        };
    }
    flags
}

fn path_flags(text: &str) -> PathFlags {
    if text == "follow" { PathFlags::SYMLINK_FOLLOW } else { PathFlags::empty() }
}

const EPOCH: NewTimestamp = NewTimestamp::Timestamp(wasip2::clocks::wall_clock::Datetime { seconds: 0, nanoseconds: 0 });

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "stream err(closed)".into(),
        StreamError::LastOperationFailed(e) => format!("stream err(failed: {})", e.to_debug_string()),
    }
}

fn main() {
    let preopens: HashMap<String, Descriptor> = get_directories().into_iter().map(|(d, path)| (path, d)).collect();
    let first = get_directories().into_iter().next().expect("a preopen").1;
    let root = &preopens[&first];
    let pre = |name: &str| preopens.get(name).unwrap_or_else(|| panic!("no preopen `{name}`"));
    let mut open: HashMap<String, Descriptor> = HashMap::new();
    for command in std::env::args().skip(1) {
        let words: Vec<&str> = command.split_whitespace().collect();
        let name = words.get(1).copied().unwrap_or("").to_string();
        let arg = |i: usize| words.get(i).copied().unwrap_or("");
        weir_guests::end_abruptly(&words);
        let line = match words[0] {
            "open" => {
                match root.open_at(path_flags(arg(5)), arg(2), open_flags(arg(3)), descriptor_flags(arg(4))) {
                    Ok(d) => {
                        let kind = format!("{:?}", d.get_type());
                        open.insert(name, d);
                        format!("ok({kind})")
                    }
                    Err(e) => code(e),
                }
            }
            "read" => show(open[&name].read(arg(2).parse().unwrap(), 0).map(|(b, eof)| (String::from_utf8_lossy(&b).into_owned(), eof))),
            "read-stream" => match open[&name].read_via_stream(0) {
                Ok(input) => {
                    let mut total = 0;
                    loop {
                        match input.blocking_read(65536) {
                            Ok(bytes) => total += bytes.len(),
                            Err(StreamError::Closed) => break format!("ok({total} bytes)"),
                            Err(e) => break stream_error(e),
                        }
                    }
                }
                Err(e) => code(e),
            },
            "write" => show(open[&name].write(words[2..].join(" ").as_bytes(), 0)),
            "set-size" => show(open[&name].set_size(arg(2).parse().unwrap())),
            "write-stream" | "append-stream" => {
                let d = &open[&name];
                let stream = if words[0] == "write-stream" { d.write_via_stream(0) } else { d.append_via_stream() };
                match stream {
                    Ok(out) => match out.blocking_write_and_flush(words[2..].join(" ").as_bytes()) {
                        Ok(()) => "ok".to_string(),
                        Err(e) => stream_error(e),
                    },
                    Err(e) => code(e),
                }
            }
            "set-times" => show(open[&name].set_times(EPOCH, EPOCH)),
            "link" => show(pre(arg(1)).link_at(path_flags(arg(5)), arg(2), pre(arg(3)), arg(4))),
            "rename" => show(pre(arg(1)).rename_at(arg(2), pre(arg(3)), arg(4))),
            "mkdir" => show(pre(arg(1)).create_directory_at(arg(2))),
            "rmdir" => show(pre(arg(1)).remove_directory_at(arg(2))),
            "unlink" => show(pre(arg(1)).unlink_file_at(arg(2))),
            "symlink" => show(pre(arg(1)).symlink_at(arg(2), arg(3))),
            "set-times-at" => show(pre(arg(1)).set_times_at(PathFlags::empty(), arg(2), EPOCH, EPOCH)),
            other => panic!("unknown command `{other}`"),
        };
        println!("{command} => {line}");
    }
}
