//! The README's UDP example: two sockets on the loopback interface; one sends a datagram,
//! the other receives it and prints it. Needs network access:
//! `weir run -S inherit-network examples/udp-hello.wasm` (or `--allow udp-bind,udp-send,udp-receive=127.0.0.1`).
use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
use wasip2::sockets::udp::OutgoingDatagram;
use wasip2::sockets::udp_create_socket::create_udp_socket;

fn main() {
    let network = instance_network();
    let loopback = IpSocketAddress::Ipv4(Ipv4SocketAddress { port: 0, address: (127, 0, 0, 1) });
    let bind = |what: &str| {
        let socket = create_udp_socket(IpAddressFamily::Ipv4).expect("create-udp-socket");
        if let Err(e) = socket.start_bind(&network, loopback).and_then(|()| socket.finish_bind()) {
            eprintln!("cannot bind the {what} socket: {} (run with -S inherit-network)", e.name());
            std::process::exit(1);
        }
        socket
    };
    let receiver = bind("receiving");
    let sender = bind("sending");
    let (incoming, _) = receiver.stream(None).expect("stream");
    let (_, outgoing) = sender.stream(receiver.local_address().ok()).expect("stream");
    let message = std::env::args().nth(1).unwrap_or_else(|| "hello over UDP".into());
    let permitted = outgoing.check_send().expect("check-send");
    assert!(permitted >= 1);
    outgoing
        .send(&[OutgoingDatagram { data: message.into_bytes(), remote_address: None }])
        .expect("send");
    incoming.subscribe().block();
    for datagram in incoming.receive(1).expect("receive") {
        println!("received {:?}", String::from_utf8_lossy(&datagram.data));
    }
}
