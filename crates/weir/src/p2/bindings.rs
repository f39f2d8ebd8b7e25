//! Host bindings generated from the vendored WASI 0.2.12 WIT.
//!
//! Functions that may wait (poll, `blocking-*`) are `async` here; everything else is a plain
//! function that never blocks. Every import is `trappable`: an `Err` from a host function
//! traps the guest, which is how contract violations (writing past a permit, polling an empty
//! list, ...) are reported.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "wasi:cli/imports@0.2.12",
    imports: {
        "wasi:io/poll.poll": async | trappable,
        "wasi:io/poll.[method]pollable.block": async | trappable,
        "wasi:io/streams.[method]input-stream.blocking-read": async | trappable,
        "wasi:io/streams.[method]input-stream.blocking-skip": async | trappable,
        "wasi:io/streams.[method]output-stream.blocking-write-and-flush": async | trappable,
        "wasi:io/streams.[method]output-stream.blocking-flush": async | trappable,
        "wasi:io/streams.[method]output-stream.blocking-write-zeroes-and-flush": async | trappable,
        "wasi:io/streams.[method]output-stream.blocking-splice": async | trappable,
        default: trappable,
    },
    trappable_error_type: {
        "wasi:io/streams.stream-error" => crate::io::StreamError,
        "wasi:filesystem/types.error-code" => crate::filesystem::FsError,
        "wasi:sockets/network.error-code" => crate::sockets::SocketError,
    },
    with: {
        "wasi:io/error.error": crate::io::IoError,
        "wasi:io/poll.pollable": crate::io::PollableResource,
        "wasi:io/streams.input-stream": crate::io::InputStreamResource,
        "wasi:io/streams.output-stream": crate::io::OutputStreamResource,
        "wasi:filesystem/types.descriptor": crate::filesystem::Descriptor,
        "wasi:filesystem/types.directory-entry-stream": crate::filesystem::DirectoryEntryStream,
        "wasi:sockets/network.network": crate::sockets::Network,
        "wasi:sockets/udp.udp-socket": crate::sockets::udp::UdpSocket,
        "wasi:sockets/udp.incoming-datagram-stream": crate::sockets::udp::IncomingDatagramStream,
        "wasi:sockets/udp.outgoing-datagram-stream": crate::sockets::udp::OutgoingDatagramStream,
        "wasi:sockets/tcp.tcp-socket": crate::sockets::tcp::TcpSocket,
        "wasi:sockets/ip-name-lookup.resolve-address-stream": crate::sockets::ip_name_lookup::ResolveAddressStream,
        "wasi:cli/terminal-input.terminal-input": crate::cli::TerminalInput,
        "wasi:cli/terminal-output.terminal-output": crate::cli::TerminalOutput,
    },
});

/// The same `wasi:io` poll and streams interfaces, generated without `async`, for embedders
/// whose engine has async support off. Their host functions drive the async implementations
/// to completion on a private runtime (see [`crate::sync`]).
pub mod sync_io {
    wasmtime::component::bindgen!({
        path: "../../wit",
        inline: "
            package weir:sync-io;
            world sync-io {
                import wasi:io/poll@0.2.12;
                import wasi:io/streams@0.2.12;
            }
        ",
        world: "weir:sync-io/sync-io",
        imports: { default: trappable },
        trappable_error_type: {
            "wasi:io/streams.stream-error" => crate::io::StreamError,
        },
        with: {
            "wasi:io/error": crate::bindings::wasi::io::error,
            "wasi:io/poll.pollable": crate::io::PollableResource,
            "wasi:io/streams.input-stream": crate::io::InputStreamResource,
            "wasi:io/streams.output-stream": crate::io::OutputStreamResource,
        },
    });
}
