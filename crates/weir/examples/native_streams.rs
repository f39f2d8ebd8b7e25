//! Native baselines and peers for `benches/p3-stream-bench.sh`; each measuring mode prints
//! its time the way the guest (`guests/p3/probe`) does.
//!
//! - `stdout N`: writes N bytes to stdout in 1 MiB writes.
//! - `tcp-send PORT N`: connects to 127.0.0.1:PORT, sends N bytes, closes its side.
//! - `tcp-receive PORT`: connects to 127.0.0.1:PORT and reads until the peer closes.
//! - `udp-receive PORT MS`: binds 127.0.0.1:PORT and counts 64 B datagrams for MS ms from
//!   the first one.
//! - `pipe-run BYTES CMD ARGS...`: runs CMD with its stdout on a pipe of BYTES capacity,
//!   reads the pipe to its end and checks that CMD exited successfully; prints how many
//!   bytes arrived (to stderr).
//! - Peers, serving until killed: `tcp-sink PORT` (reads each connection to its end),
//!   `tcp-source PORT N` (writes N bytes to each connection, then closes it), `udp-blast
//!   PORT` (sends 64 B datagrams to 127.0.0.1:PORT as fast as it can).
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const CHUNK: usize = 1 << 20;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let number = |at: usize| {
        args.get(at)
            .and_then(|a| a.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    match args.get(1).map(String::as_str) {
        Some("stdout") => {
            let total = number(2);
            let mut stdout = std::io::stdout().lock();
            let start = Instant::now();
            let mut left = total;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                stdout.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            stdout.flush()?;
            eprintln!("wrote {total} in {} ns", start.elapsed().as_nanos());
        }
        Some("tcp-send") => {
            let (port, total) = (number(2) as u16, number(3));
            let mut stream = TcpStream::connect(("127.0.0.1", port))?;
            let start = Instant::now();
            let mut left = total;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                stream.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            stream.shutdown(std::net::Shutdown::Write)?;
            println!("sent {total} in {} ns", start.elapsed().as_nanos());
        }
        Some("tcp-receive") => {
            let mut stream = TcpStream::connect(("127.0.0.1", number(2) as u16))?;
            let mut buffer = vec![0u8; 64 * 1024];
            let start = Instant::now();
            let mut total = 0u64;
            loop {
                let n = stream.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            println!("received {total} in {} ns", start.elapsed().as_nanos());
        }
        Some("udp-receive") => {
            let socket = UdpSocket::bind(("127.0.0.1", number(2) as u16))?;
            let window = Duration::from_millis(number(3));
            let mut buffer = [0u8; 2048];
            socket.recv_from(&mut buffer)?;
            let start = Instant::now();
            let mut count = 1u64;
            while start.elapsed() < window {
                socket.recv_from(&mut buffer)?;
                count += 1;
            }
            println!("received {count} in {} ns", start.elapsed().as_nanos());
        }
        Some("pipe-run") => {
            let capacity = number(2) as i32;
            let (reader, writer) = rustix::pipe::pipe()?;
            rustix::pipe::fcntl_setpipe_size(&writer, capacity as usize)?;
            let mut child = std::process::Command::new(&args[3])
                .args(&args[4..])
                .stdout(std::process::Stdio::from(writer))
                .spawn()?;
            let mut reader = std::fs::File::from(reader);
            let mut buffer = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                let n = reader.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            let status = child.wait()?;
            eprintln!("pipe received {total}; {status}");
            if !status.success() {
                std::process::exit(1);
            }
        }
        Some("tcp-sink") => {
            let listener = TcpListener::bind(("127.0.0.1", number(2) as u16))?;
            for stream in listener.incoming() {
                let mut stream = stream?;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut stream, &mut std::io::sink());
                });
            }
        }
        Some("tcp-source") => {
            let listener = TcpListener::bind(("127.0.0.1", number(2) as u16))?;
            let total = number(3);
            for stream in listener.incoming() {
                let mut stream = stream?;
                let chunk = chunk.clone();
                std::thread::spawn(move || {
                    let mut left = total;
                    while left > 0 {
                        let n = left.min(CHUNK as u64) as usize;
                        if stream.write_all(&chunk[..n]).is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                });
            }
        }
        Some("udp-blast") => {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            let port = number(2) as u16;
            let payload = [0x5au8; 64];
            loop {
                // Refused while no receiver is bound: keep going.
                let _ = socket.send_to(&payload, ("127.0.0.1", port));
            }
        }
        _ => eprintln!(
            "usage: native_streams stdout N | tcp-send PORT N | tcp-receive PORT | \
             udp-receive PORT MS | tcp-sink PORT | tcp-source PORT N | udp-blast PORT"
        ),
    }
    Ok(())
}
