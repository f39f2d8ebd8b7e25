//! The density benchmark's instance: `density TCP_ADDR UDP_ADDR ECHOES`. Binds a UDP socket
//! and connects a TCP stream, then does ECHOES rounds of one 16-byte TCP echo and one
//! 16-byte UDP echo (resent after 1 s without a reply) against the benchmark's echo servers,
//! then sends one byte to say it is done and holds both sockets open until the TCP peer
//! closes the connection.
use wasip2::io::streams::StreamError;
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
use wasip2::sockets::tcp_create_socket::create_tcp_socket;
use wasip2::sockets::udp::OutgoingDatagram;
use wasip2::sockets::udp_create_socket::create_udp_socket;
use weir_guests::{wait, wit_addr};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (tcp_addr, udp_addr) = (wit_addr(&args[1]), wit_addr(&args[2]));
    let echoes: u32 = args[3].parse().expect("ECHOES");
    let network = instance_network();

    let udp = create_udp_socket(IpAddressFamily::Ipv4).expect("create-udp-socket");
    let loopback = IpSocketAddress::Ipv4(Ipv4SocketAddress { port: 0, address: (127, 0, 0, 1) });
    udp.start_bind(&network, loopback).expect("udp start-bind");
    udp.finish_bind().expect("udp finish-bind");
    let (incoming, outgoing) = udp.stream(Some(udp_addr)).expect("udp stream");

    let tcp = create_tcp_socket(IpAddressFamily::Ipv4).expect("create-tcp-socket");
    tcp.start_connect(&network, tcp_addr).expect("tcp start-connect");
    let (input, output) = loop {
        tcp.subscribe().block();
        match tcp.finish_connect() {
            Ok(streams) => break streams,
            Err(e) if e.name() == "would-block" => continue,
            Err(e) => panic!("connect: {}", e.name()),
        }
    };

    let message = [0x42u8; 16];
    for _ in 0..echoes {
        output.blocking_write_and_flush(&message).expect("tcp write");
        let mut got = 0;
        while got < message.len() {
            got += input.blocking_read((message.len() - got) as u64).expect("tcp read").len();
        }
        loop {
            while outgoing.check_send().expect("check-send") == 0 {
                outgoing.subscribe().block();
            }
            outgoing
                .send(&[OutgoingDatagram { data: message.to_vec(), remote_address: None }])
                .expect("udp send");
            if wait(&incoming.subscribe(), 1000) && !incoming.receive(1).expect("receive").is_empty() {
                break;
            }
        }
    }
    // Done: one more byte (not echoed), then hold everything open until the benchmark
    // closes the connection.
    output.blocking_write_and_flush(&[1]).expect("tcp write");
    loop {
        match input.blocking_read(64) {
            Ok(_) => {}
            Err(StreamError::Closed) => break,
            Err(e) => panic!("hold: {e:?}"),
        }
    }
}
