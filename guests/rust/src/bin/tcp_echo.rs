//! The README's TCP example: an echo server. `weir run -S inherit-network
//! examples/tcp-echo.wasm [ADDR] [CONNECTIONS]` listens on ADDR (default 127.0.0.1:7007) and
//! echoes every connection back to its client, serving them concurrently, forever or until
//! CONNECTIONS connections have been served. Try it with `nc 127.0.0.1 7007`.
use std::io::Write;

use wasip2::sockets::instance_network::instance_network;
use wasip2::sockets::network::IpAddressFamily;
use wasip2::sockets::tcp_create_socket::create_tcp_socket;
use weir_guests::{format_addr, serve, wit_addr};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let address = args.get(1).map(String::as_str).unwrap_or("127.0.0.1:7007");
    let limit = args.get(2).map(|n| n.parse().expect("CONNECTIONS must be a number"));
    let family = if address.starts_with('[') { IpAddressFamily::Ipv6 } else { IpAddressFamily::Ipv4 };
    let network = instance_network();
    let listening = create_tcp_socket(family).and_then(|listener| {
        listener.start_bind(&network, wit_addr(address))?;
        listener.finish_bind()?;
        listener.start_listen()?;
        listener.finish_listen()?;
        Ok(listener)
    });
    let listener = match listening {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {address}: {} (run with -S inherit-network)", e.name());
            std::process::exit(1);
        }
    };
    let local = listener.local_address().map(|a| format_addr(&a)).unwrap_or_default();
    println!("echoing on {local}");
    let _ = std::io::stdout().flush();
    match serve(&listener, limit) {
        Ok((connections, bytes)) => println!("served {connections} connections, echoed {bytes} bytes"),
        Err(e) => {
            eprintln!("echo server failed: {e}");
            std::process::exit(1);
        }
    }
}
