//! TCP benchmark guest. `tcp_flood send ADDR TOTAL CHUNK`: connects to ADDR and writes TOTAL
//! bytes in writes of at most CHUNK bytes (check-write / write, waiting on the pollable when
//! the permit is 0), then shuts down the sending side and waits for the flush.
//! `tcp_flood receive ADDR`: connects to ADDR and reads until the peer closes; prints the
//! byte count.
use wasip2::io::streams::StreamError;
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::network::IpAddressFamily;
use wasip2::sockets::tcp::ShutdownType;
use wasip2::sockets::tcp_create_socket::create_tcp_socket;
use weir_guests::wit_addr;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let network = instance_network();
    let socket = create_tcp_socket(IpAddressFamily::Ipv4).unwrap();
    socket.start_connect(&network, wit_addr(&args[2])).unwrap();
    let connected = socket.subscribe();
    let (input, output) = loop {
        match socket.finish_connect() {
            Ok(streams) => break streams,
            Err(e) if e.name() == "would-block" => connected.block(),
            Err(e) => panic!("connect: {}", e.name()),
        }
    };
    match args[1].as_str() {
        "send" => {
            let total: u64 = args[3].parse().unwrap();
            let chunk: u64 = args[4].parse().unwrap();
            let data = vec![0x5au8; chunk as usize];
            let ready = output.subscribe();
            let mut sent = 0u64;
            while sent < total {
                let permit = output.check_write().unwrap();
                if permit == 0 {
                    ready.block();
                    continue;
                }
                let n = permit.min(chunk).min(total - sent);
                output.write(&data[..n as usize]).unwrap();
                sent += n;
            }
            output.flush().unwrap();
            while output.check_write().unwrap() == 0 {
                ready.block();
            }
            drop(ready);
            socket.shutdown(ShutdownType::Send).unwrap();
        }
        "receive" => {
            let ready = input.subscribe();
            let mut received = 0u64;
            loop {
                match input.read(1 << 16) {
                    Ok(bytes) if bytes.is_empty() => ready.block(),
                    Ok(bytes) => received += bytes.len() as u64,
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => panic!("read: {}", e.to_debug_string()),
                }
            }
            println!("{received}");
        }
        other => panic!("unknown mode {other}"),
    }
}
