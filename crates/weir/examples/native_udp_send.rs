//! Native baseline for `benches/p3-udp-bench.sh`: `native_udp_send send N PORT` sends N
//! datagrams of 64 B to 127.0.0.1:PORT, one `sendto` each (what the guest asks for), and
//! prints the time as the guest does; `native_udp_send sink PORT SECONDS` binds PORT and
//! holds it without reading (the kernel drops what overflows its buffer).
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let number = |at: usize| {
        args.get(at)
            .and_then(|a| a.parse::<u64>().ok())
            .unwrap_or(0)
    };
    match args.get(1).map(String::as_str) {
        Some("send") => {
            let (count, port) = (number(2), number(3) as u16);
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            let payload = [0x5au8; 64];
            let start = Instant::now();
            let mut failed = 0u64;
            for _ in 0..count {
                if socket.send_to(&payload, ("127.0.0.1", port)).is_err() {
                    failed += 1;
                }
            }
            let took = start.elapsed().as_nanos();
            println!("sent {count} failed {failed} in {took} ns");
        }
        Some("sink") => {
            let _socket = UdpSocket::bind(("127.0.0.1", number(2) as u16))?;
            std::thread::sleep(Duration::from_secs(number(3)));
        }
        _ => eprintln!("usage: native_udp_send send N PORT | sink PORT SECONDS"),
    }
    Ok(())
}
