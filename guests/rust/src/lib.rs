//! Helpers shared by the script guests (`udp_script`, `tcp_script`).
use wasip2::clocks::monotonic_clock::subscribe_duration;
use wasip2::io::poll::{poll, Pollable};
use wasip2::sockets::network::{ErrorCode, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress};

/// `1.2.3.4:5` or `[::1]:5`.
pub fn format_addr(a: &IpSocketAddress) -> String {
    match a {
        IpSocketAddress::Ipv4(a) => {
            let (x, y, z, w) = a.address;
            format!("{x}.{y}.{z}.{w}:{}", a.port)
        }
        IpSocketAddress::Ipv6(a) => {
            let ip = std::net::Ipv6Addr::new(
                a.address.0, a.address.1, a.address.2, a.address.3, a.address.4, a.address.5,
                a.address.6, a.address.7,
            );
            format!("[{ip}]:{}", a.port)
        }
    }
}

/// Parses `1.2.3.4:5` or `[::1]:5`.
pub fn wit_addr(text: &str) -> IpSocketAddress {
    let addr: std::net::SocketAddr = text.parse().expect("address");
    match addr {
        std::net::SocketAddr::V4(a) => {
            let [x, y, z, w] = a.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress { port: a.port(), address: (x, y, z, w) })
        }
        std::net::SocketAddr::V6(a) => {
            let s = a.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: a.port(),
                flow_info: 0,
                address: (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
                scope_id: 0,
            })
        }
    }
}

/// `ok(VALUE)` or `err(CODE)`.
pub fn show<T: std::fmt::Debug>(r: Result<T, ErrorCode>) -> String {
    match r {
        Ok(v) => format!("ok({v:?})"),
        Err(e) => format!("err({})", e.name()),
    }
}

/// Waits up to `ms` milliseconds for `pollable`; whether it became ready.
pub fn wait(pollable: &Pollable, ms: u64) -> bool {
    let timer = subscribe_duration(ms * 1_000_000);
    poll(&[pollable, &timer]).contains(&0)
}
