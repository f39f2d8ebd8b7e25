//! UDP benchmark guest. `udp_flood send ADDR SIZE COUNT`: sends COUNT datagrams of SIZE bytes
//! to ADDR over a connected socket, in batches of whatever `check-send` permits, waiting on
//! the pollable when it permits 0. `udp_flood receive PORT MILLIS`: binds 127.0.0.1:PORT,
//! receives for MILLIS ms in batches of 64, and prints the count.
use wasip2::clocks::monotonic_clock::{now, subscribe_duration};
use wasip2::io::poll::poll;
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
use wasip2::sockets::udp::OutgoingDatagram;
use wasip2::sockets::udp_create_socket::create_udp_socket;

fn v4(addr: std::net::SocketAddrV4) -> IpSocketAddress {
    let [a, b, c, d] = addr.ip().octets();
    IpSocketAddress::Ipv4(Ipv4SocketAddress { port: addr.port(), address: (a, b, c, d) })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let network = instance_network();
    let socket = create_udp_socket(IpAddressFamily::Ipv4).unwrap();
    match args[1].as_str() {
        "send" => {
            let dest: std::net::SocketAddrV4 = args[2].parse().unwrap();
            let size: usize = args[3].parse().unwrap();
            let count: u64 = args[4].parse().unwrap();
            socket.start_bind(&network, v4("127.0.0.1:0".parse().unwrap())).unwrap();
            socket.finish_bind().unwrap();
            let (_, out) = socket.stream(Some(v4(dest))).unwrap();
            let ready = out.subscribe();
            let batch: Vec<OutgoingDatagram> = (0..256)
                .map(|_| OutgoingDatagram { data: vec![7u8; size], remote_address: None })
                .collect();
            let mut sent = 0u64;
            while sent < count {
                let permit = out.check_send().unwrap();
                if permit == 0 {
                    ready.block();
                    continue;
                }
                let n = permit.min(count - sent).min(batch.len() as u64) as usize;
                sent += out.send(&batch[..n]).unwrap();
            }
        }
        "receive" => {
            let port: u16 = args[2].parse().unwrap();
            let millis: u64 = args[3].parse().unwrap();
            socket.start_bind(&network, v4(std::net::SocketAddrV4::new([127, 0, 0, 1].into(), port))).unwrap();
            socket.finish_bind().unwrap();
            let (input, _) = socket.stream(None).unwrap();
            let ready = input.subscribe();
            let deadline = now() + millis * 1_000_000;
            let timer = wasip2::clocks::monotonic_clock::subscribe_instant(deadline);
            let mut received = 0u64;
            while now() < deadline {
                received += input.receive(64).unwrap().len() as u64;
                poll(&[&ready, &timer]);
            }
            let _ = subscribe_duration(0);
            println!("{received}");
        }
        other => panic!("unknown mode {other}"),
    }
}
