//! `wasi:sockets@0.2.x` glue.

mod ip_name_lookup;
mod network;
mod tcp;
mod udp;
