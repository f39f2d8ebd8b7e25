#![feature(wasi_ext)]
//! Exercises `wasi:filesystem` through Rust's std (via the preview1 adapter) in the preopen
//! `/data`. Argument 1 names the scenario; exit 0 means every check passed.
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};

fn check(ok: bool, what: &str) {
    if !ok {
        eprintln!("check failed: {what}");
        std::process::exit(2);
    }
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    match scenario.as_str() {
        "read-write" => {
            fs::write("/data/a.txt", b"hello").unwrap();
            check(fs::read("/data/a.txt").unwrap() == b"hello", "read back");
            let mut f = fs::OpenOptions::new().append(true).open("/data/a.txt").unwrap();
            f.write_all(b", world").unwrap();
            drop(f);
            check(fs::read_to_string("/data/a.txt").unwrap() == "hello, world", "append");
            let mut f = fs::OpenOptions::new().read(true).write(true).open("/data/a.txt").unwrap();
            f.seek(SeekFrom::Start(7)).unwrap();
            f.write_all(b"WORLD").unwrap();
            f.seek(SeekFrom::Start(0)).unwrap();
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            check(s == "hello, WORLD", "positional write");
            let meta = fs::metadata("/data/a.txt").unwrap();
            check(meta.len() == 12 && meta.is_file(), "stat size and type");
            f.set_len(5).unwrap();
            check(fs::read("/data/a.txt").unwrap() == b"hello", "set-size");
            fs::create_dir("/data/sub").unwrap();
            fs::rename("/data/a.txt", "/data/sub/b.txt").unwrap();
            check(fs::metadata("/data/a.txt").is_err(), "rename removes the old name");
            let mut names: Vec<String> = fs::read_dir("/data/sub")
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            check(names == ["b.txt"], "readdir");
            check(fs::metadata("/data/sub").unwrap().is_dir(), "stat dir");
            let err = fs::remove_dir("/data/sub").unwrap_err();
            check(
                err.raw_os_error() == Some(55), // WASI ENOTEMPTY
                &format!("remove non-empty dir fails with not-empty, got {err:?}"),
            );
            fs::remove_file("/data/sub/b.txt").unwrap();
            fs::remove_dir("/data/sub").unwrap();
            check(
                fs::read("/data/missing").unwrap_err().kind() == std::io::ErrorKind::NotFound,
                "missing file is not found",
            );
            std::os::wasi::fs::symlink_path("target.txt", "/data/link").unwrap();
            check(
                fs::read_link("/data/link").unwrap().to_str() == Some("target.txt"),
                "readlink",
            );
            println!("read-write ok");
        }
        "escape" => {
            // `outside` is a host symlink to a directory outside the preopen.
            check(fs::read("/data/outside/secret.txt").is_err(), "symlink out of the preopen");
            check(fs::read("/data/../secret.txt").is_err(), "`..` out of the preopen");
            check(fs::read_dir("/data/..").is_err(), "listing the parent");
            check(
                std::os::wasi::fs::symlink_path("/etc", "/data/abs-link").is_err(),
                "creating an absolute symlink",
            );
            check(fs::read("/data/inside.txt").unwrap() == b"inside", "reading inside works");
            println!("escape ok");
        }
        "read-only" => {
            check(fs::read("/data/inside.txt").unwrap() == b"inside", "reading works");
            check(fs::write("/data/new.txt", b"x").is_err(), "creating a file is refused");
            check(
                fs::OpenOptions::new().write(true).open("/data/inside.txt").is_err(),
                "opening for write is refused",
            );
            check(fs::remove_file("/data/inside.txt").is_err(), "unlink is refused");
            check(fs::create_dir("/data/d").is_err(), "mkdir is refused");
            check(fs::read("/data/inside.txt").unwrap() == b"inside", "file untouched");
            println!("read-only ok");
        }
        "many-open" => {
            // Holds N files open at once (N = argument 2): no descriptor-table ceiling below
            // the process's own limit.
            let n: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
            fs::write("/data/many.txt", b"m").unwrap();
            let mut open = Vec::with_capacity(n);
            for i in 0..n {
                match fs::File::open("/data/many.txt") {
                    Ok(file) => open.push(file),
                    Err(e) => {
                        println!("stopped after {i}: errno {:?}", e.raw_os_error());
                        std::process::exit(3);
                    }
                }
            }
            let mut byte = [0u8; 1];
            let last = open.last_mut().unwrap();
            check(last.read(&mut byte).unwrap() == 1 && byte == *b"m", "the last one reads");
            println!("opened {}", open.len());
        }
        "stdin-to-stdout" => {
            let copied = std::io::copy(&mut std::io::stdin(), &mut std::io::stdout()).unwrap();
            eprintln!("copied {copied}");
        }
        "sleep" => {
            let start = std::time::Instant::now();
            std::thread::sleep(std::time::Duration::from_millis(100));
            check(start.elapsed() >= std::time::Duration::from_millis(100), "slept 100 ms");
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            check(now.as_secs() > 1_700_000_000, "the wall clock is real");
            println!("sleep ok");
        }
        other => {
            eprintln!("unknown scenario `{other}`");
            std::process::exit(2);
        }
    }
}
